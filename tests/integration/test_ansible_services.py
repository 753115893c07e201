"""swarm_service and overlay_network on the testbed, through Ansible (ad-hoc module runs over ssh): check mode
predicts and changes nothing, diff shows the change, updates happen in place and wait until converged, bad
arguments fail clearly and change nothing, a network in use is not removed or recreated.

The swarm is formed with the repository's agents (fast); test_ansible.py covers the roles and site.yml. Each
test states what it starts from (`no_nodejs`, `nodejs(replicas)`; an autouse fixture removes what other tests
made), so the tests pass in any order.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest

from integration.ansible_adhoc import run_module
from integration.cluster_helpers import HOSTS, api, curl, form_cluster, nodes, wait_for, wipe_cluster
from testbed import registry
from testbed.bed import Testbed

NODEJS: dict[str, Any] = {
    "name": "nodejs",
    "image": "shoal/hello",
    "replicas": 2,
    "publish": [{"published_port": 80, "target_port": 8080}],
    "constraints": ["node.role==worker"],
}


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=1)
    yield bed
    wipe_cluster(bed, "test_ansible_services")


@pytest.fixture(scope="module")
def module(cluster: Testbed) -> Any:
    """Runs one of the collection's modules ad hoc on a testbed host: (rc, result, output)."""
    return functools.partial(run_module, cluster)


def services(bed: Testbed) -> dict[str, tuple[str, int, dict[str, Any]]]:
    """Name -> (ID, version, spec) of every service."""
    return {
        s["Spec"]["Name"]: (s["ID"], s["Version"]["Index"], s["Spec"]) for s in api(bed, "swarm00").get("/services")
    }


def networks(bed: Testbed) -> dict[str, dict[str, Any]]:
    """Name -> the network's settings (not its peers and endpoints, which follow the tasks)."""
    keep = ("Id", "IPAM", "Internal", "Attachable", "Labels")
    return {
        n["Name"]: {k: n.get(k) for k in keep}
        for n in api(bed, "swarm00").get("/networks")
        if n.get("Scope") == "swarm"
    }


def current_tasks(bed: Testbed, name: str) -> list[dict[str, Any]]:
    """The service's tasks the swarm wants running."""
    return [t for t in api(bed, "swarm00").get("/tasks", filters={"service": [name]}) if t["DesiredState"] == "running"]


def remove_service(bed: Testbed, name: str) -> None:
    client = api(bed, "swarm00")
    service_id = client.get(f"/services/{name}")["ID"]
    client.delete(f"/services/{name}")
    wait_for(
        f"{name}'s tasks gone",  # listed unfiltered: a filter naming a removed service is a 404, as in Docker
        lambda: not [t for t in client.get("/tasks") if t["ServiceID"] == service_id],
        timeout=30,
    )


@pytest.fixture(autouse=True)
def only_nodejs(cluster: Testbed) -> None:
    """Services and the network other tests made are gone (nodejs is each test's own business)."""
    for name in set(services(cluster)) - {"nodejs"}:
        remove_service(cluster, name)
    if "backend" in networks(cluster):
        api(cluster, "swarm00").delete("/networks/backend")


@pytest.fixture
def no_nodejs(cluster: Testbed) -> None:
    if "nodejs" in services(cluster):
        remove_service(cluster, "nodejs")


@pytest.fixture
def nodejs(cluster: Testbed, module) -> Any:
    """deploy(replicas): nodejs as NODEJS creates it, with `replicas`, converged. Made anew when a test
    left it otherwise (replicas, env, update config: what the tests change)."""

    def deploy(replicas: int) -> None:
        current = services(cluster).get("nodejs")
        if current:
            spec = current[2]
            pristine = (
                spec["Mode"].get("Replicated", {}).get("Replicas") == replicas
                and not spec["TaskTemplate"]["ContainerSpec"].get("Env")
                and (spec.get("UpdateConfig") or {}).get("Parallelism", 1) == 1
            )
            if (
                pristine
                and len([t for t in current_tasks(cluster, "nodejs") if t["Status"]["State"] == "running"]) == replicas
            ):
                return
            remove_service(cluster, "nodejs")
        rc, _, out = module("swarm_service", {**NODEJS, "replicas": replicas, "wait": True})
        assert rc == 0, out

    return deploy


