"""shoal.store: the Raft-replicated object store (pysyncobj). See replicated.py for the interface."""

from shoal.store.changes import KINDS, Change, Event
from shoal.store.config import RaftConfig
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
from shoal.store.replicated import ReplicatedStore
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
