"""Overlay networks, published ports and VIPs: allocation and the API (seed §2, §7, bad input)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from integration.cluster_helpers import api, cli, form_cluster, wait_for, wipe_cluster
from shoal.cli.errors import APIError
from testbed.bed import Testbed

HELLO = {"ContainerSpec": {"Image": "shoal/hello"}}


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=1)
    yield bed
    wipe_cluster(bed, "test_networks")


def network(bed: Testbed, ref: str) -> dict:
    return api(bed, "swarm00").get(f"/networks/{ref}")


def test_ingress_and_gwbridge_exist_after_init(cluster: Testbed) -> None:
    rc, out, err = cli(cluster, "swarm00", "network", "ls")
    assert rc == 0, err
    rows = {line.split()[1]: line.split()[2:] for line in out.strip().splitlines()[1:]}
    assert rows["ingress"] == ["overlay", "swarm"]
    assert rows["shoal_gwbridge"] == ["bridge", "local"]
    ingress = network(cluster, "ingress")
    assert ingress["IPAM"]["Config"] == [{"Subnet": "10.255.0.0/16", "Gateway": "10.255.0.1"}]
    assert ingress["Options"]["com.docker.network.driver.overlay.vxlanid_list"] == "4096"
    assert ingress["Ingress"] is True and ingress["Scope"] == "swarm"


def test_create_internal_attachable_network(cluster: Testbed) -> None:
    rc, out, err = cli(
        cluster,
        "swarm00",
        "network",
        "create",
        "--driver=overlay",
        "--subnet=172.30.0.0/24",
        "--attachable",
        "internal",
    )
    assert rc == 0, err
    net = network(cluster, "internal")
    assert net["Id"].startswith(out.strip()[:12])
    assert net["IPAM"]["Config"] == [{"Subnet": "172.30.0.0/24", "Gateway": "172.30.0.1"}]
    assert net["Attachable"] is True and net["Internal"] is False
    assert net["Options"]["com.docker.network.driver.overlay.vxlanid_list"] == "4097"
    auto = api(cluster, "swarm00").post("/networks/create", {"Name": "auto", "Driver": "overlay"})
    assert network(cluster, auto["Id"])["IPAM"]["Config"][0]["Subnet"] == "10.0.0.0/24"


def test_bad_networks_are_refused_and_change_nothing(cluster: Testbed) -> None:
    before = api(cluster, "swarm00").get("/networks")
    for body, status in [
        ({"Name": "overlap", "IPAM": {"Config": [{"Subnet": "172.30.0.128/25"}]}}, 400),
        ({"Name": "badcidr", "IPAM": {"Config": [{"Subnet": "172.30.0.0/33"}]}}, 400),
        ({"Name": "badgw", "IPAM": {"Config": [{"Subnet": "192.168.77.0/24", "Gateway": "10.0.0.1"}]}}, 400),
        ({"Name": "internal"}, 400),
        ({"Name": "bridgy", "Driver": "bridge"}, 400),
        ({"Name": "x", "Colour": "red"}, 400),
    ]:
        with pytest.raises(APIError) as exc:
            api(cluster, "swarm00").post("/networks/create", body)
        assert exc.value.status == status and exc.value.message, body
    with pytest.raises(APIError) as exc:
        network(cluster, "nosuchnet")
    assert exc.value.status == 404
    assert api(cluster, "swarm00").get("/networks") == before


def test_service_endpoint_ports_vips_and_task_attachments(cluster: Testbed) -> None:
    spec = {
        "Name": "nodejs",
        "TaskTemplate": {**HELLO, "Networks": [{"Target": "internal"}]},
        "Mode": {"Replicated": {"Replicas": 2}},
        "EndpointSpec": {"Ports": [{"TargetPort": 8080, "PublishedPort": 80}]},
    }
    api(cluster, "swarm00").post("/services/create", spec)
    svc = api(cluster, "swarm00").get("/services/nodejs")
    ingress, internal = network(cluster, "ingress"), network(cluster, "internal")
    assert svc["Endpoint"]["Ports"] == [
        {"Protocol": "tcp", "TargetPort": 8080, "PublishedPort": 80, "PublishMode": "ingress"}
    ]
    vips = {v["NetworkID"]: v["Addr"] for v in svc["Endpoint"]["VirtualIPs"]}
    assert set(vips) == {ingress["Id"], internal["Id"]}
    assert vips[internal["Id"]].startswith("172.30.0.") and vips[ingress["Id"]].startswith("10.255.0.")
    tasks = wait_for(
        "tasks allocated",
        lambda: (ts := api(cluster, "swarm00").get("/tasks", filters={"service": ["nodejs"]})) and len(ts) == 2 and ts,
    )
    for t in tasks:
        atts = t["NetworksAttachments"]
        assert [a["Network"]["ID"] for a in atts] == [ingress["Id"], internal["Id"]]  # eth0 ingress, eth1 internal
    addrs = [a["Addresses"][0] for t in tasks for a in t["NetworksAttachments"]]
    assert len(set(addrs)) == len(addrs) and not set(a.split("/")[0] for a in addrs) & {
        v.split("/")[0] for v in vips.values()
    }
    # every node gets an address for its ingress sandbox
    nodes = api(cluster, "swarm00").get("/nodes")
    wait_for(
        "ingress sandboxes allocated", lambda: all(n.get("Attachments") for n in api(cluster, "swarm00").get("/nodes"))
    )
    assert len(nodes) == 3


def test_published_port_conflicts_and_auto_assignment(cluster: Testbed) -> None:
    with pytest.raises(APIError) as exc:
        api(cluster, "swarm00").post(
            "/services/create",
            {
                "Name": "clash",
                "TaskTemplate": HELLO,
                "EndpointSpec": {"Ports": [{"TargetPort": 8080, "PublishedPort": 80}]},
            },
        )
    assert exc.value.status == 409 and "already in use" in exc.value.message
    api(cluster, "swarm00").post(
        "/services/create", {"Name": "auto", "TaskTemplate": HELLO, "EndpointSpec": {"Ports": [{"TargetPort": 8080}]}}
    )
    assert api(cluster, "swarm00").get("/services/auto")["Endpoint"]["Ports"][0]["PublishedPort"] == 30000
    with pytest.raises(APIError) as exc:
        api(cluster, "swarm00").post(
            "/services/create", {"Name": "lost", "TaskTemplate": {**HELLO, "Networks": [{"Target": "nosuchnet"}]}}
        )
    assert exc.value.status == 404
    api(cluster, "swarm00").delete("/services/auto")


def test_network_rm_refused_while_used(cluster: Testbed) -> None:
    rc, _, err = cli(cluster, "swarm00", "network", "rm", "internal")
    assert rc != 0 and "in use" in err
    api(cluster, "swarm00").delete("/services/nodejs")
    rc, _, err = cli(cluster, "swarm00", "network", "rm", "internal", "auto")
    assert rc == 0, err
    names = {n["Name"] for n in api(cluster, "swarm00").get("/networks")}
    assert names == {"ingress", "shoal_gwbridge"}


def test_docker_sdk_creates_network_and_published_service(cluster: Testbed) -> None:
    import docker  # requirements-dev.txt: a missing SDK fails the test

    client = docker.DockerClient(base_url=f"unix://{cluster.host('swarm00').socket_path}")
    net = client.networks.create("sdknet", driver="overlay", attachable=True)
    try:
        assert net.attrs["Driver"] == "overlay" and net.attrs["Scope"] == "swarm"
        assert "sdknet" in [n.name for n in client.networks.list()]
        endpoint = docker.types.EndpointSpec(ports={8089: 8080})
        service = client.services.create("shoal/hello", name="sdkweb", networks=["sdknet"], endpoint_spec=endpoint)
        try:
            service.reload()
            assert service.attrs["Endpoint"]["Ports"][0]["PublishedPort"] == 8089
            assert {v["NetworkID"] for v in service.attrs["Endpoint"]["VirtualIPs"]} >= {net.id}
            assert [s.name for s in client.services.list()] == ["sdkweb"]
        finally:
            service.remove()
    finally:
        wait_for("sdkweb tasks gone", lambda: not api(cluster, "swarm00").get("/tasks"), timeout=30)
        net.remove()
    assert "sdknet" not in [n.name for n in client.networks.list()]
