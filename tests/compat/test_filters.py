"""Filters are the server's: the docker CLI, the docker SDK and the shoal CLI send `filters=` and get
the same answer, with Docker's semantics (node and service `name` are prefixes, labels `k` or `k=v`)."""

from __future__ import annotations

import pytest

from compat.clients import Transcript, docker_cli, ok, sdk, wait_running
from integration.cluster_helpers import api, cli
from testbed.bed import Testbed


def lines(text: str) -> list[str]:
    return sorted(line for line in text.splitlines() if line.strip())


def node_names(bed: Testbed, key: str, value: str) -> list[str]:
    """Hostnames `node ls --filter key=value` lists, the same from every client (or the test fails)."""
    flag = f"{key}={value}"
    docker = lines(ok(docker_cli(bed, "swarm00", "node", "ls", "--filter", flag, "--format", "{{.Hostname}}")))
    rc, out, err = cli(bed, "swarm00", "node", "ls", "--filter", flag, "--format", "{{.Hostname}}")
    assert rc == 0, err
    python = sorted(n.attrs["Description"]["Hostname"] for n in sdk(bed).nodes.list(filters={key: value}))
    assert docker == lines(out) == python, (docker, out, python)
    return docker


def service_names(bed: Testbed, key: str, value: str) -> list[str]:
    flag = f"{key}={value}"
    docker = lines(ok(docker_cli(bed, "swarm00", "service", "ls", "--filter", flag, "--format", "{{.Name}}")))
    rc, out, err = cli(bed, "swarm00", "service", "ls", "--filter", flag, "--format", "{{.Name}}")
    assert rc == 0, err
    python = sorted(s.name for s in sdk(bed).services.list(filters={key: value}))
    assert docker == lines(out) == python, (docker, out, python)
    return docker


def network_names(bed: Testbed, key: str, value: str) -> list[str]:
    flag = f"{key}={value}"
    docker = lines(ok(docker_cli(bed, "swarm00", "network", "ls", "--filter", flag, "--format", "{{.Name}}")))
    rc, out, err = cli(bed, "swarm00", "network", "ls", "--filter", flag, "--format", "{{.Name}}")
    assert rc == 0, err
    python = sorted(n.name for n in sdk(bed).networks.list(filters={key: value}))
    assert docker == lines(out) == python, (docker, out, python)
    return docker


def task_names(bed: Testbed, service: str, key: str, value: str) -> list[str]:
    flag = f"{key}={value}"
    docker = lines(ok(docker_cli(bed, "swarm00", "service", "ps", "--filter", flag, "--format", "{{.Name}}", service)))
    rc, out, err = cli(bed, "swarm00", "service", "ps", "--filter", flag, "--format", "{{.Name}}", service)
    assert rc == 0, err
    tasks = sdk(bed).services.get(service).tasks(filters={key: value})
    python = sorted(f"{service}.{t['Slot']}" for t in tasks)
    assert docker == lines(out) == python, (docker, out, python)
    return docker


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
    ok(
        docker_cli(
            bed,
            "swarm00",
            "service",
            "create",
            "--detach",
            "--name",
            "front",
            "--label",
            "tier=web",
            "--replicas",
            "1",
            "shoal/hello",
        )
    )
    ok(
        docker_cli(
            bed,
            "swarm00",
            "service",
            "create",
            "--detach",
            "--name",
            "frontier",
            "--mode",
            "global",
            "--constraint",
            "node.hostname==nowhere",
            "shoal/hello",
        )
    )
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
