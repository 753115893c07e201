"""Go's duration strings and docker's byte sizes, as compose files write them."""

from __future__ import annotations

import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_BYTES = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?$", re.IGNORECASE)


def duration_ns(text: str | int | float) -> int:
    """`1m30s` → nanoseconds (Go's time.ParseDuration; a bare 0 is allowed). ValueError if not one."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if text == 0:
            return 0
        raise ValueError(f"invalid duration {text!r}: missing unit (e.g. 10s)")
    s = str(text).strip()
    sign = -1 if s.startswith("-") else 1
    s = s.lstrip("+-")
    if s == "0":
        return 0
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _NS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s):
        raise ValueError(f"invalid duration {text!r} (use a number and a unit: 300ms, 10s, 1m30s, 2h)")
    return sign * round(total)


def ram_bytes(text: str | int) -> int:
    """docker's units.RAMInBytes: `512m`, `1.5G`, `1gb` (powers of 1024)."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    m = _BYTES.match(str(text).strip())
    if not m:
        raise ValueError(f"invalid size {text!r} (e.g. 512M, 1G)")
    power = " kmgtp".index(m.group(2).lower() or " ")
    return int(float(m.group(1)) * 1024**power)


def nano_cpus(value: str | int | float) -> int:
    """`cpus: '0.5'` → NanoCPUs."""
    try:
        cpus = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"invalid cpus {value!r} (a number like 0.5)") from None
    if cpus < 0:
        raise ValueError(f"invalid cpus {value!r}: must not be negative")
    return round(cpus * 1e9)
