"""Python's cyclic garbage collector: its pauses measured, and kept short in a big manager.

A full (generation 2) collection walks every container object the process tracks with the GIL
held, stopping every thread, Raft's tick thread included. A manager of 1,000 nodes / 30,000 tasks
tracks millions (each stored object's dicts and lists, the views built from them), and CPython
starts a full collection whenever the objects that survived young collections reach a quarter of
the old generation, so while 30,000 tasks are created one full collection follows another, each
longer than the last: 1-3 s, past an election timeout (docs/scale.md).

Most of those objects live long and hold no reference cycles (stored objects are trees and are
never changed in place). Every `FREEZE_PERIOD` the objects that have survived until then are
moved out of the collector's reach (`gc.freeze()`, after a collection of what is not frozen yet,
which only covers the objects made since the previous freeze), so full collections walk only what
is new. Reference counting still frees a frozen object the moment the last reference goes (a
replaced stored object, a closed connection); only a reference cycle that was alive at a freeze and
later became garbage stays. Those are returned by a thaw (`gc.unfreeze()` and a full collection)
after `THAW_PERIOD`, or sooner once the frozen objects have grown `THAW_GROWTH` times since the
last thaw: the one long pause, rarely, instead of dozens.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import time
from typing import Any

from shoal import metrics

log = logging.getLogger("shoal.gc")

FREEZE_PERIOD = 30.0
THAW_PERIOD = 900.0
THAW_GROWTH = 4.0  # thaw when the frozen objects reached this many times those after the last thaw
THAW_FLOOR = 250_000  # (counted from at least this many: a young agent's heap is small and cheap to walk)
LONG_PAUSE = 0.5  # a collection this long is said in the log (an election timeout is 0.25-2.4 s)


class PauseWatch:
    """gc callbacks timing each collection; the figures wait in a deque for `drain` (a callback
    must not take locks a thread may hold when its allocation starts a collection)."""

    def __init__(self) -> None:
        self._started = 0.0
        self.done: collections.deque[tuple[int, float, int]] = collections.deque(maxlen=10_000)

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.done.append((int(info["generation"]), time.perf_counter() - self._started, int(info["collected"])))

    def drain(self) -> list[tuple[int, float, int]]:
        out = []
        while self.done:
            out.append(self.done.popleft())
        return out


class Freezer:
    """The freeze / thaw schedule above; `tick` is called every FREEZE_PERIOD."""

    def __init__(self, thaw_period: float = THAW_PERIOD, growth: float = THAW_GROWTH) -> None:
        self.thaw_period = thaw_period
        self.growth = growth
        self.last_thaw = time.monotonic()
        self.frozen_after_thaw = 0

    def tick(self) -> str:
        frozen = gc.get_freeze_count()
        now = time.monotonic()
        if frozen and (
            now - self.last_thaw >= self.thaw_period or frozen >= self.growth * max(self.frozen_after_thaw, THAW_FLOOR)
        ):
            gc.unfreeze()
            gc.collect()  # the whole heap: the cycles that died frozen go now
            gc.freeze()
            self.last_thaw = now
            self.frozen_after_thaw = gc.get_freeze_count()
            return "thaw"
        gc.collect()  # only what is not frozen: what survived since the previous freeze
        gc.freeze()
        return "freeze"


WATCH = PauseWatch()


def record(watch: PauseWatch = WATCH) -> None:
    """Move the collections timed since the last call into the metrics, and say the long ones."""
    for generation, seconds, collected in watch.drain():
        metrics.GC_PAUSE_SECONDS.labels(str(generation)).observe(seconds)
        if seconds >= LONG_PAUSE:
            log.warning(
                "a generation %d collection of Python's garbage collector held every thread %.2f s "
                "(%d objects freed, %d frozen)",
                generation,
                seconds,
                collected,
                gc.get_freeze_count(),
            )


async def keep_pauses_short(freeze: bool, period: float = FREEZE_PERIOD) -> None:
    """Time every collection; with `freeze`, keep the long-lived objects out of them (above)."""
    if WATCH not in gc.callbacks:
        gc.callbacks.append(WATCH)
    freezer = Freezer()
    try:
        while True:
            await asyncio.sleep(period)
            if freeze:
                step = freezer.tick()
                metrics.GC_FROZEN_OBJECTS.set(gc.get_freeze_count())
                if step == "thaw":
                    log.info("thawed the frozen objects for a full collection; %d frozen again", gc.get_freeze_count())
            record()
    finally:
        if WATCH in gc.callbacks:
            gc.callbacks.remove(WATCH)
