"""Pure helpers shared by the replicated and global reconcilers."""

from __future__ import annotations

from typing import Any

from shoal.model.task import is_terminal, task_dirty


def node_usable(node: dict[str, Any] | None) -> bool:
    """A task may keep running here: the node exists, is not Down and not drained."""
    return node is not None and node["Status"].get("State") != "down" and node["Spec"].get("Availability") != "drain"


def live(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in tasks if t["DesiredState"] == "running"]


def by_age(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(tasks, key=lambda t: (t["CreatedAt"], t["ID"]))


def up_to_date(task: dict[str, Any], service: dict[str, Any]) -> bool:
    """The task runs the service's current task template (SwarmKit's IsTaskDirty, negated)."""
    return not task_dirty(service, task)


def failed(task: dict[str, Any]) -> bool:
    return task["Status"]["State"] in ("failed", "rejected")


def ended(task: dict[str, Any]) -> bool:
    return is_terminal(task["Status"]["State"])
