"""Task driver `sim`: tasks that are only recorded, for simulated nodes (`python -m shoal.sim`).

A task "runs" `start_delay` seconds after its start (the executor awaits `ready`), and can be
made to fail: at start (label `shoal.sim.fail=start`, or a `fail_rate` share of starts chosen by
the task ID, so that a rerun fails the same tasks) or later (`shoal.sim.exit=SECONDS[:CODE]`).
Nothing touches the kernel: no process, no namespace, no file. Every call returns at once, so the
executor calls it on the event loop (`blocking = False`): a thread hop per call was most of the
cost of a thousand simulated nodes.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from shoal.model.ids import now_rfc3339
from shoal.runtime.base import ExitStatus, NoSuchTask, RuntimeDriverError, TaskHandle, check_id

FAIL_LABEL = "shoal.sim.fail"  # "start": the start fails
EXIT_LABEL = "shoal.sim.exit"  # "SECONDS[:CODE]": the task ends that long after it started
DELAY_LABEL = "shoal.sim.delay"  # seconds from start to running, for this task
_PIDS = itertools.count(100_000)  # fake, but unique in the process: status reports carry a PID


@dataclass(slots=True)
class SimTask:
    """What one simulated task costs: a few floats (tens of thousands live in one process)."""

    handle: TaskHandle
    started: float  # time.monotonic() of the start
    exit_after: float | None  # seconds after start when it ends by itself
    exit_code: int
    status: ExitStatus | None = None


def _labels(task: Mapping[str, Any]) -> Mapping[str, str]:
    return ((task.get("Spec") or {}).get("ContainerSpec") or {}).get("Labels") or {}


def _share(task_id: str) -> float:
    """A stable number in [0, 1) from the task ID: which tasks `fail_rate` fails."""
    return int.from_bytes(hashlib.blake2b(task_id.encode(), digest_size=4).digest(), "big") / 2**32


class SimDriver:
    name = "sim"
    blocking = False  # calls return at once: the executor calls them on the event loop

    def __init__(self, start_delay: float = 0.0, fail_rate: float = 0.0) -> None:
        self.start_delay = start_delay
        self.fail_rate = fail_rate
        self.tasks: dict[str, SimTask] = {}
        self.delays: dict[str, float] = {}  # task -> its start delay, between start and ready
        self.starts = 0  # every start ever: a restarted task shows as more starts than tasks
        # task -> when a manager took its RUNNING report (time.time()): its commit, as the node saw it
        self.running_delivered: dict[str, float] = {}

    def delivered(self, reports: list[dict[str, Any]]) -> None:
        """Status reports a manager took (the task loop's hook)."""
        now = time.time()
        for r in reports:
            if r.get("State") == "running":
                self.running_delivered[str(r.get("ID"))] = now

    def prepare(self, task: Mapping[str, Any]) -> None:
        check_id(task.get("ID"))

    def start(self, task: Mapping[str, Any]) -> TaskHandle:
        tid = check_id(task.get("ID"))
        known = self.tasks.get(tid)
        if known is not None and known.status is None:
            return known.handle  # idempotent: already running
        labels = _labels(task)
        if labels.get(FAIL_LABEL) == "start" or (self.fail_rate and _share(tid) < self.fail_rate):
            raise RuntimeDriverError("sim: the start failed (as asked)")
        exit_after, exit_code = None, 0
        if EXIT_LABEL in labels:
            after, _, code = str(labels[EXIT_LABEL]).partition(":")
            exit_after, exit_code = float(after), int(code or 0)
        self.delays[tid] = float(labels.get(DELAY_LABEL, self.start_delay))
        handle = TaskHandle(tid, next(_PIDS), 0, 0, "", "", now_rfc3339())
        self.tasks[tid] = SimTask(handle, time.monotonic(), exit_after, exit_code)
        self.starts += 1
        return handle

    async def ready(self, task_id: str) -> None:
        """Returns once the started task runs (after its start delay)."""
        delay = self.delays.pop(task_id, 0.0)
        if delay > 0:
            await asyncio.sleep(delay)

    def poll(self, task_id: str) -> ExitStatus | None:
        task = self.tasks.get(task_id)
        if task is None:
            raise NoSuchTask(task_id)
        if task.status is None and task.exit_after is not None and time.monotonic() - task.started >= task.exit_after:
            task.status = ExitStatus(task.exit_code, finished_at=now_rfc3339())
        return task.status

    def wait(self, task_id: str, timeout: float | None = None) -> ExitStatus | None:
        return self.poll(task_id)  # never blocks: a running simulated task has nothing to wait for

    def stop(self, task_id: str, grace: float | None = None) -> ExitStatus | None:
        task = self.tasks.get(task_id)
        if task is None:
            return None
        if task.status is None:
            task.status = ExitStatus(137, signal=9, finished_at=now_rfc3339())
        return task.status

    def kill(self, task_id: str, sig: int = 9) -> None:
        task = self.tasks.get(task_id)
        if task is not None and task.status is None:
            task.status = ExitStatus(128 + sig, signal=sig, finished_at=now_rfc3339())

    def remove(self, task_id: str) -> None:
        self.tasks.pop(task_id, None)
        self.delays.pop(task_id, None)

    def logs(self, task_id: str, tail: int | None = None, follow: bool = False) -> Iterator[bytes]:
        if task_id not in self.tasks:
            raise NoSuchTask(task_id)
        return iter(())

    def list_running(self) -> list[TaskHandle]:
        return [t.handle for t in self.tasks.values() if t.status is None]

    def netns_path(self, task_id: str) -> str:
        raise RuntimeDriverError("a simulated task has no network namespace")

    def exec_command(self, task_id: str, argv: list[str], tty: bool = False) -> tuple[list[str], dict[str, str]]:
        raise RuntimeDriverError("a simulated task has no process to exec in")

    def adopt(self) -> list[TaskHandle]:
        return []  # simulated tasks die with their process: nothing to find again

    def running_ids(self) -> list[str]:
        return [tid for tid, t in self.tasks.items() if t.status is None]
