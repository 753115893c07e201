"""Deep copies of stored objects' parts, made once per object and shared by everything built from it.

Stored objects are never changed in place (a commit pickles its own copy), so the tasks a pass creates
from one service or attach to one network may share one copy of what they take from it. A deep copy
for each of 30,000 new tasks (the network's view, the service's TaskTemplate and Endpoint) was a third
of the leader's GIL time while they were created at 1,000 nodes, and its Raft tick thread, waiting for
the GIL, sent no heartbeats (docs/scale.md). Keyed by the object itself: a changed object is a new
object, and gets new copies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class CopiesByObject(Generic[T]):
    """`make(obj)` once per stored object (by its ID, the last `kept` IDs remembered)."""

    def __init__(self, make: Callable[[Mapping[str, Any]], T], kept: int) -> None:
        self._make = make
        self._kept = kept
        self._copies: dict[str, tuple[Mapping[str, Any], T]] = {}

    def __call__(self, obj: Mapping[str, Any]) -> T:
        key = str(obj.get("ID") or "")
        known = self._copies.get(key)
        if known is not None and known[0] is obj:
            return known[1]
        made = self._make(obj)
        self._copies[key] = (obj, made)  # holds the object: its id() is never another's meanwhile
        while len(self._copies) > self._kept:
            self._copies.pop(next(iter(self._copies)))
        return made
