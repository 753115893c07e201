"""The compatibility suite's clients and helpers (see conftest.py)."""

from __future__ import annotations

import contextlib
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import docker

from integration.cluster_helpers import HOSTS, api, start_agent, wait_for
from shoal.cli.errors import APIError, CLIError
from testbed.bed import Testbed

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / ".state" / "docker-cli" / "usr" / "bin" / "docker"
DOCKER_CONFIG = REPO / ".state" / "docker-cli" / "config"  # the CLI's config dir: never ~/.docker
SOCKET = "unix:///run/shoal/shoal.sock"
MANAGER = "10.213.0.10:2377"


@dataclass
class Transcript:
    """What the docker CLI printed while forming the cluster (checked by the tests)."""

    init: str = ""
    join_token_worker: str = ""
    join_token_manager: str = ""
    worker_token: str = ""
    joins: dict[str, str] = field(default_factory=dict)


def docker_cli(bed: Testbed, host: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The Debian docker CLI inside `host`, on the host's shoal socket."""
    argv = ["env", f"DOCKER_CONFIG={DOCKER_CONFIG}", str(DOCKER), "-H", SOCKET, *args]
    return bed.run(host, argv, timeout=timeout)


def ok(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 0, f"{res.args[4:]} failed ({res.returncode}): {res.stdout}{res.stderr}"
    return res.stdout


def sdk(bed: Testbed, host: str = "swarm00") -> docker.DockerClient:
    """The docker SDK on a host's socket (seen from the root namespace's file system)."""
    return docker.DockerClient(base_url=f"unix://{bed.host(host).socket_path}", timeout=60)


def reset_agents(bed: Testbed) -> None:
    """Every host's agent restarted with empty state (no swarm)."""
    for host in HOSTS:
        with contextlib.suppress(APIError, CLIError):
            api(bed, host, 10).post("/swarm/leave", force=True)
        bed.stop_agent(host)
        bed.run(host, ["sh", "-c", "rm -rf /var/lib/shoal/*"])
        start_agent(bed, host)


def node_states(bed: Testbed) -> dict[str, str]:
    return {n["Description"]["Hostname"]: n["Status"]["State"] for n in api(bed, "swarm00").get("/nodes")}


def wait_nodes_ready(bed: Testbed, hosts: list[str], timeout: float = 60) -> None:
    wait_for(
        f"nodes {hosts} ready",
        lambda: (lambda s: sorted(s) == sorted(hosts) and set(s.values()) == {"ready"})(node_states(bed)),
        timeout=timeout,
    )


def wait_running(bed: Testbed, service: str, n: int, timeout: float = 90) -> list[dict]:
    def check() -> list[dict] | None:
        tasks = api(bed, "swarm00").get("/tasks", filters={"service": [service], "desired-state": ["running"]})
        live = [t for t in tasks if t["Status"]["State"] == "running"]
        return live if len(live) == n and len(tasks) == n else None

    return wait_for(f"{service} running {n} tasks", check, timeout=timeout, interval=0.3)
