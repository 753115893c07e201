"""Health checks of running tasks: Docker's state machine (daemon/health.go) and the runner that
execs each probe inside its task through the runtime (`runc exec`), as the daemon does through
containerd.

`HealthState` is pure (the clock is passed in); `HealthMonitor` owns one asyncio task per checked
task that sleeps until the next probe, so the cost is one exec per interval per task and nothing
in between. At most `max_concurrent` probes run at once on the node (the machine's CPUs are few).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.model.healthcheck import probe_argv
from shoal.model.ids import format_duration, now_rfc3339

log = logging.getLogger("shoal.health")

NS = 1_000_000_000
MAX_LOG_ENTRIES = 5  # daemon/health.go maxLogEntries
MAX_OUTPUT_LEN = 4096  # daemon/health.go maxOutputLen (bytes kept of a probe's output)
EXIT_HEALTHY = 0
PROBE_ERROR_EXIT = -1  # the daemon's ExitCode for a probe that timed out or could not run
STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
MAX_CONCURRENT_PROBES = 4


@dataclass(frozen=True)
class ProbeResult:
    start: str  # RFC 3339, as Docker's HealthcheckResult
    end: str
    exit_code: int
    output: str
    started_mono: float  # the probe's start on the monotonic clock (start period arithmetic)

    def to_api(self) -> dict[str, Any]:
        return {"Start": self.start, "End": self.end, "ExitCode": self.exit_code, "Output": self.output}


def cap_output(data: bytes) -> str:
    """The daemon's limitedBuffer: the first 4096 bytes, then "..." when there was more."""
    text = data[:MAX_OUTPUT_LEN].decode(errors="replace")
    return text + "..." if len(data) > MAX_OUTPUT_LEN else text


class HealthState:
    """Docker's container Health (Status, FailingStreak, Log) for one task and its effective config
    (`shoal.model.healthcheck.effective`: every field set, durations in ns)."""

    def __init__(self, config: dict[str, Any], started_mono: float) -> None:
        self.config = config
        self.started_mono = started_mono
        self.status = STARTING
        self.failing_streak = 0
        self.log: list[ProbeResult] = []

    def _in_start_period(self, at_mono: float) -> bool:
        return at_mono - self.started_mono < self.config["StartPeriod"] / NS

    def next_delay(self, now_mono: float) -> float:
        """Seconds until the next probe: StartInterval while still starting inside the start period,
        else Interval (the daemon's getInterval)."""
        if self.status == STARTING and self._in_start_period(now_mono):
            return self.config["StartInterval"] / NS
        return self.config["Interval"] / NS

    def record(self, result: ProbeResult) -> str | None:
        """Fold one probe result in; the new status when it changed, else None. A failure while the
        task never was healthy and is inside its start period does not count (handleProbeResult)."""
        self.log = [*self.log, result][-MAX_LOG_ENTRIES:]
        before = self.status
        if result.exit_code == EXIT_HEALTHY:
            self.failing_streak = 0
            self.status = HEALTHY
        elif not (self.status == STARTING and self._in_start_period(result.started_mono)):
            self.failing_streak += 1
            if self.failing_streak >= self.config["Retries"]:
                self.status = UNHEALTHY
        return self.status if self.status != before else None

    def to_api(self) -> dict[str, Any]:
        """Docker's `State.Health` of a container."""
        return {
            "Status": self.status,
            "FailingStreak": self.failing_streak,
            "Log": [r.to_api() for r in self.log],
        }


