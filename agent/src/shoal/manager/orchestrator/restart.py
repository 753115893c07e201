"""Restart supervision of a task that ended while it should run (SwarmKit's restart supervisor)."""

from __future__ import annotations

from typing import Any

from shoal.manager.orchestrator.plan import Plan
from shoal.model.task import restart_decision


def handle_ended(
    plan: Plan,
    service: dict[str, Any],
    task: dict[str, Any],
    history: list[dict[str, Any]],
    now_ns: int,
    slot: int | None,
    node_id: str | None,
) -> None:
    """The task ended with DesiredState running: restart it (after Delay) or leave the slot empty."""
    policy = service["Spec"]["TaskTemplate"].get("RestartPolicy") or {}
    restart, not_before = restart_decision(policy, task, history, now_ns)
    if not restart:
        plan.shutdown(task)  # the slot stays empty: `service ps` shows the task as it ended
        return
    if now_ns < not_before:
        plan.wake(not_before)
        return
    plan.shutdown(task)
    plan.create(service, slot, node_id)
