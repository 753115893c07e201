"""Waiting for a service to converge after create/update/scale/rollback, with docker's progress.

Shaped after docker's cli/command/service/progress: one line for the overall count, one per
slot (replicated) or node (global) while there are at most 20, then a stability check of the
update monitor period (5 s by default) before `verify: Service <id> converged`. On a terminal
the lines are redrawn in place; otherwise a line is printed each time it changes.

shoal adds a timeout: when the number of running tasks has not reached a new high for `timeout`
(plus the update delay and monitor period), the wait fails with the reason (the last task error)
and exit status 1.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TextIO

from shoal.cli.client import Client
from shoal.cli.errors import APIError, CLIError
from shoal.model.ids import short_id

NUMBERED_STATES = {
    "new": 1,
    "allocated": 2,
    "pending": 3,
    "assigned": 4,
    "accepted": 5,
    "preparing": 6,
    "ready": 7,
    "starting": 8,
    "running": 9,
    "complete": 10,
    "shutdown": 11,
    "failed": 12,
    "rejected": 13,
}
RUNNING = NUMBERED_STATES["running"]
LONGEST_STATE = max(len(s) for s, n in NUMBERED_STATES.items() if n <= RUNNING or s == "complete")
MAX_PROGRESS_BARS = 20
DEFAULT_MONITOR = 5_000_000_000
POLL_INTERVAL = 0.2

Task = Mapping[str, Any]


def terminal_state(state: str) -> bool:
    return NUMBERED_STATES.get(state, 0) > RUNNING


def trunc_error(message: str, width: int = 75) -> str:
    message = message.replace("\n", " ")
    return message if len(message) <= width else message[: width - 1] + "\u2026"


def _state(task: Task) -> str:
    return str((task.get("Status") or {}).get("State", ""))


def _better(new: Task, old: Task) -> bool:
    """docker's choice between two tasks of one slot: the lowest desired state, then the lowest
    observed state (both appear during restarts and start-first updates)."""
    nd, od = NUMBERED_STATES[new.get("DesiredState", "")], NUMBERED_STATES[old.get("DesiredState", "")]
    if nd != od:
        return nd < od
    return NUMBERED_STATES[_state(new)] < NUMBERED_STATES[_state(old)]


def _counted(task: Task) -> bool:
    return NUMBERED_STATES.get(task.get("DesiredState", ""), 0) > 0 and NUMBERED_STATES.get(_state(task), 0) > 0


def up_to_date(tasks: Iterable[Task], template: Mapping[str, Any]) -> list[Task]:
    """The tasks made from the current TaskTemplate, when the agent's tasks say so (a task's Spec
    is a copy of the template it was made from); all of them when none matches exactly (the agent
    may normalise specs), so that this never hides every task."""
    tasks = list(tasks)
    current = [t for t in tasks if t.get("Spec") == template]
    return current or tasks


class Tracker:
    """What docker's replicated/global progress updaters print, without the printing."""

    def __init__(self, width: int = 0) -> None:
        self.width = width  # of the terminal: docker draws bars only on wide ones
        self.slot_map: dict[Any, int] = {}
        self.initialized = False
        self.running = 0
        self.desired = 0
        self.last_error = ""

    def _task_line(self, task: Task) -> str | None:
        status = task.get("Status") or {}
        if status.get("Err"):
            self.last_error = str(status["Err"])
            return trunc_error(self.last_error)
        if not terminal_state(task.get("DesiredState", "")) and not terminal_state(_state(task)):
            return _state(task).ljust(LONGEST_STATE) + bar(NUMBERED_STATES[_state(task)], RUNNING, self.width)
        return None

    def update(
        self, service: Mapping[str, Any], tasks: Iterable[Task], active_nodes: set[str], rollback: bool = False
    ) -> tuple[bool, list[tuple[str, str]]]:
        """(converged, [(line id, text), ...]) for one poll."""
        mode = (service.get("Spec") or {}).get("Mode") or {}
        counted = [t for t in tasks if _counted(t)]
        lines: list[tuple[str, str]] = []
        if "Global" in mode:
            by_key: dict[Any, Task] = {}
            for t in counted:
                old = by_key.get(t.get("NodeID"))
                if old is None or _better(t, old):
                    by_key[t.get("NodeID")] = t
            self.desired = len(by_key)
            if not by_key:
                return False, [("overall progress", "waiting for new tasks")]
            keyed = sorted(by_key.items(), key=lambda kv: str(kv[0]))
            labels = {k: short_id(str(k)) for k, _ in keyed}
        else:
            self.desired = int((mode.get("Replicated") or {}).get("Replicas") or 0)
            by_key = {}
            for t in counted:
                node = t.get("NodeID")
                if node and node not in active_nodes:
                    continue
                old = by_key.get(t.get("Slot"))
                if old is None or _better(t, old):
                    by_key[t.get("Slot")] = t
            keyed = sorted(by_key.items(), key=lambda kv: int(kv[0] or 0))
            for slot, _ in keyed:
                self.slot_map.setdefault(slot, len(self.slot_map) + 1)
            labels = {k: f"{self.slot_map[k]}/{self.desired}" for k, _ in keyed}
            if not self.initialized and self.desired <= MAX_PROGRESS_BARS:  # every slot's line, in order
                lines += [(f"{i}/{self.desired}", "") for i in range(1, self.desired + 1)]
            self.initialized = True
        self.running = sum(
            1
            for k, t in keyed
            if not terminal_state(t.get("DesiredState", ""))
            and _state(t) == "running"
            and ("Global" not in mode or k in active_nodes)
        )
        verb = "rolling back update: " if rollback else ""
        lines.insert(0, ("overall progress", f"{verb}{self.running} out of {self.desired} tasks"))
        if self.desired <= MAX_PROGRESS_BARS:
            for key, task in keyed:
                text = self._task_line(task)
                if text is not None and ("Global" not in mode or key in active_nodes):
                    lines.append((labels[key], text))
        return self.running == self.desired, lines


