"""The store's errors: defined in `shoal.errors`, re-exported here with the table that turns the
outcome a replicated batch returns (an error's class name) back into an exception."""

from __future__ import annotations

from shoal.errors import (
    AlreadyExists,
    Denied,
    InvalidChange,
    NameConflict,
    NoQuorum,
    NotFound,
    NotLeader,
    ShoalError,
    StaleEpoch,
    StoreError,
    Timeout,
    VersionConflict,
    WatchLost,
)

__all__ = [
    "BY_NAME",
    "AlreadyExists",
    "Denied",
    "InvalidChange",
    "NameConflict",
    "NoQuorum",
    "NotFound",
    "NotLeader",
    "StaleEpoch",
    "StoreError",
    "Timeout",
    "VersionConflict",
    "WatchLost",
]

# Name -> class, to turn the outcome a replicated batch returns back into an exception.
BY_NAME: dict[str, type[ShoalError]] = {
    cls.__name__: cls
    for cls in (
        StoreError,
        InvalidChange,
        NotFound,
        VersionConflict,
        NameConflict,
        AlreadyExists,
        NoQuorum,
        NotLeader,
        StaleEpoch,
    )
}
