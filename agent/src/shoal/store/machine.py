"""The pysyncobj side of the state machine: replicated methods and snapshot hooks.

Replicated methods run on pysyncobj's tick thread, on every replica, in log order. They must never
raise (pysyncobj would retry the same entry forever), so every failure becomes a returned outcome.
State changes happen under `lock`, which readers also take to copy references.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from pysyncobj import SyncObjConsumer, replicated

from shoal.store.changes import Event, WireChange
from shoal.store.state import Outcome, StoreState, diff_events

log = logging.getLogger("shoal.store")

EventSink = Callable[[list[Event]], None]
EpochSink = Callable[[int, str | None, int], None]


class StoreMachine(SyncObjConsumer):  # type: ignore[misc]  # pysyncobj has no type hints
    def __init__(self, on_events: EventSink, on_epoch: EpochSink, on_applied: Callable[[int], None]) -> None:
        super().__init__()
        self.lock = threading.RLock()
        self.state = StoreState()
        self._on_events = on_events
        self._on_epoch = on_epoch
        self._on_applied = on_applied

    def _index(self) -> int:
        # pysyncobj applies entry N while raftLastApplied is still N - 1: this is the command's log
        # index, the same on every replica, and becomes the objects' Version.Index.
        return int(self._syncObj.raftLastApplied) + 1

    @replicated  # type: ignore[misc]
    def apply_batch(self, request_id: str, changes: list[WireChange], expected_epoch: int | None) -> Outcome:
        index = self._index()
        try:
            with self.lock:
                outcome, events = self.state.apply_batch(index, request_id, changes, expected_epoch)
                # published under the lock so that subscribe-then-read never misses a change
                self._on_events(events)
        except Exception as exc:  # a bug; answer instead of wedging the log
            log.exception("store batch at index %d failed", index)
            outcome = ("err", "StoreError", f"internal error applying the batch: {exc}")
        self._on_applied(index)
        return outcome

    @replicated  # type: ignore[misc]
    def bump_epoch(self, leader: str, term: int) -> int:
        index = self._index()
        try:
            with self.lock:
                moved = self.state.bump_epoch(index, leader, term)
                epoch, leader_now, term_now = self.state.epoch, self.state.epoch_leader, self.state.epoch_term
            if moved:
                self._on_epoch(epoch, leader_now, term_now)
        except Exception:
            log.exception("epoch bump at index %d failed", index)
        return self.state.epoch

    # ---- snapshots (pysyncobj calls these on the tick thread)
    def _serialize(self) -> dict[str, Any]:
        return self.state.to_dict()

    def _deserialize(self, data: dict[str, Any]) -> None:
        new = StoreState.from_dict(data)
        with self.lock:
            old, self.state = self.state, new
            # watchers see the snapshot as the changes it implies
            self._on_events(diff_events(old, new, new.last_index))
        self._on_epoch(new.epoch, new.epoch_leader, new.epoch_term)
