"""Argument types and small parsers shared by the command groups.

argparse `type=` functions raise ArgumentTypeError, so that a malformed flag is a usage error
(exit 2, with the usage line) before any call to the agent.
"""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Iterable

from shoal.cli.errors import CLIError
from shoal.errors import SpecError
from shoal.model.ids import parse_duration


def duration(text: str) -> int:
    """A Go duration flag ("5s", "1m30s") as the API's nanoseconds."""
    try:
        ns = parse_duration(text)
    except SpecError as e:
        raise argparse.ArgumentTypeError(e.message) from None
    if ns < 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: must not be negative")
    return ns


def cidr_list(text: str) -> list[str]:
    """`--default-addr-pool 10.10.0.0/16,10.20.0.0/16` (docker also accepts the flag repeated)."""
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            ipaddress.ip_network(part, strict=False)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid CIDR {part!r}") from None
        out.append(part)
    return out


def boolean(text: str) -> bool:
    """A Go bool flag value (`--autolock=true`), as strconv.ParseBool reads it."""
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r}: use true or false")


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must not be negative")
    return value


def parse_filters(items: Iterable[str] | None) -> dict[str, list[str]]:
    """`--filter k=v` flags as docker's filter map {k: [v, ...]} (same key: any value matches)."""
    filters: dict[str, list[str]] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep:
            raise CLIError(f"bad format of filter {item!r} (expected name=value)")
        filters.setdefault(key.strip().lower(), []).append(value.strip())
    return filters