@pytest.mark.usefixtures("no_nodejs")
def test_check_mode_predicts_a_new_service_and_creates_nothing(cluster: Testbed, module) -> None:
    rc, result, out = module("swarm_service", NODEJS, check=True, diff=True)
    assert rc == 0 and result["changed"] and result["service_id"] == "", out
    assert '"state": "absent"' in out and '+    "replicas": 2' in out, out
    assert "nodejs" not in services(cluster)


@pytest.mark.usefixtures("no_nodejs")
def test_create_waits_until_converged_answers_through_the_mesh_and_is_idempotent(cluster: Testbed, module) -> None:
    rc, result, out = module("swarm_service", {**NODEJS, "wait": True})
    assert rc == 0 and result["changed"] and result["actions"] == ["service created"], out
    assert len(result["tasks"]) == 2 and all(t["Status"]["State"] == "running" for t in result["tasks"])
    workers = {n["ID"] for n in nodes(cluster, "swarm00").values() if n["Spec"]["Role"] == "worker"}
    running = current_tasks(cluster, "nodejs")  # at once: the module waited
    assert len(running) == 2 and all(t["Status"]["State"] == "running" for t in running)
    assert {t["NodeID"] for t in running} <= workers
    ips = {t["NetworksAttachments"][0]["Addresses"][0].split("/")[0] for t in running}
    for host in HOSTS:
        answer = wait_for(f"an answer through {host}", lambda h=host: curl(cluster, h), timeout=15)
        assert answer in {f"Hello World! from {ip}" for ip in ips}, answer
    before = services(cluster)["nodejs"]
    rc, result, out = module("swarm_service", {**NODEJS, "wait": True})
    assert rc == 0 and not result["changed"] and result["changes"] == [], out
    assert services(cluster)["nodejs"] == before


def test_diff_shows_the_change_check_mode_applies_nothing_and_the_update_is_in_place(
    cluster: Testbed, module, nodejs
) -> None:
    nodejs(2)
    service_id, version, _ = services(cluster)["nodejs"]
    rc, result, out = module("swarm_service", {"name": "nodejs", "replicas": 3}, check=True, diff=True)
    assert rc == 0 and result["changed"] and result["changes"] == ["replicas"], out
    assert '-    "replicas": 2,' in out and '+    "replicas": 3,' in out, out
    assert services(cluster)["nodejs"][:2] == (service_id, version)
    rc, result, out = module("swarm_service", {"name": "nodejs", "replicas": 3, "wait": True}, diff=True)
    assert rc == 0 and result["changed"], out
    new_id, new_version, spec = services(cluster)["nodejs"]
    assert new_id == service_id and new_version > version and spec["Mode"]["Replicated"]["Replicas"] == 3
    assert len([t for t in current_tasks(cluster, "nodejs") if t["Status"]["State"] == "running"]) == 3


def test_an_update_rolls_the_tasks_and_wait_returns_when_all_run_the_new_spec(cluster: Testbed, module, nodejs) -> None:
    nodejs(3)
    old = {t["ID"] for t in current_tasks(cluster, "nodejs")}
    args = {"name": "nodejs", "env": {"GREETING": "hi"}, "update_config": {"parallelism": 2}, "wait": True}
    rc, result, out = module("swarm_service", args)
    assert rc == 0 and result["changed"] and sorted(result["changes"]) == ["env", "update_config"], out
    template = services(cluster)["nodejs"][2]["TaskTemplate"]
    running = current_tasks(cluster, "nodejs")
    assert len(running) == 3 and not {t["ID"] for t in running} & old
    assert all(t["Status"]["State"] == "running" and t["Spec"] == template for t in running)
    assert template["ContainerSpec"]["Env"] == ["GREETING=hi"]
    rc, result, out = module("swarm_service", args)
    assert rc == 0 and not result["changed"], out


