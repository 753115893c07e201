"""Epoch fencing and leader callbacks (notes/raft.md, defect 3).

pysyncobj has no PreVote or CheckQuorum, so two nodes may both believe they lead for a while. A new
leader therefore writes (its address, its term) through the log; the epoch moves only for a higher
term. Leader-only loops start when this node's announcement is *committed* (`leading`), and writes
fenced with an older epoch are refused by the state machine, as are orders an agent sees from an
older epoch. Runs on the tick thread; callbacks go through the notifier thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pysyncobj import FAIL_REASON, SyncObj

from shoal.store.machine import StoreMachine
from shoal.store.notifier import Notifier

log = logging.getLogger("shoal.store")

LeaderCallback = Callable[[bool, int], Any]


class Leadership:
    def __init__(self, addr: str, machine: StoreMachine, notifier: Notifier) -> None:
        self.addr = addr
        self.machine = machine
        self.notifier = notifier
        self.sync: SyncObj | None = None
        self.leading = False
        self._leading_epoch: int | None = None
        self._proposed_term: int | None = None  # the epoch bump in flight
        self._callbacks: list[LeaderCallback] = []

    def add_callback(self, callback: LeaderCallback) -> None:
        self._callbacks.append(callback)
        self.notifier.submit(callback, self.leading, self.machine.state.epoch)

    def on_tick(self, is_leader: bool) -> None:
        if self.leading and not is_leader:
            self._set(False)  # stop leader-only loops as soon as Raft says so
        if is_leader and self.sync is not None:
            self._announce(self.sync)

    def _announce(self, sync: SyncObj) -> None:
        term = int(sync.raftCurrentTerm)
        if self.machine.state.epoch_term >= term or self._proposed_term == term:
            return
        self._proposed_term = term

        def proposed(_res: Any, err: int) -> None:
            if err != FAIL_REASON.SUCCESS and self._proposed_term == term:
                self._proposed_term = None  # the next tick proposes again if still leader

        self.machine.bump_epoch(self.addr, term, callback=proposed)

    def on_epoch(self, epoch: int, leader: str | None, term: int) -> None:
        """The state machine committed an epoch (or loaded one from a snapshot)."""
        sync = self.sync
        if sync is None:
            return
        mine = leader == self.addr and sync._isLeader() and int(sync.raftCurrentTerm) == term
        if mine and (not self.leading or self._leading_epoch != epoch):
            self._set(True)
        elif not mine and self.leading:
            self._set(False)

    def _set(self, leading: bool) -> None:
        self.leading = leading
        epoch = self.machine.state.epoch
        self._leading_epoch = epoch if leading else None
        log.info("leadership %s (epoch %d)", "acquired" if leading else "lost", epoch)
        for callback in list(self._callbacks):
            self.notifier.submit(callback, leading, epoch)
