"""An image's HEALTHCHECK on real agents (issue 14): a service that sets no check of its own runs the
one in its image's config, as Docker does: its task is `starting` until the check passes, then
`running` (healthy); an image whose check always fails has its task failed as unhealthy and replaced
by the restart policy; `--no-healthcheck` turns the image's check off. The images come from the
testbed's registry (tests/testbed/registry.py: testbed/healthy:1, testbed/unhealthy:1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.cluster_helpers import api, form_cluster, wait_for, wipe_cluster
from testbed import registry
from testbed.bed import Testbed

HEALTHY = registry.ref(registry.HEALTHY)
UNHEALTHY = registry.ref(registry.UNHEALTHY)
UNHEALTHY_ERR = "dockerexec: unhealthy container"  # SwarmKit's ErrContainerUnhealthy, as the worker reports it


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=1, agent_args=["--task-driver", "oci"])
    yield bed
    wipe_cluster(bed, "test_image_healthcheck")


@pytest.fixture
def docker_config(tmp_path: Path) -> Path:
    return registry.write_docker_config(tmp_path / "docker")


def create(bed: Testbed, config: Path, name: str, image: str, *flags: str) -> None:
    argv = ["env", f"DOCKER_CONFIG={config}", "shoal", "service", "create", "--detach", "--with-registry-auth"]
    res = bed.run("swarm00", [*argv, "--name", name, *flags, image], timeout=120)
    assert res.returncode == 0, res.stderr


def tasks(bed: Testbed, service: str) -> list[dict[str, Any]]:
    return api(bed, "swarm00").get("/tasks", filters={"service": [service]})


def local_health(bed: Testbed, task: dict[str, Any]) -> dict[str, Any] | None:
    """The task's Health as its node reports it (`/shoal/local/tasks`), None without a check."""
    host = {n["ID"]: n["Description"]["Hostname"] for n in api(bed, "swarm00").get("/nodes")}[task["NodeID"]]
    (row,) = [r for r in api(bed, host).get("/shoal/local/tasks") if r["ID"] == task["ID"]]
    return row.get("Health")


def states_until_running(bed: Testbed, service: str, timeout: float = 90) -> list[str]:
    """The states the service's first task went through (sampled) until it runs."""
    seen: list[str] = []

    def probe() -> bool:
        mine = tasks(bed, service)
        state = mine[0]["Status"]["State"] if mine else ""
        if state and (not seen or seen[-1] != state):
            seen.append(state)
        return state == "running"

    wait_for(f"{service} running", probe, timeout=timeout, interval=0.1)
    return seen


def test_a_service_without_a_check_runs_its_images_check(cluster: Testbed, docker_config: Path) -> None:
    create(cluster, docker_config, "imgok", HEALTHY)
    spec = api(cluster, "swarm00").get("/services/imgok")["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert "HealthCheck" not in spec and "Healthcheck" not in spec  # the check is the image's
    seen = states_until_running(cluster, "imgok")
    # starting (the container runs, the first check comes after the image's 2 s interval), then healthy
    assert seen[-2:] == ["starting", "running"], seen
    (task,) = tasks(cluster, "imgok")
    assert task["Status"]["Message"] == "started"
    # the node's view (Docker's State.Health): the image's check ran and passed
    health = local_health(cluster, task)
    assert health is not None and health["Status"] == "healthy" and health["FailingStreak"] == 0, health
    assert health["Log"] and health["Log"][-1]["ExitCode"] == 0, health
    api(cluster, "swarm00").delete("/services/imgok")

    # --no-healthcheck: the image's check is off (Test NONE), the task runs without one
    create(cluster, docker_config, "imgoff", HEALTHY, "--no-healthcheck")
    spec = api(cluster, "swarm00").get("/services/imgoff")["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert spec["HealthCheck"] == {"Test": ["NONE"]}
    states_until_running(cluster, "imgoff")
    (task,) = tasks(cluster, "imgoff")
    assert local_health(cluster, task) is None  # no check runs
    api(cluster, "swarm00").delete("/services/imgoff")


def test_an_images_failing_check_fails_the_task_and_it_is_replaced(cluster: Testbed, docker_config: Path) -> None:
    create(cluster, docker_config, "imgbad", UNHEALTHY, "--restart-delay", "0s")

    def replaced() -> list[dict[str, Any]] | None:
        mine = tasks(cluster, "imgbad")
        failed = [t for t in mine if t["Status"]["State"] == "failed"]
        fresh = [t for t in mine if t["DesiredState"] == "running" and t["ID"] not in {f["ID"] for f in failed}]
        return failed if failed and fresh else None

    failed = wait_for("an unhealthy task failed and replaced", replaced, timeout=90, interval=0.5)
    assert failed[0]["Status"]["Err"] == UNHEALTHY_ERR, failed[0]["Status"]
    # it was never running: an unhealthy task never counts as up
    assert not [t for t in tasks(cluster, "imgbad") if t["Status"]["State"] == "running"]
    api(cluster, "swarm00").delete("/services/imgbad")
