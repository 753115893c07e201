"""Issue 12: a task whose agent stops between ACCEPTED and the delivery of its later reports is not
left ACCEPTED. The task's pull is slowed (the registry's traffic to that node is rate limited in the
controller namespace), so it sits ACCEPTED long enough to make the managers unreachable: the task
starts while its STARTING/RUNNING reports cannot be delivered, then its agent is killed with them
queued. The restarted agent adopts the running task, and the store must hear that it runs: the
same task (not a replacement), the same process. On a worker (its only manager killed) and on the
leader itself (its two fellow managers killed: no quorum; they come back first, so the leadership
may move while it restarts), the VM case of the issue. Agents run the `oci` task driver."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.cluster_helpers import api, cli, form_cluster, start_agent, wait_for, wipe_cluster
from testbed import registry
from testbed.bed import Testbed
from testbed.layout import CONTROLLER_NS

HELLO = registry.ref(registry.HELLO)
SLOW_TABLE = "shoal_test_slow_pull"
PULL_RATE = "96 kbytes/second"  # the image's 1 MB layer takes ~10 s to pull: the window to act in


@pytest.fixture
def docker_config(tmp_path: Path) -> Path:
    return registry.write_docker_config(tmp_path / "docker")


def nft(script: str, check: bool = True) -> None:
    """nft in the testbed's controller namespace (where the registry runs), never the root one."""
    subprocess.run(["ip", "netns", "exec", CONTROLLER_NS, "nft", "-f", "-"], input=script, text=True, check=check)


def slow_pulls_to(bed: Testbed, host: str) -> None:
    addr = bed.host(host).address
    nft(
        f"table ip {SLOW_TABLE} {{\n chain out {{\n type filter hook output priority 0; policy accept;\n"
        f" ip daddr {addr} tcp sport {registry.PORT} limit rate over {PULL_RATE} drop\n }}\n}}\n"
    )


def fast_pulls() -> None:
    nft(f"delete table ip {SLOW_TABLE}", check=False)


def task_of(bed: Testbed, manager: str, service: str) -> dict[str, Any] | None:
    tasks = api(bed, manager, 5).get("/tasks", filters={"service": [service]})
    return tasks[0] if len(tasks) == 1 else None


def local_pid(bed: Testbed, host: str, task_id: str) -> int | None:
    """The pid of the task as its node's agent sees it running (the local API: no manager needed)."""
    for row in api(bed, host, 5).get("/shoal/local/tasks"):
        if row["ID"] == task_id:  # listed only while it runs (its Status is the assigned copy's)
            return row.get("Pid") or None
    return None


def stuck_report_then_restart(
    bed: Testbed, docker_config: Path, host: str, unreachable: list[str], back_first: list[str], ask: str
) -> None:
    """A task on `host` made ACCEPTED; `unreachable` agents killed (its reports then go nowhere);
    once it runs, `host`'s agent killed; `back_first` then `host` started; `ask` must see it run."""
    slow_pulls_to(bed, host)
    try:
        res = bed.run(
            "swarm00",  # a manager in both cases
            ["env", f"DOCKER_CONFIG={docker_config}", "shoal", "service", "create", "-d", "--name", "slow",
             "--with-registry-auth", "--constraint", f"node.hostname=={host}", HELLO],
            timeout=60,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        task = wait_for(
            "the task ACCEPTED (its pull slowed)",
            lambda: (t := task_of(bed, "swarm00", "slow")) and t["Status"]["State"] == "accepted" and t,
            timeout=30,
        )
        for other in unreachable:
            bed.stop_agent(other, kill=True)
        pid = wait_for("the task running on its node", lambda: local_pid(bed, host, task["ID"]), timeout=90)
        bed.stop_agent(host, kill=True)  # with its STARTING/RUNNING reports undelivered
    finally:
        fast_pulls()
    for other in back_first:
        start_agent(bed, other, ["--task-driver", "oci"])
    start_agent(bed, host, ["--task-driver", "oci"])
    state: list[Any] = []

    def running() -> bool:
        t = task_of(bed, ask, "slow")
        state[:] = [t and (t["ID"], t["Status"]["State"], t["Status"].get("Err"))]
        return bool(t) and t["Status"]["State"] == "running"

    try:
        wait_for("the adopted task reported running", running, timeout=60, interval=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the task: {state}") from None
    t = task_of(bed, ask, "slow")
    assert t is not None and t["ID"] == task["ID"]  # the same task, not a replacement
    assert t["Status"]["ContainerStatus"]["PID"] == pid  # the same process: adopted, not restarted
    assert local_pid(bed, host, task["ID"]) == pid
    rc, _, err = cli(bed, ask, "service", "rm", "slow")
    assert rc == 0, err


def slow_heartbeats(bed: Testbed) -> None:
    """A 15 s grace: a node whose agent takes a few seconds to come back is not Down meanwhile (its
    task would be replaced: another matter than the one tested here)."""
    rc, _, err = cli(bed, "swarm00", "swarm", "update", "--dispatcher-heartbeat", "5s")
    assert rc == 0, err


@pytest.fixture
def one_manager(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=1, agent_args=["--task-driver", "oci"])
    slow_heartbeats(bed)
    yield bed
    wipe_cluster(bed, "test_task_restart_worker")


@pytest.fixture
def three_managers(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=3, agent_args=["--task-driver", "oci"])
    slow_heartbeats(bed)
    yield bed
    wipe_cluster(bed, "test_task_restart_manager")


def test_worker_restarted_with_reports_queued_reports_its_adopted_task(
    one_manager: Testbed, docker_config: Path
) -> None:
    stuck_report_then_restart(
        one_manager, docker_config, "swarm01", unreachable=["swarm00"], back_first=["swarm00"], ask="swarm00"
    )


def test_leader_restarted_with_reports_queued_reports_its_adopted_task(
    three_managers: Testbed, docker_config: Path
) -> None:
    stuck_report_then_restart(
        three_managers,
        docker_config,
        "swarm00",
        unreachable=["swarm01", "swarm02"],
        back_first=["swarm01", "swarm02"],
        ask="swarm01",
    )
