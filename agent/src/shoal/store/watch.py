"""Watch events: the tick thread only appends references to per-subscriber queues (cheap, never
blocks); the subscriber's own thread (or event loop) takes them and gets a private deep copy.
Stored objects are never mutated in place, so a reference is a stable snapshot until copied.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import threading
import time
from collections import deque
from typing import Any, TypeVar

from shoal.store.changes import Event
from shoal.store.errors import WatchLost


def clone(value: Any) -> Any:
    """A deep copy of JSON-shaped data; pickle's C code is several times faster than copy.deepcopy."""
    return pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


class Subscription:
    """Events after apply, in log order. `get()` from any thread but the store's tick thread;
    `aget()` from the event loop passed to `subscribe(loop=...)`.

    `index` is the log index the store had applied when the subscription started: every later
    change is delivered. Subscribe first, then read (`list`): an event may repeat what the read
    already showed, none is missed. A subscriber more than `max_pending` events behind is dropped
    and its next `get` raises WatchLost (re-list, then subscribe again).
    """

    def __init__(
        self,
        hub: Hub,
        index: int,
        loop: asyncio.AbstractEventLoop | None,
        max_pending: int,
        kinds: frozenset[str] | None = None,
    ) -> None:
        self._hub = hub
        # only events of these kinds, when given: the cluster event feed of every manager wants no
        # task event, and took a deep copy of each (120,000 while 30,000 tasks start)
        self._kinds = kinds
        self.index = index
        self._loop = loop
        self._max = max_pending
        self._items: deque[Event] = deque()
        self._cond = threading.Condition()
        self._aevent = asyncio.Event() if loop is not None else None
        self._closed = False
        self._lost = False

    # ---- producer side (tick thread)
    def _push(self, events: list[Event]) -> tuple[asyncio.AbstractEventLoop, asyncio.Event] | None:
        """Queue `events`. Returns the subscriber's loop and the asyncio event to set on it, if it has
        one: the hub wakes each loop once per publish (`Hub.publish`)."""
        if self._kinds is not None:
            events = [e for e in events if e.kind in self._kinds]
            if not events:
                return None
        with self._cond:
            if self._closed:
                return None
            self._queue(events)
            self._cond.notify_all()
        if self._loop is None or self._aevent is None:
            return None
        return self._loop, self._aevent

    def _queue(self, events: list[Event]) -> None:
        # called with the condition held
        if len(self._items) + len(events) > self._max:
            self._lost, self._closed = True, True
            self._items.clear()
        else:
            self._items.extend(events)

    def _wake_loop(self) -> None:
        if self._loop is not None and self._aevent is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                self._loop.call_soon_threadsafe(self._aevent.set)

    # ---- consumer side
    def _take(self) -> Event | None:
        # called with the condition held
        if self._items:
            ev = self._items.popleft()
            return Event(ev.kind, ev.action, clone(ev.obj), ev.index)
        if self._lost:
            raise WatchLost("watch fell too far behind and was dropped: list again and resubscribe")
        return None

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None on timeout or once closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                ev = self._take()
                if ev is not None or self._closed:
                    return ev
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def get_nowait(self) -> Event | None:
        with self._cond:
            return self._take()

    async def aget(self) -> Event | None:
        """The next event; None once closed. Only on the loop given to subscribe()."""
        if self._aevent is None:
            raise RuntimeError("subscribe(loop=...) to use aget()")
        while True:
            with self._cond:
                ev = self._take()
                if ev is not None or self._closed:
                    return ev
                self._aevent.clear()
            await self._aevent.wait()

    async def wait(self, timeout: float) -> bool:
        """True once an event is queued (or the watch was dropped or closed), False after `timeout`
        seconds: for waiters that only need to know that something changed, without a copy of each
        event. Only on the loop given to subscribe()."""
        if self._aevent is None:
            raise RuntimeError("subscribe(loop=...) to use wait()")
        with self._cond:
            if self._ready() or self._closed:
                return True
            self._aevent.clear()
        # not asyncio.wait_for: on 3.11 it swallows a cancellation that comes as the event is set
        # (bpo-42130), and the loop being stopped (a leader's orchestrator) ran on: its stop hung
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._aevent.wait()
        with self._cond:
            return self._ready() or self._closed

    def _ready(self) -> bool:
        return bool(self._items)

    def discard(self) -> None:
        """Drop the queued events unread; WatchLost if the watch was dropped for falling behind."""
        with self._cond:
            self._items.clear()
            if self._lost:
                raise WatchLost("watch fell too far behind and was dropped: list again and resubscribe")

    def close(self) -> None:
        self._hub.remove(self)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._wake_loop()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        """Events queued and not yet taken (each holds its object version alive)."""
        return len(self._items)


