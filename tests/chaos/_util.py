"""Shared helpers of the chaos suite (on top of integration.cluster_helpers)."""

from __future__ import annotations

import statistics
import time
from typing import Any

from integration.cluster_helpers import HOSTS, api, nodes, wait_for
from testbed.bed import Testbed

SLEEPER = {
    "ContainerSpec": {"Image": "shoal/host", "Command": ["sleep", "3600"]},
    "RestartPolicy": {"Condition": "any", "Delay": 0},
}
HELLO = {"ContainerSpec": {"Image": "shoal/hello"}, "RestartPolicy": {"Condition": "any", "Delay": 0}}


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def leader_host(bed: Testbed, ask: str) -> str | None:
    """The leader as `ask` sees it (by Raft address), or None."""
    info = api(bed, ask, 2).get("/info")["Swarm"].get("Raft") or {}
    addr = info.get("Leader") or ""
    for host in HOSTS:
        if addr.startswith(bed.host(host).address + ":"):
            return host
    return None


def leaders_seen(bed: Testbed, host: str) -> list[str]:
    return [name for name, n in nodes(bed, host).items() if (n.get("ManagerStatus") or {}).get("Leader")]


def create_service(bed: Testbed, name: str, replicas: int = 1, template: dict | None = None, **spec: Any) -> str:
    body = {"Name": name, "TaskTemplate": template or SLEEPER, "Mode": {"Replicated": {"Replicas": replicas}}, **spec}
    return api(bed, "swarm00").post("/services/create", body)["ID"]


def set_replicas(bed: Testbed, name: str, replicas: int, via: str = "swarm00") -> None:
    for _ in range(5):  # the orchestrator may race our version; retry a 409 a few times
        svc = api(bed, via).get(f"/services/{name}")
        spec = dict(svc["Spec"], Mode={"Replicated": {"Replicas": replicas}})
        try:
            api(bed, via).post(f"/services/{name}/update", spec, version=svc["Version"]["Index"])
            return
        except Exception as exc:
            if getattr(exc, "status", None) != 409:
                raise
            time.sleep(0.2)
    raise AssertionError(f"could not scale {name}")


def local_tasks(bed: Testbed, prefix: str) -> dict[str, list[dict]]:
    """Tasks whose name starts with `prefix`, counted on every node itself (real processes)."""
    return {
        host: [t for t in api(bed, host).get("/shoal/local/tasks") if t["Name"].startswith(prefix)] for host in HOSTS
    }


def running(bed: Testbed, service: str, via: str = "swarm00") -> list[dict]:
    tasks = api(bed, via).get("/tasks", filters={"service": [service], "desired-state": ["running"]})
    return [t for t in tasks if t["Status"]["State"] == "running"]


def converged(bed: Testbed, service: str, n: int, timeout: float = 30, via: str = "swarm00") -> list[dict]:
    def check() -> list[dict] | None:
        tasks = api(bed, via).get("/tasks", filters={"service": [service]})
        live = [t for t in tasks if t["DesiredState"] == "running"]
        return live if len(live) == n and all(t["Status"]["State"] == "running" for t in live) else None

    return wait_for(f"{service} to run {n} tasks", check, timeout=timeout)