class HealthMonitor:
    """Runs the health checks of this node's tasks. `driver` resolves a task's effective check
    (`health_config`) and the exec argv (`exec_command`); `on_change(task_id, status)` hears every
    status change (healthy, unhealthy) on the event loop."""

    def __init__(
        self,
        driver: Any,
        on_change: Callable[[str, str], None],
        max_concurrent: int = MAX_CONCURRENT_PROBES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.driver = driver
        self.on_change = on_change
        self.clock = clock
        self.states: dict[str, HealthState] = {}
        self._runners: dict[str, asyncio.Task[None]] = {}
        self._no_check: set[str] = set()  # tasks known to have none (asked once)
        self._slots = asyncio.Semaphore(max_concurrent)

    def config_of(self, task_id: str) -> dict[str, Any] | None:
        lookup = getattr(self.driver, "health_config", None)
        return lookup(task_id) if lookup is not None else None

    def watch(self, task_id: str) -> bool:
        """Start checking a task that just started (or was adopted); False if it has no check."""
        if task_id in self._runners:
            return True
        if task_id in self._no_check:
            return False
        config = self.config_of(task_id)
        if config is None:
            self._no_check.add(task_id)
            return False
        state = HealthState(config, self.clock())
        self.states[task_id] = state
        self._runners[task_id] = asyncio.get_running_loop().create_task(self._run(task_id, state))
        return True

    def unwatch(self, task_id: str) -> None:
        self._no_check.discard(task_id)
        self.states.pop(task_id, None)
        runner = self._runners.pop(task_id, None)
        if runner is not None and runner is not asyncio.current_task():
            runner.cancel()

    def close(self) -> None:
        for task_id in list(self._runners):
            self.unwatch(task_id)

    def health(self, task_id: str) -> dict[str, Any] | None:
        state = self.states.get(task_id)
        return state.to_api() if state is not None else None

    async def _run(self, task_id: str, state: HealthState) -> None:
        try:
            while self.states.get(task_id) is state:
                await asyncio.sleep(state.next_delay(self.clock()))
                result = await self.probe(task_id, state.config)
                if self.states.get(task_id) is not state:
                    return  # unwatched while the probe ran
                changed = state.record(result)
                if changed is not None:
                    log.info("task %s is %s (streak %d)", task_id, changed, state.failing_streak)
                    self.on_change(task_id, changed)
                if state.status == UNHEALTHY:
                    return  # the executor stops the task; nothing more to check
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug here must not leave the task unwatched silently
            log.exception("health check runner of task %s failed", task_id)

    async def probe(self, task_id: str, config: dict[str, Any]) -> ProbeResult:
        """One probe: the test exec'd in the task, killed when it exceeds Timeout. Its output goes
        to a file, not a pipe: a process the probe left behind cannot hold the runner up."""
        async with self._slots:
            started_mono, start = self.clock(), now_rfc3339()
            timeout = config["Timeout"] / NS
            pid_file, out_file = _probe_files(self.driver, task_id)
            try:
                argv, env = await asyncio.to_thread(
                    self.driver.exec_command, task_id, probe_argv(config["Test"]), False, str(pid_file)
                )
                with open(out_file, "wb") as out:
                    proc = await asyncio.create_subprocess_exec(
                        *argv, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out
                    )
            except Exception as exc:
                return ProbeResult(start, now_rfc3339(), PROBE_ERROR_EXIT, str(exc), started_mono)
            try:
                code = await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                await _kill_probe(pid_file, proc)
                message = f"Health check exceeded timeout ({format_duration(config['Timeout'])})"
                return ProbeResult(start, now_rfc3339(), PROBE_ERROR_EXIT, message, started_mono)
            except asyncio.CancelledError:  # unwatched (the task stops): the probe goes with it
                await _kill_probe(pid_file, proc)
                raise
            finally:
                with contextlib.suppress(OSError):
                    pid_file.unlink()
            return ProbeResult(start, now_rfc3339(), code, cap_output(_head(out_file)), started_mono)


def _probe_files(driver: Any, task_id: str) -> tuple[Path, Path]:
    """Where `runc exec --pid-file` writes the probe's pid, and its output (the task's directory)."""
    task_dir = getattr(driver, "task_dir", None)
    base = Path(task_dir(task_id)) if task_dir is not None else Path("/tmp")
    return base / "health-probe.pid", base / "health-probe.out"


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(MAX_OUTPUT_LEN + 1)
    except OSError:
        return b""


async def _kill_probe(pid_file: Path, proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the probe process inside the task (runc exec cannot forward SIGKILL), then runc."""
    try:
        pid = int(pid_file.read_text().strip() or 0)
    except (OSError, ValueError):
        pid = 0
    if pid > 0:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(proc.wait(), 5.0)