def bar(current: int, total: int, width: int = 0) -> str:
    """docker's progress bar (jsonmessage): 50 columns, only on terminals wider than 110."""
    if width <= 110 or total <= 0:
        return ""
    filled = min(50, int(current / total * 100) // 2)
    return f" [{'=' * filled}>{' ' * (50 - filled)}]" if filled < 50 else f" [{'=' * 50}>]"


class View:
    """Progress lines by id, printed in first-seen order: redrawn on a terminal, appended otherwise."""

    def __init__(self, out: TextIO, tty: bool | None = None, quiet: bool = False) -> None:
        self.out = out
        self.quiet = quiet
        self.tty = out.isatty() if tty is None else tty
        self.width = shutil.get_terminal_size().columns if self.tty else 0
        self.lines: dict[str, str] = {}
        self.drawn = 0
        self.dirty = False

    def set(self, key: str, text: str) -> None:
        if self.quiet or self.lines.get(key) == text:
            return
        self.lines[key] = text
        self.dirty = True
        if not self.tty and text:  # a slot's empty placeholder line only matters on a terminal
            self.out.write(f"{key}: {text}".rstrip() + "\n")
            self.out.flush()

    def draw(self) -> None:
        if not self.tty or self.quiet or not self.dirty:
            return
        up = f"\x1b[{self.drawn}A" if self.drawn else ""
        body = "".join(f"\r\x1b[2K{key}: {text}\n" for key, text in self.lines.items())
        self.out.write(up + body)
        self.out.flush()
        self.drawn = len(self.lines)
        self.dirty = False


def _active_nodes(api: Client) -> set[str]:
    return {str(n.get("ID")) for n in api.get("/nodes") or () if (n.get("Status") or {}).get("State") != "down"}


def wait_for_service(
    api: Client,
    service_id: str,
    *,
    out: TextIO | None = None,
    quiet: bool = False,
    timeout_ns: int = 60_000_000_000,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll until the service's up-to-date tasks run and stay running for the monitor period."""
    view = View(out or sys.stdout, quiet=quiet)
    tracker = Tracker(view.width)
    # docker's `_up-to-date` filter; an agent that refuses it (400) is asked without it, and the
    # tasks made from an older template are then set aside here (see up_to_date)
    filters: dict[str, list[str]] = {"_up-to-date": ["true"]}

    def tasks_of(service_id: str) -> list[Task]:
        try:
            return api.get("/tasks", filters={"service": [service_id], **filters}) or []
        except APIError as e:
            if e.status != 400 or not filters:
                raise
            filters.clear()
            return api.get("/tasks", filters={"service": [service_id]}) or []

    converged_at: float | None = None
    best, best_at = -1, clock()
    rollback = False
    final: tuple[str, str] | None = None
    try:
        while True:
            service = api.get(f"/services/{service_id}")
            spec = service.get("Spec") or {}
            rollout = spec.get("RollbackConfig" if rollback else "UpdateConfig") or {}
            monitor = int((spec.get("UpdateConfig") or {}).get("Monitor") or DEFAULT_MONITOR)
            # a rolling update waits Delay between batches and Monitor after each: not a stall
            patience = timeout_ns + int(rollout.get("Delay") or 0) + monitor
            status = service.get("UpdateStatus") or {}
            state, message = status.get("State"), str(status.get("Message") or "")
            if state == "updating":
                rollback = False
            elif state == "paused":
                raise CLIError(f"service update paused: {message}")
            elif state == "rollback_started":
                if not rollback and message:
                    view.set("rollback", message)
                rollback = True
            elif state == "rollback_paused":
                raise CLIError(f"service rollback paused: {message}")
            elif state == "rollback_completed":
                final = ("rollback", message) if message else None
                rollback = True
            now = clock()
            if converged_at is not None and (now - converged_at) * 1e9 >= monitor:
                view.set("verify", f"Service {service_id} converged")
                if final:
                    view.set(*final)
                view.draw()
                return
            tasks = up_to_date(tasks_of(service["ID"]), spec.get("TaskTemplate") or {})
            converged, lines = tracker.update(service, tasks, _active_nodes(api), rollback)
            for key, text in lines:
                view.set(key, text)
            if converged:
                converged_at = now if converged_at is None else converged_at
                wait_s = (monitor - (now - converged_at) * 1e9) / 1e9
                if wait_s >= 0:
                    view.set("verify", f"Waiting {int(wait_s) + 1} seconds to verify that tasks are stable...")
            else:
                if converged_at is not None:
                    view.set("verify", "Detected task failure")
                converged_at = None
            view.draw()
            if tracker.running > best:
                best, best_at = tracker.running, now
            elif not converged and (now - best_at) * 1e9 >= patience:
                reason = f": {tracker.last_error}" if tracker.last_error else ""
                raise CLIError(
                    f"service {service_id} did not converge: {tracker.running} out of {tracker.desired} tasks "
                    f"running after {(now - best_at):.0f}s without progress{reason}"
                )
            sleep(POLL_INTERVAL)
    except KeyboardInterrupt:
        if converged_at is not None:
            return
        print("Operation continuing in background.", file=view.out)
        print(f"Use `shoal service ps {service_id}` to check progress.", file=view.out)
