"""Container events for this node's tasks (scope `local`), as dockerd logs them for swarm tasks:
the container's name `service.slot.taskid`, its image and the `com.docker.swarm.*` labels."""

from __future__ import annotations

from typing import Any

from shoal.model import events

# task state reported by the executor -> the container action docker logs at that point
ACTIONS = {"starting": "create", "running": "start", "complete": "die", "failed": "die", "shutdown": "die"}


def container_event(
    task: dict[str, Any], state: str, name: str, service_name: str, exit_code: int | None = None
) -> dict[str, Any] | None:
    action = ACTIONS.get(state)
    if action is None:
        return None
    spec = (task.get("Spec") or {}).get("ContainerSpec") or {}
    attrs = {
        "name": name,
        "image": spec.get("Image", ""),
        "com.docker.swarm.node.id": task.get("NodeID", ""),
        "com.docker.swarm.service.id": task.get("ServiceID", ""),
        "com.docker.swarm.service.name": service_name,
        "com.docker.swarm.task": "",
        "com.docker.swarm.task.id": task.get("ID", ""),
        "com.docker.swarm.task.name": name,
    }
    for key, value in (spec.get("Labels") or {}).items():
        attrs.setdefault(key, str(value))
    if action == "die":
        attrs["exitCode"] = str(exit_code if exit_code is not None else (0 if state != "failed" else 1))
    return events.message("container", action, task.get("ID", ""), attrs, "local")
