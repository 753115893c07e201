"""Docker's health state machine (pure, fake clock) and the probe runner (real processes, a driver
whose exec runs them on the host instead of in a container)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from shoal.model.healthcheck import effective
from shoal.worker.health import (
    HEALTHY,
    MAX_OUTPUT_LEN,
    STARTING,
    UNHEALTHY,
    HealthMonitor,
    HealthState,
    ProbeResult,
    cap_output,
)

NS = 1_000_000_000


def config(**fields: Any) -> dict[str, Any]:
    out = effective({"Test": ["CMD", "/bin/check"], **fields}, None)
    assert out is not None
    return out


def result(code: int, at: float) -> ProbeResult:
    return ProbeResult("s", "e", code, f"exit {code}", at)


def test_first_success_makes_it_healthy_and_retries_failures_unhealthy() -> None:
    state = HealthState(config(Retries=3), started_mono=0.0)
    assert state.status == STARTING
    assert state.record(result(0, 1.0)) == HEALTHY
    assert state.record(result(1, 2.0)) is None
    assert state.record(result(1, 3.0)) is None
    assert state.failing_streak == 2
    assert state.record(result(1, 4.0)) == UNHEALTHY
    assert state.failing_streak == 3


def test_a_success_resets_the_streak() -> None:
    state = HealthState(config(Retries=2), started_mono=0.0)
    state.record(result(1, 1.0))
    state.record(result(0, 2.0))
    assert (state.status, state.failing_streak) == (HEALTHY, 0)
    assert state.record(result(1, 3.0)) is None
    assert state.record(result(2, 4.0)) == UNHEALTHY  # any non-zero exit is a failure


def test_failures_inside_the_start_period_do_not_count_while_starting() -> None:
    state = HealthState(config(Retries=1, StartPeriod=10 * NS), started_mono=100.0)
    assert state.record(result(1, 105.0)) is None
    assert (state.status, state.failing_streak) == (STARTING, 0)
    assert state.record(result(1, 110.5)) == UNHEALTHY  # after the start period it counts


def test_failures_inside_the_start_period_count_once_healthy() -> None:
    state = HealthState(config(Retries=1, StartPeriod=10 * NS), started_mono=0.0)
    state.record(result(0, 1.0))
    assert state.record(result(1, 2.0)) == UNHEALTHY


def test_start_interval_applies_only_while_starting_inside_the_start_period() -> None:
    state = HealthState(config(Interval=30 * NS, StartPeriod=60 * NS, StartInterval=2 * NS), started_mono=0.0)
    assert state.next_delay(1.0) == 2.0
    assert state.next_delay(61.0) == 30.0
    state.record(result(0, 3.0))
    assert state.next_delay(4.0) == 30.0
    no_start_period = HealthState(config(Interval=7 * NS), started_mono=0.0)
    assert no_start_period.next_delay(0.0) == 7.0


def test_log_keeps_the_last_five_results_and_output_is_capped() -> None:
    state = HealthState(config(Retries=100), started_mono=0.0)
    for i in range(8):
        state.record(result(i % 2, float(i)))
    api = state.to_api()
    assert [r["ExitCode"] for r in api["Log"]] == [1, 0, 1, 0, 1]
    assert set(api["Log"][0]) == {"Start", "End", "ExitCode", "Output"}
    assert cap_output(b"x" * (MAX_OUTPUT_LEN + 10)) == "x" * MAX_OUTPUT_LEN + "..."
    assert cap_output(b"ok\n") == "ok\n"


class HostExecDriver:
    """exec_command runs the probe on the host: what the runner does with it is under test."""

    def __init__(self, tmp: Path, check: dict[str, Any] | None) -> None:
        self.tmp = tmp
        self.check = check
        self.calls: list[tuple[str, list[str], str | None]] = []

    def health_config(self, task_id: str) -> dict[str, Any] | None:
        return self.check

    def task_dir(self, task_id: str) -> Path:
        return self.tmp

    def exec_command(
        self, task_id: str, argv: list[str], tty: bool = False, pid_file: str | None = None
    ) -> tuple[list[str], dict[str, str]]:
        self.calls.append((task_id, argv, pid_file))
        return argv, {"PATH": "/usr/bin:/bin"}


def test_a_probe_that_hangs_is_killed_at_its_timeout(tmp_path: Path) -> None:
    driver = HostExecDriver(tmp_path, None)
    monitor = HealthMonitor(driver, lambda *_: None)
    cfg = config(Timeout=200_000_000)
    cfg["Test"] = ["CMD-SHELL", "exec sleep 30"]

    async def run() -> ProbeResult:
        return await monitor.probe("t1", cfg)

    res = asyncio.run(asyncio.wait_for(run(), 10))
    assert res.exit_code == -1
    assert res.output == "Health check exceeded timeout (200ms)"
    assert driver.calls[0][1] == ["/bin/sh", "-c", "exec sleep 30"]
    assert driver.calls[0][2] == str(tmp_path / "health-probe.pid")
    assert not (tmp_path / "health-probe.pid").exists()


def test_the_monitor_reports_healthy_then_unhealthy(tmp_path: Path) -> None:
    flag = tmp_path / "ok"
    flag.write_text("")
    cfg = config(Interval=20_000_000, Timeout=5 * NS, Retries=2)
    cfg["Test"] = ["CMD-SHELL", f"cat {flag}"]
    driver = HostExecDriver(tmp_path, cfg)
    changes: list[str] = []

    async def run() -> None:
        monitor = HealthMonitor(driver, lambda tid, status: changes.append(status))
        assert monitor.watch("t1")
        for _ in range(200):
            await asyncio.sleep(0.02)
            if changes == [HEALTHY]:
                flag.unlink()
                break
        for _ in range(200):
            await asyncio.sleep(0.02)
            if UNHEALTHY in changes:
                break
        health = monitor.health("t1")
        assert health is not None and health["Status"] == UNHEALTHY and health["FailingStreak"] == 2
        assert "No such file" in health["Log"][-1]["Output"]
        monitor.unwatch("t1")
        assert monitor.health("t1") is None

    asyncio.run(asyncio.wait_for(run(), 20))
    assert changes == [HEALTHY, UNHEALTHY]


def test_a_task_without_a_check_is_not_watched(tmp_path: Path) -> None:
    driver = HostExecDriver(tmp_path, None)

    async def run() -> bool:
        return HealthMonitor(driver, lambda *_: None).watch("t1")

    assert asyncio.run(run()) is False


@pytest.mark.parametrize("test", [["NONE"], []])
def test_no_check_when_disabled(test: list[str]) -> None:
    assert effective({"Test": test}, None) is None
