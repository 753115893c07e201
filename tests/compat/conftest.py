"""Compatibility suite: real docker clients against shoal managers on the testbed.

One cluster for the session, formed by the docker CLI itself (`swarm init`, `join-token`, `join`):
swarm00 manager and leader, swarm01 and swarm02 workers. Every test leaves it so (three nodes,
swarm00 the only manager, no service, no user network). The clients:

- the docker CLI that a fresh Debian 12 gets (`docker.io` 20.10, API 1.41), unpacked by `make setup`
  into .state/docker-cli and run by explicit path inside a testbed host, on its /run/shoal/shoal.sock;
- the docker SDK for Python (`docker` on PyPI) on a host's socket;
- community.docker's swarm modules (the `ansible` package on PyPI bundles them), through ssh.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator

import pytest

from compat.clients import (
    DOCKER,
    DOCKER_CONFIG,
    HOSTS,
    MANAGER,
    Transcript,
    docker_cli,
    ok,
    reset_agents,
    wait_nodes_ready,
)
from integration.cluster_helpers import api, wait_for
from integration.conftest import bed, root_before  # noqa: F401  (session fixtures, the testbed lock)
from shoal.cli.errors import APIError
from testbed.bed import Testbed


@pytest.fixture(scope="session")
def cluster(bed: Testbed) -> Iterator[Transcript]:  # noqa: F811
    if not DOCKER.exists():
        pytest.fail(f"{DOCKER} is missing: `make setup` unpacks Debian's docker.io CLI there")
    version = subprocess.run([str(DOCKER), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("Docker version 20.10."), version
    DOCKER_CONFIG.mkdir(parents=True, exist_ok=True)
    reset_agents(bed)
    t = Transcript()
    t.init = ok(docker_cli(bed, "swarm00", "swarm", "init", "--advertise-addr", "eth0"))
    t.join_token_worker = ok(docker_cli(bed, "swarm00", "swarm", "join-token", "worker"))
    t.join_token_manager = ok(docker_cli(bed, "swarm00", "swarm", "join-token", "manager"))
    t.worker_token = ok(docker_cli(bed, "swarm00", "swarm", "join-token", "-q", "worker")).strip()
    for host in HOSTS[1:]:
        t.joins[host] = ok(docker_cli(bed, host, "swarm", "join", "--token", t.worker_token, MANAGER))
    wait_nodes_ready(bed, HOSTS)
    yield t
    reset_agents(bed)
    for host in HOSTS:
        bed.stop_agent(host)


@pytest.fixture
def clean(bed: Testbed, cluster: Transcript) -> Iterator[Transcript]:  # noqa: F811
    """The session cluster; services and user networks a test made are removed after it."""
    yield cluster
    manager = api(bed, "swarm00")
    for s in manager.get("/services"):
        manager.delete(f"/services/{s['ID']}")
    wait_for("tasks gone", lambda: not manager.get("/tasks"), timeout=60)
    for n in manager.get("/networks"):
        if n["Scope"] == "swarm" and not n.get("Ingress"):
            with contextlib.suppress(APIError):
                manager.delete(f"/networks/{n['Id']}")
