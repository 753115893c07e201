"""An agent restart adopts the tasks still running; when the store's copy of such a task lags what
runs (the previous agent's STARTING/RUNNING report was queued or on the way when it stopped), the
new agent reports it at the first assignment that shows the store's state (issue 12: a task kept
ACCEPTED for minutes after `systemctl restart shoald`). A task the store has as running already
costs no report; a later, older copy (increments keep a task's earlier status) changes nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shoal.model.healthcheck import effective
from shoal.runtime.base import ExitStatus, TaskHandle
from shoal.worker.executor import Executor


class RunningDriver:
    """Finds `t1` running at adoption (pid 4242); `checked`: it has a health check."""

    blocking = False

    def __init__(self, checked: bool = False) -> None:
        self.check = effective({"Test": ["CMD", "true"], "Interval": 3600_000_000_000}, None) if checked else None
        self.started: list[str] = []

    def adopt(self) -> list[TaskHandle]:
        return [TaskHandle("t1", 4242, 1, 4241, "ns", "/run/netns/ns", "now")]

    def prepare(self, task: dict[str, Any]) -> None: ...

    def start(self, task: dict[str, Any]) -> TaskHandle:
        self.started.append(task["ID"])
        return TaskHandle(task["ID"], 5151, 1, 5150, "ns", "/run/netns/ns", "now")

    def poll(self, task_id: str) -> ExitStatus | None:
        return None

    def exit_fd(self, task_id: str) -> int | None:
        return None

    def health_config(self, task_id: str) -> dict[str, Any] | None:
        return self.check


def task(state: str, desired: str = "running") -> dict[str, Any]:
    return {
        "ID": "t1",
        "ServiceID": "s1",
        "Slot": 1,
        "DesiredState": desired,
        "Status": {"State": state},
        "Spec": {"ContainerSpec": {"Image": "x"}},
    }


def reports_after(driver: RunningDriver, *copies: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """The reports of a restarted agent that adopted `t1`, then got `copies` of it in turn."""

    async def scenario() -> list[tuple[str, str, Any]]:
        ex = Executor(driver)  # type: ignore[arg-type]
        await ex.adopt()
        for copy in copies:
            ex.apply([copy])
            await asyncio.sleep(0.01)
        ex.close()
        return [(r["ID"], r["State"], r.get("PID")) for r in ex.take_reports()]

    return asyncio.run(asyncio.wait_for(scenario(), 10))


@pytest.mark.parametrize("held", ["assigned", "accepted", "starting"])
def test_adopted_task_the_store_has_before_running_is_reported_running(held: str) -> None:
    driver = RunningDriver()
    assert reports_after(driver, task(held)) == [("t1", "running", 4242)]
    assert driver.started == []  # adopted, never started twice


def test_adopted_task_the_store_has_running_costs_no_report() -> None:
    assert reports_after(RunningDriver(), task("running")) == []


def test_only_the_first_copy_counts() -> None:
    """Later copies of a task may carry an older status (status-only changes are not re-sent)."""
    assert reports_after(RunningDriver(), task("running"), task("accepted")) == []
    assert reports_after(RunningDriver(), task("accepted"), task("accepted")) == [("t1", "running", 4242)]


def test_adopted_checked_task_is_reported_starting_until_healthy() -> None:
    """With a health check, RUNNING waits for its first healthy result, as at a first start."""
    assert reports_after(RunningDriver(checked=True), task("accepted")) == [("t1", "starting", 4242)]


def test_adopted_task_told_to_stop_is_not_reported_running() -> None:
    class Stoppable(RunningDriver):
        def stop(self, task_id: str, grace: float | None = None) -> ExitStatus:
            return ExitStatus(exit_code=143)

    states = [state for _, state, _ in reports_after(Stoppable(), task("accepted", desired="shutdown"))]
    assert states == ["shutdown"]
