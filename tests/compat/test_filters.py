"""Filters are the server's: the docker CLI, the docker SDK and the shoal CLI send `filters=` and get
the same answer, with Docker's semantics (node and service `name` are prefixes, labels `k` or `k=v`)."""

from __future__ import annotations

import pytest

from compat.clients import Transcript, docker_cli, ok, sdk, wait_running
from integration.cluster_helpers import api, cli
from testbed.bed import Testbed


def lines(text: str) -> list[str]:
    return sorted(line for line in text.splitlines() if line.strip())


def listed_everywhere(bed: Testbed, argv: list[str], fmt: str, key: str, value: str, python: list[str]) -> list[str]:
    """What `argv --filter key=value` lists through the docker CLI and the shoal CLI, which must be
    what the SDK listed (`python`) — the same from every client, or the test fails."""
    args = [*argv[:2], "--filter", f"{key}={value}", "--format", fmt, *argv[2:]]
    docker = lines(ok(docker_cli(bed, "swarm00", *args)))
    rc, out, err = cli(bed, "swarm00", *args)
    assert rc == 0, err
    assert docker == lines(out) == sorted(python), (docker, out, python)
    return docker


def node_names(bed: Testbed, key: str, value: str) -> list[str]:
    python = [n.attrs["Description"]["Hostname"] for n in sdk(bed).nodes.list(filters={key: value})]
    return listed_everywhere(bed, ["node", "ls"], "{{.Hostname}}", key, value, python)


def service_names(bed: Testbed, key: str, value: str) -> list[str]:
    python = [s.name for s in sdk(bed).services.list(filters={key: value})]
    return listed_everywhere(bed, ["service", "ls"], "{{.Name}}", key, value, python)


def network_names(bed: Testbed, key: str, value: str) -> list[str]:
    python = [n.name for n in sdk(bed).networks.list(filters={key: value})]
    return listed_everywhere(bed, ["network", "ls"], "{{.Name}}", key, value, python)


def task_names(bed: Testbed, service: str, key: str, value: str) -> list[str]:
    python = [f"{service}.{t['Slot']}" for t in sdk(bed).services.get(service).tasks(filters={key: value})]
    return listed_everywhere(bed, ["service", "ps", service], "{{.Name}}", key, value, python)


def test_node_filters(bed: Testbed, clean: Transcript) -> None:
    manager = api(bed, "swarm00")
    node = manager.get("/nodes/swarm02")
    manager.post(
        f"/nodes/{node['ID']}/update", {**node["Spec"], "Labels": {"disk": "ssd"}}, version=node["Version"]["Index"]
    )
    try:
        assert node_names(bed, "name", "swarm0") == ["swarm00", "swarm01", "swarm02"]  # a prefix, as in Docker
        assert node_names(bed, "name", "swarm01") == ["swarm01"]
        assert node_names(bed, "role", "manager") == ["swarm00"]
        assert node_names(bed, "role", "worker") == ["swarm01", "swarm02"]
        assert node_names(bed, "id", node["ID"][:6]) == ["swarm02"]
        assert node_names(bed, "node.label", "disk") == ["swarm02"]
        assert node_names(bed, "node.label", "disk=hdd") == []
    finally:
        node = manager.get("/nodes/swarm02")
        manager.post(f"/nodes/{node['ID']}/update", {**node["Spec"], "Labels": {}}, version=node["Version"]["Index"])


def test_service_and_task_filters(bed: Testbed, clean: Transcript) -> None:
    create = ["service", "create", "--detach", "--name"]
    ok(docker_cli(bed, "swarm00", *create, "front", "--label", "tier=web", "--replicas", "1", "shoal/hello"))
    global_nowhere = ["--mode", "global", "--constraint", "node.hostname==nowhere"]
    ok(docker_cli(bed, "swarm00", *create, "frontier", *global_nowhere, "shoal/hello"))
    assert service_names(bed, "name", "fro") == ["front", "frontier"]
    assert service_names(bed, "name", "frontier") == ["frontier"]
    assert service_names(bed, "mode", "global") == ["frontier"]
    assert service_names(bed, "label", "tier=web") == ["front"]
    assert service_names(bed, "label", "tier") == ["front"]
    wait_running(bed, "front", 1)
    assert task_names(bed, "front", "desired-state", "running") == ["front.1"]
    assert task_names(bed, "front", "desired-state", "shutdown") == []
    assert task_names(bed, "front", "name", "front.1") == ["front.1"]


@pytest.mark.parametrize("label", ["a=b", "a"])
def test_network_filters(bed: Testbed, clean: Transcript, label: str) -> None:
    ok(docker_cli(bed, "swarm00", "network", "create", "-d", "overlay", "--label", "a=b", "lab-a"))
    ok(docker_cli(bed, "swarm00", "network", "create", "-d", "overlay", "--label", "a=c", "lab-b"))
    assert network_names(bed, "label", label) == (["lab-a"] if label == "a=b" else ["lab-a", "lab-b"])
    assert network_names(bed, "name", "lab") == ["lab-a", "lab-b"]
    assert network_names(bed, "driver", "overlay") == ["ingress", "lab-a", "lab-b"]
    assert {"lab-a", "lab-b"} <= set(network_names(bed, "type", "custom"))
    assert not {"lab-a", "lab-b"} & set(network_names(bed, "type", "builtin"))
