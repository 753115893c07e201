"""Services pull like Docker Swarm, against the testbed's registry (htpasswd auth, its test CA):
`shoal service create --with-registry-auth` sends the docker config's credentials, the CLI pins
`image:tag@sha256:...`, the workers pull with the task's credentials; a failed pull rejects the
task with the registry's reason in `service ps` ERROR and the restart policy tries again; the
password shows nowhere a client or an operator looks. Agents run the `oci` task driver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.cluster_helpers import HOSTS, api, cli, form_cluster, save_logs, wait_for, wipe_cluster
from testbed import registry
from testbed.bed import Testbed

HELLO = registry.ref(registry.HELLO)
NODE_APP = registry.ref(registry.NODEJS_APP)


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=1, agent_args=["--task-driver", "oci"])
    yield bed
    wipe_cluster(bed, "test_service_pull")


@pytest.fixture
def docker_config(tmp_path: Path) -> Path:
    return registry.write_docker_config(tmp_path / "docker")


def shoal(bed: Testbed, *args: str, config: Path | None = None, timeout: float = 180) -> tuple[int, str, str]:
    if config is None:
        return cli(bed, "swarm00", *args, timeout=timeout)
    res = bed.run("swarm00", ["env", f"DOCKER_CONFIG={config}", "shoal", *args], timeout=timeout)
    return res.returncode, res.stdout, res.stderr


def tasks_of(bed: Testbed, service: str) -> list[dict[str, Any]]:
    return api(bed, "swarm00").get("/tasks", filters={"service": [service]})


def remove(bed: Testbed, service: str) -> None:
    service_id = api(bed, "swarm00").get(f"/services/{service}")["ID"]
    api(bed, "swarm00").delete(f"/services/{service}")
    # by ID over every task: a filter naming the removed service is a 404 now
    gone = lambda: not [t for t in api(bed, "swarm00").get("/tasks") if t["ServiceID"] == service_id]  # noqa: E731
    wait_for(f"{service}'s tasks gone", gone, timeout=60)


def everything_a_client_or_operator_reads(bed: Testbed, service: str) -> str:
    manager = api(bed, "swarm00")
    parts = [
        json.dumps(manager.get(f"/services/{service}")),
        json.dumps(manager.get("/services")),
        json.dumps(manager.get("/tasks")),
        *(json.dumps(manager.get(f"/tasks/{t['ID']}")) for t in tasks_of(bed, service)),
        shoal(bed, "service", "inspect", service)[1],
        shoal(bed, "service", "ps", "--no-trunc", service)[1],
        shoal(bed, "service", "logs", service, timeout=30)[1],
    ]
    for host in HOSTS:
        parts.append(json.dumps(api(bed, host).get("/shoal/local/tasks")))
        parts.append(bed.host(host).agent_log.read_text(errors="replace"))
        tasks_dir = bed.host(host).state_dir / "var" / "tasks"
        for name in ("task.json", "config.json"):
            parts += [p.read_text(errors="replace") for p in tasks_dir.glob(f"*/{name}")]
    return "\n".join(parts)


def test_with_registry_auth_pins_the_digest_and_workers_pull_with_it(cluster: Testbed, docker_config: Path) -> None:
    rc, _, err = shoal(
        cluster, "service", "create", "--name", "hello", "--replicas", "3", "--with-registry-auth", HELLO,
        config=docker_config,
    )  # fmt: skip
    assert rc == 0, err
    digest = registry.manifest_digest("testbed/hello", "1")
    assert digest.startswith("sha256:")
    spec = api(cluster, "swarm00").get("/services/hello")["Spec"]
    assert spec["TaskTemplate"]["ContainerSpec"]["Image"] == f"{HELLO}@{digest}"
    running = [t for t in tasks_of(cluster, "hello") if t["Status"]["State"] == "running"]
    assert len(running) == 3 and len({t["NodeID"] for t in running}) == 3  # every node pulled it
    assert registry.password() not in everything_a_client_or_operator_reads(cluster, "hello")
    # fresh credentials only: a pulled task is not replaced (SwarmKit's rule), and still not shown
    before = sorted(t["ID"] for t in running)
    rc, _, err = shoal(cluster, "service", "update", "--with-registry-auth", "hello", config=docker_config)
    assert rc == 0, err
    after = sorted(t["ID"] for t in tasks_of(cluster, "hello") if t["DesiredState"] == "running")
    assert after == before
    assert registry.password() not in everything_a_client_or_operator_reads(cluster, "hello")
    remove(cluster, "hello")


def errors_of(bed: Testbed, service: str) -> list[str]:
    rc, out, err = shoal(bed, "service", "ps", "--no-trunc", "--format", "{{.CurrentState}}|{{.Error}}", service)
    assert rc == 0, err
    return [line for line in out.splitlines() if line.startswith("Rejected")]


@pytest.mark.parametrize(
    ("image", "with_auth", "reason"),
    [
        (NODE_APP, False, "unauthorized"),
        (registry.ref("testbed/nosuch:1"), True, "No such image"),
    ],
)
def test_a_failed_pull_rejects_the_task_with_the_registrys_reason_and_is_retried(
    cluster: Testbed, docker_config: Path, image: str, with_auth: bool, reason: str
) -> None:
    flags = ["--with-registry-auth"] if with_auth else []
    rc, _, err = shoal(
        cluster, "service", "create", "-d", "--name", "nopull", "--restart-delay", "1s",
        "--constraint", "node.hostname==swarm01", *flags, image, config=docker_config,
    )  # fmt: skip
    assert rc == 0, err
    assert "could not be accessed on a registry to record its digest" in err  # nothing to pin
    rejected = wait_for("two rejected attempts", lambda: len(e := errors_of(cluster, "nopull")) >= 2 and e, 90)
    assert all(reason in line for line in rejected), rejected
    assert registry.password() not in everything_a_client_or_operator_reads(cluster, "nopull")
    remove(cluster, "nopull")


def test_registry_down_is_connection_refused(cluster: Testbed, docker_config: Path) -> None:
    registry.stop(cluster.state_dir)
    try:
        rc, _, err = shoal(
            cluster, "service", "create", "-d", "--name", "down", "--restart-delay", "1s", "--with-registry-auth",
            "--constraint", "node.hostname==swarm02", registry.ref("testbed/hello:2"), config=docker_config,
        )  # fmt: skip
        assert rc == 0, err
        rejected = wait_for("a rejected attempt", lambda: errors_of(cluster, "down"), 90)
        assert "connection refused" in rejected[0], rejected
    finally:
        registry.start(cluster.state_dir, cluster.hosts())
    remove(cluster, "down")
    save_logs(cluster, "test_service_pull")
