"""Event messages in the Docker Engine API's shape (EventMessage) and Docker's event filters.

Pure: building a message, parsing `since`/`until`, checking and matching `filters` the way
moby's daemon/events/filter.go does (every given key must match; values of one key are ORed;
names match by ID or name, exact or as a prefix).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shoal.errors import InvalidArgument

# Docker's event types; shoal emits the swarm ones and `container` for task containers.
TYPES = ("container", "daemon", "image", "network", "node", "plugin", "volume", "service", "secret", "config")
SCOPES = ("local", "swarm")
# every filter key Docker accepts on /events (`event` is the action; the docker CLI sends it so)
FILTER_KEYS = frozenset(
    {"config", "container", "daemon", "event", "image", "label", "network", "node", "plugin", "scope"}
    | {"secret", "service", "type", "volume"}
)


def message(
    type_: str, action: str, actor_id: str, attributes: Mapping[str, str], scope: str, time_ns: int | None = None
) -> dict[str, Any]:
    """One EventMessage. Docker also sends the legacy `status`/`id`/`from` for containers."""
    ns = time.time_ns() if time_ns is None else time_ns
    msg: dict[str, Any] = {
        "Type": type_,
        "Action": action,
        "Actor": {"ID": actor_id, "Attributes": {k: str(v) for k, v in attributes.items()}},
        "scope": scope,
        "time": ns // 1_000_000_000,
        "timeNano": ns,
    }
    if type_ == "container":
        msg.update(status=action, id=actor_id, **({"from": attributes["image"]} if "image" in attributes else {}))
    return msg


def parse_time(value: str | None, now: float | None = None) -> int | None:
    """`since`/`until` as Docker takes them: Unix seconds (`1700000000`, `1700000000.5`), RFC 3339,
    or a Go duration before now (`10m`, `1h30m`, `90s`). Returns nanoseconds."""
    if value is None or value == "":
        return None
    now = time.time() if now is None else now
    text = value.strip()
    try:
        return round(float(text) * 1_000_000_000)
    except ValueError:
        pass
    seconds = _duration(text)
    if seconds is not None:
        return round((now - seconds) * 1_000_000_000)
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"invalid time {value!r}: use Unix seconds, RFC 3339 or a duration such as 10m") from None
    if stamp.tzinfo is None:
        raise InvalidArgument(f"invalid time {value!r}: RFC 3339 needs a time zone (Z or +hh:mm)")
    return round(stamp.timestamp() * 1_000_000_000)


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(text: str) -> float | None:
    """Go's time.ParseDuration (positive only): `1h30m`, `2.5s`; None when it is not one."""
    total, pos, seen = 0.0, 0, False
    while pos < len(text):
        start = pos
        while pos < len(text) and (text[pos].isdigit() or text[pos] == "."):
            pos += 1
        if start == pos:
            return None
        number = text[start:pos]
        unit_start = pos
        while pos < len(text) and not (text[pos].isdigit() or text[pos] == "."):
            pos += 1
        unit = text[unit_start:pos]
        if unit not in _UNITS:
            return None
        try:
            total += float(number) * _UNITS[unit]
        except ValueError:
            return None
        seen = True
    return total if seen else None


def validate_window(since_ns: int | None, until_ns: int | None) -> None:
    if since_ns is not None and until_ns is not None and since_ns > until_ns:
        raise InvalidArgument("since time must be before until time")


def validate_filters(filters: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """Unknown keys and impossible values are a 400, as Docker's Validate does."""
    for key, values in filters.items():
        if key not in FILTER_KEYS:
            raise InvalidArgument(f"invalid filter '{key}'")
        if key == "type":
            for value in values:
                if value not in TYPES:
                    raise InvalidArgument(f"invalid filter 'type={value}': unknown event type")
        if key == "scope":
            for value in values:
                if value not in SCOPES:
                    raise InvalidArgument(f"invalid filter 'scope={value}': use local or swarm")
    return {k: list(v) for k, v in filters.items()}


def _exact(filters: Mapping[str, list[str]], key: str, value: str) -> bool:
    values = filters.get(key)
    return not values or value in values


def _fuzzy(filters: Mapping[str, list[str]], key: str, *sources: str) -> bool:
    values = filters.get(key)
    if not values:
        return True
    return any(src and (src == v or src.startswith(v)) for v in values for src in sources)


def _labels(filters: Mapping[str, list[str]], attributes: Mapping[str, str]) -> bool:
    for want in filters.get("label") or []:
        key, sep, value = want.partition("=")
        if key not in attributes or (sep and attributes[key] != value):
            return False
    return True


def matches(msg: Mapping[str, Any], filters: Mapping[str, list[str]]) -> bool:
    """moby's Filter.Include: each key given must match (a key filters only its own type's
    events by name, so `service=web` keeps service events of web and nothing else)."""
    if not filters:
        return True
    type_, action = msg["Type"], msg["Action"]
    actor = msg["Actor"]
    attrs = actor.get("Attributes") or {}
    if not _exact(filters, "event", action) or not _exact(filters, "type", type_):
        return False
    if not _exact(filters, "scope", msg.get("scope", "local")):
        return False
    for key in ("container", "network", "node", "service", "secret", "config", "plugin", "volume", "daemon"):
        if key in filters:
            if type_ != key:
                return False
            if not _fuzzy(filters, key, actor["ID"], attrs.get("name", "")):
                return False
    if "image" in filters and not _fuzzy(
        filters, "image", attrs.get("image", ""), actor["ID"] if type_ == "image" else ""
    ):
        return False
    return _labels(filters, attrs)
