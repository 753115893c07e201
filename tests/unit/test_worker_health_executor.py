"""The executor with health checks (SwarmKit's container controller): a checked task is reported
STARTING with its pid, RUNNING after its first healthy result, and FAILED at once when unhealthy
(so it leaves its backends before its stop), then again with the exit code and SwarmKit's message.
The driver is a stand-in whose exec runs the probe on the host."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from shoal.model.healthcheck import effective
from shoal.runtime.base import ExitStatus, TaskHandle
from shoal.worker.executor import Executor


class CheckedDriver:
    def __init__(self, tmp: Path, flag: Path) -> None:
        self.tmp = tmp
        self.check = effective({"Test": ["CMD-SHELL", f"cat {flag}"], "Interval": 20_000_000, "Retries": 2}, None)
        self.stopped: list[tuple[str, float | None]] = []

    def prepare(self, task: dict[str, Any]) -> None: ...

    def start(self, task: dict[str, Any]) -> TaskHandle:
        return TaskHandle(task["ID"], 4242, 1, 4241, "ns", "/run/netns/ns", "now")

    def poll(self, task_id: str) -> ExitStatus | None:
        return None

    def exit_fd(self, task_id: str) -> int | None:
        return None

    def stop(self, task_id: str, grace: float | None = None) -> ExitStatus:
        self.stopped.append((task_id, grace))
        return ExitStatus(exit_code=143)

    def health_config(self, task_id: str) -> dict[str, Any] | None:
        return self.check

    def task_dir(self, task_id: str) -> Path:
        return self.tmp

    def exec_command(self, task_id: str, argv: list[str], tty: bool = False, pid_file: str | None = None) -> Any:
        return argv, {"PATH": "/usr/bin:/bin"}


TASK = {
    "ID": "t1",
    "ServiceID": "s1",
    "Slot": 1,
    "DesiredState": "running",
    "Status": {"State": "assigned"},
    "Spec": {"ContainerSpec": {"Image": "x", "StopGracePeriod": 2_000_000_000}},
}


def test_starting_until_healthy_then_failed_when_unhealthy(tmp_path: Path) -> None:
    flag = tmp_path / "ok"
    flag.write_text("")
    driver = CheckedDriver(tmp_path, flag)

    async def until(ex: Executor, pred: Any) -> None:
        for _ in range(400):
            if pred():
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"timed out; reports so far: {ex.reports}")

    async def scenario() -> list[dict[str, Any]]:
        ex = Executor(driver)  # type: ignore[arg-type]
        ex.drain_delay = 0.05
        ex.apply([TASK])
        await until(ex, lambda: ex.state.get("t1") == "running")
        flag.unlink()
        await until(ex, lambda: len([r for r in ex.reports if r["State"] == "failed"]) == 2)
        ex.close()
        return ex.take_reports()

    reports = asyncio.run(asyncio.wait_for(scenario(), 20))
    seen = [(r["State"], r.get("PID"), r.get("Err"), r.get("ExitCode")) for r in reports]
    assert seen == [
        ("accepted", None, None, None),
        ("starting", None, None, None),
        ("starting", 4242, None, None),  # started: RUNNING waits for the check
        ("running", None, None, None),  # healthy
        ("failed", None, "dockerexec: unhealthy container", None),  # out of the backends at once
        ("failed", None, "task: non-zero exit (143): dockerexec: unhealthy container", 143),
    ]
    assert driver.stopped == [("t1", 2.0)]  # its StopGracePeriod
