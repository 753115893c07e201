"""The same calls through the docker SDK for Python (`docker` on PyPI) on a manager's socket."""

from __future__ import annotations

from collections.abc import Callable

import docker
import pytest
from docker.types import EndpointSpec, IPAMConfig, IPAMPool, ServiceMode

from compat.clients import HOSTS, MANAGER, Transcript, sdk, wait_nodes_ready, wait_running
from integration.cluster_helpers import api, wait_for
from testbed.bed import Testbed


def refused(call: Callable[[], object], message: str) -> None:
    with pytest.raises(docker.errors.APIError) as exc:
        call()
    assert exc.value.status_code == 400
    assert message in exc.value.explanation


def test_sdk_swarm_info_and_nodes(bed: Testbed, clean: Transcript) -> None:
    client = sdk(bed)
    swarm = client.swarm.attrs
    assert swarm["ID"] == api(bed, "swarm00").get("/swarm")["ID"]
    assert swarm["JoinTokens"]["Worker"] == clean.worker_token
    info = client.info()["Swarm"]
    assert (info["LocalNodeState"], info["ControlAvailable"], info["Nodes"], info["Managers"]) == ("active", True, 3, 1)
    nodes = {n.attrs["Description"]["Hostname"]: n for n in client.nodes.list()}
    assert sorted(nodes) == HOSTS
    assert [n.attrs["Description"]["Hostname"] for n in client.nodes.list(filters={"role": "manager"})] == ["swarm00"]
    node = client.nodes.get("swarm01")
    try:
        spec = dict(node.attrs["Spec"], Labels={"disk": "ssd"}, Availability="pause")
        assert node.update(spec) is True
        node.reload()
        assert node.attrs["Spec"] == {"Labels": {"disk": "ssd"}, "Role": "worker", "Availability": "pause"}
    finally:
        # an SDK caller spelling field names in lower case, as Go's decoder allows
        node.reload()
        url = client.api._url("/nodes/{0}/update?version={1}", node.id, str(node.attrs["Version"]["Index"]))
        client.api._post_json(url, data={"role": "worker", "availability": "active", "labels": {}}).raise_for_status()
    node.reload()
    assert node.attrs["Spec"] == {"Labels": {}, "Role": "worker", "Availability": "active"}


def test_sdk_networks(bed: Testbed, clean: Transcript) -> None:
    client = sdk(bed)
    ipam = IPAMConfig(pool_configs=[IPAMPool(subnet="10.31.0.0/24")])
    net = client.networks.create("sdknet", driver="overlay", attachable=True, ipam=ipam, labels={"a": "b"})
    net.reload()
    assert (net.name, net.attrs["Driver"], net.attrs["Scope"], net.attrs["Attachable"]) == (
        "sdknet",
        "overlay",
        "swarm",
        True,
    )
    assert net.attrs["IPAM"]["Config"] == [{"Subnet": "10.31.0.0/24", "Gateway": "10.31.0.1"}]
    assert [n.name for n in client.networks.list(filters={"label": "a=b"})] == ["sdknet"]
    assert [n.name for n in client.networks.list(names=["sdknet"])] == ["sdknet"]
    refused(
        lambda: client.networks.create("enc", driver="overlay", options={"encrypted": ""}),
        "encrypted overlay networks need IPsec ESP with AES-GCM",  # this machine's kernel has no ESP
    )
    net.remove()
    assert client.networks.list(names=["sdknet"]) == []


def test_sdk_service_lifecycle(bed: Testbed, clean: Transcript) -> None:
    client = sdk(bed)
    service = client.services.create(
        "shoal/hello",
        name="sdkweb",
        mode=ServiceMode("replicated", replicas=2),
        endpoint_spec=EndpointSpec(ports={8081: 8080}),
        labels={"tier": "web"},
    )
    wait_running(bed, "sdkweb", 2)
    service.reload()
    assert service.attrs["Spec"]["TaskTemplate"]["Runtime"] == "container"
    assert [s.name for s in client.services.list(filters={"label": "tier=web"})] == ["sdkweb"]
    assert len(service.tasks(filters={"desired-state": "running"})) == 2
    assert "Warnings" in service.scale(3)  # the update's answer
    wait_running(bed, "sdkweb", 3)
    service.reload()
    assert service.update(env=["GREETING=hi"]) is not None
    wait_for(
        "the update to complete",
        lambda: (client.services.get("sdkweb").attrs.get("UpdateStatus") or {}).get("State") == "completed",
        timeout=120,
        interval=0.5,
    )
    spec = client.services.get("sdkweb").attrs["Spec"]
    assert spec["TaskTemplate"]["ContainerSpec"]["Env"] == ["GREETING=hi"]
    assert spec["Mode"] == {"Replicated": {"Replicas": 3}}  # the SDK sends the mode back in its own spelling
    wait_running(bed, "sdkweb", 3)
    # without details, a log line is what the task wrote (Docker's stream, demultiplexed by the SDK)
    raw = service.logs(stdout=True, stderr=True)  # bytes without follow, a generator with it
    lines = (raw if isinstance(raw, bytes) else b"".join(raw)).decode().splitlines()
    assert lines and set(lines) == {"hello: listening on :8080"}
    service.remove()
    assert client.services.list() == []


def test_sdk_swarm_refusals_and_round_trip(bed: Testbed, clean: Transcript) -> None:
    client = sdk(bed)
    version = client.swarm.attrs["Version"]["Index"]
    refused(lambda: client.swarm.update(snapshot_interval=5000), "Raft.SnapshotInterval 5000 is not supported yet")
    refused(lambda: client.swarm.update(dispatcher_heartbeat_period=10_000_000), "Dispatcher.HeartbeatPeriod")
    client.swarm.reload()
    assert client.swarm.attrs["Version"]["Index"] == version  # nothing written
    assert client.swarm.update(task_history_retention_limit=5, rotate_worker_token=True) is True
    client.swarm.reload()
    assert client.swarm.attrs["JoinTokens"]["Worker"] != clean.worker_token
    clean.worker_token = client.swarm.attrs["JoinTokens"]["Worker"]  # later joins use the new one


def test_sdk_leave_init_join(bed: Testbed, clean: Transcript) -> None:
    manager, worker = sdk(bed), sdk(bed, "swarm02")
    assert worker.swarm.leave() is True
    wait_for("swarm02 down", lambda: manager.nodes.get("swarm02").attrs["Status"]["State"] == "down", timeout=60)
    manager.nodes.get("swarm02").remove()
    assert sorted(n.attrs["Description"]["Hostname"] for n in manager.nodes.list()) == ["swarm00", "swarm01"]
    # a one-node swarm of its own (settings shoal does not act on refused first), then back into the session's
    refused(
        lambda: worker.swarm.init(advertise_addr="eth0", default_addr_pool=["10.20.0.0/16"], subnet_size=30),
        "subnet size is out of range: 30",
    )
    refused(
        lambda: worker.swarm.init(advertise_addr="eth0", data_path_port=80),
        "Datapath port number is not in valid range (1024-49151) : 80",
    )
    assert worker.info()["Swarm"]["LocalNodeState"] == "inactive"
    node_id = worker.swarm.init(advertise_addr="eth0")
    assert worker.swarm.attrs["ID"] != manager.swarm.attrs["ID"]
    assert worker.info()["Swarm"]["NodeID"] == node_id
    assert worker.swarm.leave(force=True) is True
    token = manager.swarm.attrs["JoinTokens"]["Worker"]
    assert worker.swarm.join(remote_addrs=[MANAGER], join_token=token) is True
    wait_nodes_ready(bed, HOSTS)