def test_bad_arguments_fail_clearly_and_change_nothing(cluster: Testbed, module, nodejs) -> None:
    nodejs(2)
    before, nets = services(cluster), networks(cluster)
    cases = [
        ("swarm_service", {"name": "nodejs", "replicas": -5}, "replicas must be 0 or more, not -5"),
        (
            "swarm_service",
            {"name": "nodejs", "publish": [{"target_port": 8080, "published_port": 80, "mode": "sideways"}]},
            "value of mode must be one of: ingress, host, got: sideways",
        ),
        ("swarm_service", {"name": "nodejs", "mode": "global", "replicas": 2}, "replicas applies to replicated"),
        ("swarm_service", {"name": "nodejs", "state": "absent", "replicas": 2}, "state=present only: replicas"),
        (
            "swarm_service",
            {"name": "nodejs", "endpoint_mode": "dnsrr"},
            "service nodejs publishes 80:8080 in ingress mode: publish with mode=host",
        ),
        ("swarm_service", {"name": "nodejs", "mode": "global"}, "is replicated and cannot become global in place"),
        ("swarm_service", {"name": "nodejs", "networks": ["nosuch"]}, "network nosuch not found: create it first"),
        ("swarm_service", {"name": "other", "replicas": 1}, "image is needed to create it"),
        # the agent's own validation, surfaced as it words it
        (
            "swarm_service",
            {"name": "nodejs", "constraints": ["node.role=worker"]},
            'invalid constraint "node.role=worker": expected one operator from ==, !=',
        ),
        ("overlay_network", {"name": "backend", "subnet": "10.0.9.1/24"}, "invalid subnet '10.0.9.1/24'"),
        (
            "overlay_network",
            {"name": "backend", "gateway": "10.0.9.1"},
            "missing parameter(s) required by 'gateway': subnet",
        ),
        ("overlay_network", {"name": "ingress", "state": "absent"}, "routing mesh"),
    ]
    for name, args, message in cases:
        rc, result, out = module(name, args)
        assert rc != 0 and message in result.get("msg", ""), (args, out)
        assert not result.get("changed"), (args, out)
    rc, result, out = module("swarm_service", {**NODEJS, "replicas": 3}, host="swarm01")  # a worker
    assert rc != 0 and "not a swarm manager" in result["msg"], out
    assert services(cluster) == before and networks(cluster) == nets


def test_wait_fails_with_the_tasks_error_when_the_service_cannot_converge(cluster: Testbed, module) -> None:
    # the testbed registry (the only one tests may ask) refuses it: no credentials
    args = {"name": "broken", "image": registry.ref("testbed/nosuch:1"), "wait": True, "wait_timeout": 8}
    rc, result, out = module("swarm_service", args)
    assert rc != 0 and result["changed"], out  # created, and said so
    assert "timed out after 8 s waiting for service broken to converge: 0 of 1 task(s)" in result["msg"], out
    assert "last task error: " in result["msg"], out
    rc, result, out = module("swarm_service", {"name": "broken", "state": "absent", "wait": True})
    assert rc == 0 and result["changed"], out
    assert "broken" not in services(cluster)


def test_a_network_in_use_is_neither_recreated_nor_removed(cluster: Testbed, module) -> None:
    rc, result, out = module("overlay_network", {"name": "backend", "subnet": "10.0.9.0/24"}, check=True)
    assert rc == 0 and result["changed"] and "backend" not in networks(cluster), out
    rc, result, out = module("overlay_network", {"name": "backend", "subnet": "10.0.9.0/24", "labels": {"a": 1}})
    assert rc == 0 and result["changed"], out
    network_id = networks(cluster)["backend"]["Id"]
    rc, result, out = module("overlay_network", {"name": "backend", "subnet": "10.0.9.0/24", "labels": {"a": "1"}})
    assert rc == 0 and not result["changed"], out
    api_args = {"name": "api", "image": "shoal/host", "command": "sleep 3600", "networks": ["backend"], "wait": True}
    rc, result, out = module("swarm_service", api_args)
    assert rc == 0 and result["changed"], out
    assert services(cluster)["api"][2]["TaskTemplate"]["Networks"][0]["Target"] == network_id
    rc, result, out = module("swarm_service", api_args)
    assert rc == 0 and not result["changed"], out  # compared by name, stored by ID

    rc, result, out = module("overlay_network", {"name": "backend", "subnet": "10.0.10.0/24"}, check=True)
    assert rc == 0 and result["changed"] and "used by service(s) api" in out, out  # a warning in check mode
    rc, result, out = module("overlay_network", {"name": "backend", "subnet": "10.0.10.0/24"})
    assert rc != 0 and not result["changed"], out
    assert "network backend is used by service(s) api: it cannot change in place" in result["msg"], out
    rc, result, out = module("overlay_network", {"name": "backend", "subnet": "10.0.10.0/24", "force": True})
    assert rc != 0 and not result["changed"], out
    assert "the swarm refused to remove it: network backend is in use by service api" in result["msg"], out
    rc, result, out = module("overlay_network", {"name": "backend", "state": "absent"})
    assert rc != 0 and "used by service(s) api" in result["msg"], out
    assert networks(cluster)["backend"]["Id"] == network_id
    assert networks(cluster)["backend"]["IPAM"]["Config"][0]["Subnet"] == "10.0.9.0/24"

    rc, result, out = module("swarm_service", {"name": "api", "state": "absent", "wait": True})
    assert rc == 0 and result["changed"], out
    rc, result, out = module("overlay_network", {"name": "backend", "subnet": "10.0.10.0/24"}, diff=True)
    assert rc == 0 and result["changed"] and result["actions"] == ["network removed and created again"], out
    assert '-    "subnet": "10.0.9.0/24"' in out and '+    "subnet": "10.0.10.0/24"' in out, out
    recreated = networks(cluster)["backend"]
    assert recreated["Id"] != network_id and recreated["IPAM"]["Config"][0]["Subnet"] == "10.0.10.0/24"
    assert recreated["Labels"] == {"a": "1"}  # what was not given is kept
    rc, result, out = module("overlay_network", {"name": "backend", "state": "absent"})
    assert rc == 0 and result["changed"] and "backend" not in networks(cluster), out
    rc, result, out = module("overlay_network", {"name": "backend", "state": "absent"})
    assert rc == 0 and not result["changed"], out


