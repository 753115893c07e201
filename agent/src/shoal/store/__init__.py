"""shoal.store: the Raft-replicated object store (pysyncobj). See replicated.py for the interface.

Workers use the change and error types but never run a replica: the pysyncobj side (`RaftConfig`,
`ReplicatedStore`) is imported on first use.
"""

from typing import Any

from shoal.store.changes import KINDS, Change, Event
from shoal.store.errors import (
    AlreadyExists,
    InvalidChange,
    NameConflict,
    NoQuorum,
    NotFound,
    NotLeader,
    StaleEpoch,
    StoreError,
    Timeout,
    VersionConflict,
    WatchLost,
)
from shoal.store.watch import Subscription

__all__ = [
    "KINDS",
    "AlreadyExists",
    "Change",
    "Event",
    "InvalidChange",
    "NameConflict",
    "NoQuorum",
    "NotFound",
    "NotLeader",
    "RaftConfig",
    "ReplicatedStore",
    "StaleEpoch",
    "StoreError",
    "Subscription",
    "Timeout",
    "VersionConflict",
    "WatchLost",
]


def __getattr__(name: str) -> Any:
    if name == "RaftConfig":
        from shoal.store.config import RaftConfig

        return RaftConfig
    if name == "ReplicatedStore":
        from shoal.store.replicated import ReplicatedStore

        return ReplicatedStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
