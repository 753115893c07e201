"""Ports in both compose syntaxes → Engine API PortConfigs (docker's nat.ParsePortSpec rules)."""

from __future__ import annotations

import re
from typing import Any

_SHORT = re.compile(
    r"^(?:(?P<ip>\[[0-9a-fA-F:.]+\]|\d+\.\d+\.\d+\.\d+):)?(?:(?P<published>\d+(?:-\d+)?)?:)?"
    r"(?P<target>\d+(?:-\d+)?)(?:/(?P<proto>tcp|udp|sctp))?$"
)


def _range(text: str) -> list[int]:
    first, _, last = text.partition("-")
    lo, hi = int(first), int(last or first)
    if not 1 <= lo <= hi <= 65535:
        raise ValueError(f"invalid port range {text!r}")
    return list(range(lo, hi + 1))


def parse_short(text: str) -> list[dict[str, Any]]:
    """`[IP:][PUBLISHED:]TARGET[/PROTO]`, ranges allowed; ValueError says why not."""
    m = _SHORT.match(text.strip())
    if not m:
        raise ValueError(f"invalid port {text!r} (e.g. 8080:80 or 80/udp)")
    if m.group("ip"):
        raise ValueError(f"invalid port {text!r}: a host IP is not supported in swarm mode")
    targets = _range(m.group("target"))
    published = _range(m.group("published")) if m.group("published") else []
    if published and len(published) != len(targets):
        raise ValueError(f"invalid port {text!r}: the published and target ranges differ in size")
    proto = m.group("proto") or "tcp"
    return [
        {
            "Protocol": proto,
            "TargetPort": t,
            "PublishedPort": published[i] if published else 0,
            "PublishMode": "ingress",
        }
        for i, t in enumerate(targets)
    ]


def convert(value: Any) -> list[dict[str, Any]]:
    """One item of `ports:` (number, string or the long mapping)."""
    if isinstance(value, dict):
        out = {
            "Protocol": value.get("protocol") or "tcp",
            "TargetPort": int(value.get("target") or 0),
            "PublishedPort": int(value.get("published") or 0),
            "PublishMode": value.get("mode") or "ingress",
        }
        if out["Protocol"] not in ("tcp", "udp", "sctp"):
            raise ValueError(f"invalid protocol {out['Protocol']!r} (tcp, udp or sctp)")
        if out["PublishMode"] not in ("ingress", "host"):
            raise ValueError(f"invalid mode {out['PublishMode']!r} (ingress or host)")
        if not 1 <= out["TargetPort"] <= 65535:
            raise ValueError("target: a port from 1 to 65535 is needed")
        return [out]
    return parse_short(str(value))