class Notice(Subscription):
    """A subscription that keeps no events, only that something was applied since the last
    `discard()`: for waiters that read the state again anyway (`wait()`, then `discard()`). A node's
    assignment long poll is one; with 1,000 of them waiting, each commit queued its every event
    1,000 times on the Raft tick thread, and the queues kept the objects' old versions alive
    (0.97 M events queued at once at 1,000 nodes / 30,000 tasks, docs/scale.md)."""

    def __init__(self, hub: Hub, index: int, loop: asyncio.AbstractEventLoop | None) -> None:
        super().__init__(hub, index, loop, max_pending=1)
        self._changed = False

    def _queue(self, events: list[Event]) -> None:
        self._changed = True

    def _ready(self) -> bool:
        return self._changed

    def _take(self) -> Event | None:
        raise RuntimeError("a Notice keeps no events: wait() and read the state")

    def discard(self) -> None:
        with self._cond:
            self._changed = False

    @property
    def pending(self) -> int:
        return int(self._changed)


_Sub = TypeVar("_Sub", bound=Subscription)


def _set_all(aevents: list[asyncio.Event]) -> None:
    for aevent in aevents:
        aevent.set()


class Hub:
    def __init__(self) -> None:
        # insertion-ordered, and removed from in O(1): a thousand long polls come and go each period
        self._subs: dict[Subscription, None] = {}
        self._lock = threading.Lock()

    def add(
        self,
        index: int,
        loop: asyncio.AbstractEventLoop | None,
        max_pending: int,
        kinds: frozenset[str] | None = None,
    ) -> Subscription:
        return self._register(Subscription(self, index, loop, max_pending, kinds))

    def add_notice(self, index: int, loop: asyncio.AbstractEventLoop | None) -> Notice:
        return self._register(Notice(self, index, loop))

    def _register(self, sub: _Sub) -> _Sub:
        with self._lock:
            self._subs[sub] = None
        return sub

    def remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.pop(sub, None)

    def publish(self, events: list[Event]) -> None:
        """Queue `events` for every subscriber, then wake each event loop once. One wake per
        subscriber (a write to the loop's self-pipe each, the GIL given up and taken back each
        time) held the Raft tick thread for seconds on a busy leader with 300 nodes' long polls
        waiting: its heartbeats to the followers stopped and they called elections (docs/scale.md)."""
        if not events:
            return
        with self._lock:
            subs = list(self._subs)
        wake: dict[asyncio.AbstractEventLoop, list[asyncio.Event]] = {}
        for sub in subs:
            waiting = sub._push(events)
            if waiting is not None:
                wake.setdefault(waiting[0], []).append(waiting[1])
            if sub.closed:
                self.remove(sub)
        for loop, aevents in wake.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                loop.call_soon_threadsafe(_set_all, aevents)

    def pending(self) -> tuple[int, int, int]:
        """(subscriptions, events queued in all, the most one subscription has queued)."""
        with self._lock:
            counts = [sub.pending for sub in self._subs]
        return len(counts), sum(counts), max(counts, default=0)

    def close_all(self) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.close()
