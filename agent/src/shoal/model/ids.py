"""Object IDs, timestamps and Go-style durations, in the shapes the Docker Engine API uses."""

from __future__ import annotations

import re
import secrets
import time
from datetime import UTC, datetime

from shoal.errors import SpecError

ID_LENGTH = 25  # 128 random bits written in base 36 fit in 25 characters (SwarmKit's identity.NewID)
SHORT_ID_LENGTH = 12
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def to_base36(n: int, width: int) -> str:
    """`n` in lowercase base 36, zero-padded on the left to `width` characters."""
    if n < 0:
        raise ValueError("negative number")
    digits = []
    while n:
        n, r = divmod(n, 36)
        digits.append(_BASE36[r])
    return "".join(reversed(digits)).rjust(width, "0")


def new_id() -> str:
    """A fresh object ID: 25 lowercase base-36 characters from 128 random bits, like SwarmKit's."""
    return to_base36(secrets.randbits(128), ID_LENGTH)


def short_id(object_id: str) -> str:
    """The 12-character prefix that tables print (`docker service ls`)."""
    return object_id[:SHORT_ID_LENGTH]


# --- timestamps ---------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)


def format_rfc3339(ns: int) -> str:
    """Nanoseconds since the epoch as RFC 3339 in UTC with 9 fraction digits and `Z`.

    Go's RFC3339Nano trims trailing zeros; we keep a fixed width so that timestamps sort as
    strings (Go and the docker CLI parse both forms).
    """
    secs, frac = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def now_rfc3339() -> str:
    """The current time as `2026-11-27T23:13:48.123456789Z` (choose it before proposing to Raft)."""
    return format_rfc3339(time.time_ns())


def parse_rfc3339(text: str) -> int:
    """An RFC 3339 timestamp (any fraction length, any offset) as nanoseconds since the epoch."""
    m = _RFC3339.match(text) if isinstance(text, str) else None
    if not m:
        raise SpecError(f"invalid timestamp {text!r}: expected RFC 3339 like 2026-11-27T23:13:48.123456789Z")
    year, month, day, hour, minute, sec = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    try:
        dt = datetime(year, month, day, hour, minute, sec, tzinfo=UTC)
    except ValueError as e:
        raise SpecError(f"invalid timestamp {text!r}: {e}") from None
    delta = dt - _EPOCH
    ns = (delta.days * 86400 + delta.seconds) * 1_000_000_000 + int((m.group(7) or "").ljust(9, "0"))
    if m.group(9):
        offset = (int(m.group(10)) * 60 + int(m.group(11))) * 60 * 1_000_000_000
        ns -= offset if m.group(9) == "+" else -offset
    return ns


# --- Go durations -------------------------------------------------------------------------------

_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign, as Go prints it
    "\u03bcs": 1_000,  # Greek mu, which Go also accepts
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_SEGMENT = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]+)")
_MAX_NS = 2**63 - 1  # Go's time.Duration is an int64


def parse_duration(value: str | int) -> int:
    """A Go duration ("5s", "1m30s", "1.5h", "500ms", "-2h", "0") as integer nanoseconds.

    Integers are taken as nanoseconds already, which is what the API carries.
    """
    if isinstance(value, bool):
        raise SpecError(f"invalid duration {value!r}")
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        raise SpecError(f"invalid duration {value!r}: expected a string like 5s or an integer of nanoseconds")
    text = value.strip()
    sign = 1
    if text and text[0] in "+-":
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise SpecError(f"invalid duration {value!r}")
    total, pos = 0, 0
    while pos < len(text):
        m = _SEGMENT.match(text, pos)
        if not m or not (m.group(1) or m.group(2)):
            raise SpecError(f"invalid duration {value!r}: expected a number and a unit like 1m30s")
        unit = _UNITS.get(m.group(3))
        if unit is None:
            raise SpecError(f"invalid duration {value!r}: unknown unit {m.group(3)!r} (use ns, us, ms, s, m, h)")
        frac = m.group(2) or ""
        total += int(m.group(1) or "0") * unit + (int(frac) * unit // 10 ** len(frac) if frac else 0)
        pos = m.end()
    if total > _MAX_NS:
        raise SpecError(f"invalid duration {value!r}: out of range")
    return sign * total


def _fraction(value: int, digits: int) -> str:
    """`value / 10**digits` without trailing zeros, the way Go prints durations."""
    whole, frac = divmod(value, 10**digits)
    tail = f"{frac:0{digits}d}".rstrip("0")
    return f"{whole}.{tail}" if tail else str(whole)


def format_duration(ns: int) -> str:
    """Nanoseconds as Go's time.Duration.String(): "1m30s", "500ms", "2160h0m0s", "0s"."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < 1_000:
        return f"{sign}{u}ns"
    if u < 1_000_000:
        return f"{sign}{_fraction(u, 3)}\u00b5s"
    if u < 1_000_000_000:
        return f"{sign}{_fraction(u, 6)}ms"
    hours, rest = divmod(u, 3600 * 1_000_000_000)
    minutes, rest = divmod(rest, 60 * 1_000_000_000)
    out = f"{_fraction(rest, 9)}s"
    if hours:
        out = f"{hours}h{minutes}m{out}"
    elif minutes:
        out = f"{minutes}m{out}"
    return sign + out