@pytest.mark.usefixtures("no_nodejs")
def test_network_aliases_are_compared_unordered_and_answered_by_the_dns(cluster: Testbed, module) -> None:
    rc, result, out = module("overlay_network", {"name": "backend"})
    assert rc == 0, out
    network_id = networks(cluster)["backend"]["Id"]
    base = {"name": "api", "image": "shoal/host", "command": "sleep 3600", "wait": True}
    both = {**base, "networks": [{"name": "backend", "aliases": ["db", "cache"]}]}
    rc, result, out = module("swarm_service", both)
    assert rc == 0 and result["changed"], out
    (attachment,) = services(cluster)["api"][2]["TaskTemplate"]["Networks"]
    assert attachment["Target"] == network_id and attachment["Aliases"] == ["db", "cache"]
    rc, result, out = module("swarm_service", {**base, "networks": [{"name": "backend", "aliases": ["cache", "db"]}]})
    assert rc == 0 and not result["changed"], out  # the order of the aliases does not matter
    # the embedded DNS answers an alias with the service's VIP on that network (docker_swarm_service's purpose)
    (task,) = [t for t in current_tasks(cluster, "api") if t["Status"]["State"] == "running"]
    host = {n["ID"]: n["Description"]["Hostname"] for n in api(cluster, "swarm00").get("/nodes")}[task["NodeID"]]
    vips = api(cluster, "swarm00").get("/services/api")["Endpoint"]["VirtualIPs"]
    vip = next(v["Addr"].split("/")[0] for v in vips if v["NetworkID"] == network_id)
    res = cluster.run(host, ["shoal", "exec", task["ID"][:12], "getent", "ahostsv4", "cache"], timeout=30)
    assert vip in res.stdout.split(), (vip, res.stdout, res.stderr)
    # check mode predicts dropping one alias and changes nothing; the real run drops it
    version = services(cluster)["api"][1]
    one = {**base, "networks": [{"name": "backend", "aliases": ["db"]}]}
    rc, result, out = module("swarm_service", one, check=True, diff=True)
    assert rc == 0 and result["changed"] and result["changes"] == ["networks"], out
    assert services(cluster)["api"][1] == version
    rc, result, out = module("swarm_service", one)
    assert rc == 0 and result["changed"], out
    assert services(cluster)["api"][2]["TaskTemplate"]["Networks"][0]["Aliases"] == ["db"]
    rc, result, out = module("swarm_service", {"name": "api", "state": "absent", "wait": True})
    assert rc == 0, out


def test_absent_removes_the_service_and_a_second_run_changes_nothing(cluster: Testbed, module, nodejs) -> None:
    nodejs(2)
    rc, result, out = module("swarm_service", {"name": "nodejs", "state": "absent"}, check=True)
    assert rc == 0 and result["changed"] and "nodejs" in services(cluster), out
    rc, result, out = module("swarm_service", {"name": "nodejs", "state": "absent", "wait": True})
    assert rc == 0 and result["changed"] and "nodejs" not in services(cluster), out
    assert not [t for t in api(cluster, "swarm00").get("/tasks") if t["Status"]["State"] == "running"]
    rc, result, out = module("swarm_service", {"name": "nodejs", "state": "absent"})
    assert rc == 0 and not result["changed"], out
