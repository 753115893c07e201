"""Cluster events: the store's watch events turned into Docker event messages (scope `swarm`).

Shaped after moby's daemon/cluster events (logNodeEvent, logServiceEvent, ...): one message per
create/update/remove of a node, service, network (secret, config once shoal has them), with the
`name` attribute and, on updates, `*.old`/`*.new` pairs for what operators watch (availability,
role, state, leader, reachability of a node; image, replicas, update state of a service).
The store's events carry only the new object, so the translator remembers the last one it saw.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shoal.model import events

EVENT_KINDS = ("node", "service", "network", "secret", "config")
ACTIONS = {"create": "create", "update": "update", "delete": "remove"}


def node_name(node: dict[str, Any]) -> str:
    return (node.get("Spec") or {}).get("Name") or (node.get("Description") or {}).get("Hostname") or ""


def _pair(attrs: dict[str, str], key: str, old: Any, new: Any) -> None:
    if old != new:
        attrs[f"{key}.old"] = _text(old)
        attrs[f"{key}.new"] = _text(new)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value).lower()


def node_attributes(node: dict[str, Any], old: dict[str, Any] | None) -> dict[str, str]:
    attrs = {"name": node_name(node)}
    if old is None:
        return attrs
    spec, old_spec = node.get("Spec") or {}, old.get("Spec") or {}
    _pair(attrs, "availability", old_spec.get("Availability"), spec.get("Availability"))
    _pair(attrs, "role", old_spec.get("Role"), spec.get("Role"))
    _pair(attrs, "state", (old.get("Status") or {}).get("State"), (node.get("Status") or {}).get("State"))
    manager, old_manager = node.get("ManagerStatus"), old.get("ManagerStatus")
    if manager and old_manager:  # changes within the manager role
        _pair(attrs, "leader", bool(old_manager.get("Leader")), bool(manager.get("Leader")))
        _pair(attrs, "reachability", old_manager.get("Reachability"), manager.get("Reachability"))
    return attrs


def _image(service: dict[str, Any]) -> str | None:
    return (((service.get("Spec") or {}).get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image")


def _replicas(service: dict[str, Any]) -> Any:
    return (((service.get("Spec") or {}).get("Mode") or {}).get("Replicated") or {}).get("Replicas")


def service_attributes(service: dict[str, Any], old: dict[str, Any] | None) -> dict[str, str]:
    attrs = {"name": (service.get("Spec") or {}).get("Name", "")}
    if old is None:
        return attrs
    if _image(service) != _image(old):
        attrs["image.old"], attrs["image.new"] = _image(old) or "", _image(service) or ""
    if _replicas(service) is not None and _replicas(old) is not None and _replicas(service) != _replicas(old):
        attrs["replicas.old"], attrs["replicas.new"] = str(_replicas(old)), str(_replicas(service))
    state = (service.get("UpdateStatus") or {}).get("State")
    if state:
        old_state = (old.get("UpdateStatus") or {}).get("State")
        if not old.get("UpdateStatus"):
            attrs["updatestate.new"] = state.lower()
        elif old_state != state:
            attrs["updatestate.old"], attrs["updatestate.new"] = (old_state or "").lower(), state.lower()
    return attrs


def plain_attributes(obj: dict[str, Any]) -> dict[str, str]:
    return {"name": (obj.get("Spec") or {}).get("Name", "")}


class ClusterEvents:
    """Store watch events in, Docker event messages out. Seed it with the objects the store held
    when the watch began, so that the first update of each one has its old values."""

    def __init__(self, seed: Iterable[tuple[str, dict[str, Any]]] = ()) -> None:
        self._last: dict[tuple[str, str], dict[str, Any]] = {}
        for kind, obj in seed:
            if kind in EVENT_KINDS:
                self._last[(kind, obj["ID"])] = obj

    def translate(
        self, kind: str, action: str, obj: dict[str, Any], time_ns: int | None = None
    ) -> dict[str, Any] | None:
        if kind not in EVENT_KINDS or action not in ACTIONS:
            return None
        key = (kind, obj["ID"])
        old = self._last.get(key) if action == "update" else None
        if action == "delete":
            self._last.pop(key, None)
        else:
            self._last[key] = obj
        if kind == "node":
            attrs = node_attributes(obj, old)
        elif kind == "service":
            attrs = service_attributes(obj, old)
        else:
            attrs = plain_attributes(obj)
        return events.message(kind, ACTIONS[action], obj["ID"], attrs, "swarm", time_ns)
