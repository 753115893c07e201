"""What one reconcile pass decides: tasks to create, tasks to change, tasks to delete."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shoal.model.task import new_task


@dataclass
class Plan:
    now: str
    creates: list[dict[str, Any]] = field(default_factory=list)
    updates: dict[str, dict[str, Any]] = field(default_factory=dict)  # task id -> new task
    deletes: set[str] = field(default_factory=set)
    service_updates: dict[str, dict[str, Any]] = field(default_factory=dict)  # service id -> new service
    node_updates: dict[str, dict[str, Any]] = field(default_factory=dict)  # node id -> node with attachments
    wake_at_ns: int | None = None  # earliest restart delay or update delay to come back for
    wakes: int = 0  # wake-ups asked for (a reconcile that asked for one depends on the clock)

    def shutdown(self, task: dict[str, Any], desired: str = "shutdown", message: str | None = None) -> None:
        """Change the desired state (only forward); the worker stops the task."""
        current = self.updates.get(task["ID"], task)
        if current["DesiredState"] == desired:
            return
        # a new top level over the same nested values: stored objects are never changed in place (a
        # write replaces them), and a deep copy of each task was half of the pass that replaces 100
        # lost nodes' 3,000 tasks (1.1 of 2.0 s at 30,000 tasks, bench/scale_leader.py)
        updated = {**current, "DesiredState": desired, "UpdatedAt": self.now}
        if message and updated["Status"]["State"] in ("new", "pending"):
            # never reached a node: nothing will report on it, so end it here
            updated["Status"] = {**updated["Status"], "State": "shutdown", "Message": message, "Timestamp": self.now}
        self.updates[task["ID"]] = updated

    def create(self, service: dict[str, Any], slot: int | None, node_id: str | None) -> dict[str, Any]:
        task = new_task(service, slot, node_id, self.now)
        self.creates.append(task)
        return task

    def wake(self, at_ns: int) -> None:
        self.wakes += 1
        if self.wake_at_ns is None or at_ns < self.wake_at_ns:
            self.wake_at_ns = at_ns

    def mark(self) -> tuple[int, ...]:
        """What the plan holds so far, to tell whether one service's reconcile added anything (a task
        belongs to one service, so what it changes only adds to these)."""
        return len(self.creates), len(self.updates), len(self.deletes), len(self.service_updates), self.wakes

    def changed(self) -> bool:
        return bool(self.creates or self.updates or self.deletes or self.service_updates or self.node_updates)
