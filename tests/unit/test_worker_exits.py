"""The executor hears of a task's end from its monitor's pidfd at once (no status polling),
and the slow poll still covers tasks it cannot watch."""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

from shoal.runtime.base import ExitStatus
from shoal.worker.executor import Executor


class PipeDriver:
    """Stands in for the oci driver: a pipe's read end plays the pidfd of the task's conmon."""

    def __init__(self, with_fds: bool = True) -> None:
        self.ended: dict[str, ExitStatus] = {}
        self.writers: dict[str, int] = {}
        self.polls = 0
        if not with_fds:
            self.exit_fd = None  # type: ignore[assignment]

    def exit_fd(self, task_id: str) -> int | None:
        r, w = os.pipe()
        self.writers[task_id] = w
        return r

    def poll(self, task_id: str) -> ExitStatus | None:
        self.polls += 1
        return self.ended.get(task_id)

    def end(self, task_id: str, code: int) -> None:
        self.ended[task_id] = ExitStatus(exit_code=code)
        if task_id in self.writers:
            os.close(self.writers.pop(task_id))  # the "conmon" exits: its pidfd turns readable


async def _run(driver: Any, code: int) -> tuple[list[dict[str, Any]], float, int]:
    ex = Executor(driver)
    ex.state["t1"] = "running"
    ex.watch_exit("t1")
    polls_before = driver.polls
    loop = asyncio.get_running_loop()
    started = loop.time()
    driver.end("t1", code)
    for _ in range(200):
        if ex.reports:
            break
        await asyncio.sleep(0.005)
    took = loop.time() - started
    ex.close()
    return ex.take_reports(), took, driver.polls - polls_before


def test_exit_reported_from_the_pidfd_without_polling() -> None:
    reports, took, polls = asyncio.run(_run(PipeDriver(), 137))
    assert [(r["ID"], r["State"], r.get("ExitCode")) for r in reports] == [("t1", "failed", 137)]
    assert took < 0.5 and polls == 1  # one read of the status, when the fd said so


def test_clean_exit_is_complete() -> None:
    driver = PipeDriver()
    reports, _, _ = asyncio.run(_run(driver, 0))
    assert [r["State"] for r in reports] == ["complete"]


def test_tasks_without_a_pidfd_are_polled() -> None:
    async def scenario() -> list[dict[str, Any]]:
        driver = PipeDriver(with_fds=False)
        ex = Executor(driver)
        ex.state["t1"] = "running"
        ex.poll_unwatched()
        assert not ex.reports and not ex.exit_fds
        driver.end("t1", 1)
        ex.poll_unwatched()
        return ex.take_reports()

    assert [r["State"] for r in asyncio.run(scenario())] == ["failed"]


def test_a_task_that_ended_while_no_agent_ran_is_reported_with_its_exit_code() -> None:
    """After a restart the store still says running; the driver's record has the exit code."""
    from shoal.runtime.base import NoSuchTask

    class Restarted(PipeDriver):
        def poll(self, task_id: str) -> ExitStatus | None:
            if task_id == "gone":
                raise NoSuchTask(task_id)
            return super().poll(task_id)

    async def scenario() -> list[dict[str, Any]]:
        driver = Restarted(with_fds=False)
        driver.end("t1", 42)
        ex = Executor(driver)
        tasks = [
            {"ID": tid, "ServiceID": "s", "DesiredState": "running", "Status": {"State": "running"}, "Spec": {}}
            for tid in ("t1", "gone")
        ]
        ex.apply(tasks)
        for _ in range(200):
            if len(ex.reports) == 2:
                break
            await asyncio.sleep(0.005)
        return ex.take_reports()

    got = {r["ID"]: (r["State"], r.get("ExitCode"), r.get("Err")) for r in asyncio.run(scenario())}
    assert got == {
        "t1": ("failed", 42, "task: non-zero exit (42)"),
        "gone": ("failed", None, "task: not found on this node after the agent restarted"),
    }


class SlowStartDriver:
    """Records when each task's prepare and start run (both take a little while)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def prepare(self, task: dict[str, Any]) -> None:
        self.calls.append(f"prepare {task['ID']}")
        time.sleep(0.01)

    def start(self, task: dict[str, Any]) -> Any:
        self.calls.append(f"start {task['ID']}")
        time.sleep(0.01)
        return SimpleNamespace(pid=4242)

    def exit_fd(self, task_id: str) -> None:
        return None


def _assigned(tid: str) -> dict[str, Any]:
    return {"ID": tid, "ServiceID": "s1", "Slot": 1, "DesiredState": "running", "Status": {"State": "assigned"}}


def test_many_tasks_each_start_as_soon_as_prepared_and_report_in_order() -> None:
    async def scenario() -> tuple[list[str], list[dict[str, Any]]]:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(2))  # fewer threads than tasks, as 33 on 6
        driver = SlowStartDriver()
        ex = Executor(driver)
        ex.apply([_assigned(f"t{i}") for i in range(8)])
        for _ in range(400):
            if sum(r["State"] == "running" for r in ex.reports) == 8:
                break
            await asyncio.sleep(0.01)
        return driver.calls, ex.take_reports()

    calls, reports = asyncio.run(scenario())
    # the first task started before the last ones were even being prepared
    assert calls.index("start t0") < calls.index("prepare t7")
    for i in range(8):
        states = [r["State"] for r in reports if r["ID"] == f"t{i}"]
        assert states == ["accepted", "starting", "running"]


def test_a_jobs_task_wanted_complete_is_run_like_any_other() -> None:
    # SwarmKit makes a job's tasks with DesiredState complete: the worker must still start them
    async def scenario() -> list[dict[str, Any]]:
        ex = Executor(SlowStartDriver())
        ex.apply(
            [{**_assigned("job"), "DesiredState": "complete"}, {**_assigned("stopped"), "DesiredState": "shutdown"}]
        )
        for _ in range(400):
            if any(r["State"] == "running" for r in ex.reports):
                break
            await asyncio.sleep(0.01)
        return ex.take_reports()

    reports = asyncio.run(scenario())
    assert [r["State"] for r in reports if r["ID"] == "job"] == ["accepted", "starting", "running"]
    assert [r["State"] for r in reports if r["ID"] == "stopped"] == ["shutdown"]
