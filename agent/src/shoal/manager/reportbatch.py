"""Task status reports from every node, committed together (SwarmKit's dispatcher batches them too).

Each node's report was one Raft entry: while 30,000 tasks started on 1,000 nodes the log carried
about 40 entries a second, each woke every waiting assignments poll, and a report waited 1-3 s
behind the others (docs/scale.md, session 21). Here the reports that arrive while earlier ones are
being committed go out as one entry, up to CHANGES_PER_ENTRY changes, up to ENTRIES_IN_FLIGHT
entries at once. A node still gets its answer only once its reports are committed (it never sends
a state again once answered: issue 12), or an error that makes it send them again.

`changes_of(node_id, reports)` is read against the store when the entry is built, so that a
report that waited reads the task as it is then. Two reports naming the same task never share an
entry (a batch changes each object once): the later waits for the next one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shoal.errors import Unavailable, VersionConflict
from shoal.store.changes import Change
from shoal.store.protocol import Store

GATHER = 0.005  # seconds the reports arriving together are waited for before an entry is built
CHANGES_PER_ENTRY = 500
ENTRIES_IN_FLIGHT = 4
TRIES = 5  # entries that conflicted (a task changed meanwhile) before a report is refused with a 503

KEPT_CHANGING = "task status not applied: its tasks kept changing meanwhile; send it again"

ChangesOf = Callable[[str, list[dict[str, Any]]], list[Change]]


@dataclass
class _Waiting:
    node_id: str
    reports: list[dict[str, Any]]
    done: asyncio.Future[int]
    tries: int = 0  # conflicts of entries it was alone in
    group: int | None = None  # after a conflict: the half of that entry it is retried with


@dataclass
class ReportBatcher:
    """The reports waiting for an entry, and the entries being committed, for one store on one loop."""

    store: Store
    changes_of: ChangesOf
    loop: asyncio.AbstractEventLoop
    queue: deque[_Waiting] = field(default_factory=deque)
    in_flight: set[asyncio.Task[None]] = field(default_factory=set)
    busy: set[str | None] = field(default_factory=set)  # tasks changed by the entries in flight
    runner: asyncio.Task[None] | None = None
    groups: int = 0  # groups made by splitting conflicted entries

    async def submit(self, node_id: str, reports: list[dict[str, Any]]) -> int:
        """How many task changes `reports` made, once they are committed."""
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.queue.append(_Waiting(node_id, reports, done))
        self._kick()
        return await done

    def _kick(self) -> None:
        """Entries are built while reports wait: start building if nothing is."""
        if self.queue and (self.runner is None or self.runner.done()):
            self.runner = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while self.queue:
            await asyncio.sleep(GATHER)
            while len(self.in_flight) >= ENTRIES_IN_FLIGHT:
                await asyncio.wait(self.in_flight, return_when=asyncio.FIRST_COMPLETED)
            entry, members = self._take()
            if entry:
                ids = {c.obj_id for c in entry}
                self.busy |= ids
                flight = asyncio.ensure_future(self._commit(entry, members))
                self.in_flight.add(flight)
                flight.add_done_callback(lambda f, ids=ids: self._landed(f, ids))
            elif self.queue and self.in_flight:  # all of them wait for the entries in flight
                await asyncio.wait(self.in_flight, return_when=asyncio.FIRST_COMPLETED)

    def _landed(self, flight: asyncio.Task[None], ids: set[str | None]) -> None:
        self.in_flight.discard(flight)
        self.busy -= ids

    def _take(self) -> tuple[list[Change], list[tuple[_Waiting, int]]]:
        """One entry from the reports waiting, in their order; the rest stay queued."""
        entry: list[Change] = []
        members: list[tuple[_Waiting, int]] = []
        named: set[str | None] = set()
        left: deque[_Waiting] = deque()
        group = self.queue[0].group if self.queue else None
        while self.queue:
            waiting = self.queue.popleft()
            if waiting.done.done():  # its caller is gone (cancelled): its reports are sent again
                continue
            if len(entry) >= CHANGES_PER_ENTRY or waiting.group != group:
                left.append(waiting)
                continue
            try:
                changes = self.changes_of(waiting.node_id, waiting.reports)
            except Exception as exc:  # a bug in one report's reading fails that report alone
                waiting.done.set_exception(exc)
                continue
            if not changes:
                waiting.done.set_result(0)
                continue
            ids = {c.obj_id for c in changes}
            if ids & named or ids & self.busy:  # read again once the entry changing them is committed
                left.append(waiting)
                continue
            named |= ids
            entry += changes
            members.append((waiting, len(changes)))
        self.queue = left
        return entry, members

    async def _commit(self, entry: list[Change], members: list[tuple[_Waiting, int]]) -> None:
        try:
            await self.store.acommit(entry)
        except VersionConflict:
            self._conflicted(members)
            return
        except Exception as exc:  # no quorum, a lost leadership, a timeout: the nodes send them again
            for waiting, _ in members:
                _fail(waiting, exc)
            return
        for waiting, count in members:
            if not waiting.done.done():
                waiting.done.set_result(count)

    def _conflicted(self, members: list[tuple[_Waiting, int]]) -> None:
        """A task of the entry changed meanwhile (the orchestrator, or a replica behind the commit
        that moved it): its reports are read again, in two halves, so that one that keeps
        conflicting ends alone and refused (a 503: the node sends it again) without the others."""
        waiting = [w for w, _ in members if not w.done.done()]
        if len(waiting) == 1:
            waiting[0].tries += 1
            if waiting[0].tries >= TRIES:
                _fail(waiting[0], Unavailable(KEPT_CHANGING))
                waiting = []
        half = (len(waiting) + 1) // 2
        for part in (waiting[:half], waiting[half:]):
            self.groups += 1
            for w in part:
                w.group = self.groups
        self.queue.extendleft(reversed(waiting))
        self._kick()


def _fail(waiting: _Waiting, exc: BaseException) -> None:
    if not waiting.done.done():
        waiting.done.set_exception(exc)


_BATCHERS: dict[tuple[int, int], ReportBatcher] = {}


def batcher(store: Store, changes_of: ChangesOf) -> ReportBatcher:
    """The batcher of `store` on the running loop (one per manager; tests run a loop each)."""
    loop = asyncio.get_running_loop()
    key = (id(store), id(loop))
    found = _BATCHERS.get(key)
    if found is None or found.store is not store or found.loop is not loop:
        for stale in [k for k, b in _BATCHERS.items() if b.loop.is_closed()]:
            del _BATCHERS[stale]
        found = _BATCHERS[key] = ReportBatcher(store, changes_of, loop)
    return found
