"""Python's cyclic garbage collector: its pauses measured, and the full ones made rare.

A full (generation 2) collection walks every container object the process tracks with the GIL
held, stopping every thread, Raft's tick thread included. A manager of 1,000 nodes / 30,000 tasks
tracks millions (each stored object's dicts and lists, the views built from them), and CPython
starts a full collection whenever the objects that survived young collections reach a quarter of
the old generation: while 30,000 tasks are created and started one full collection follows
another, each 0.5-1.4 s, past an election timeout (docs/scale.md, 56 in 4 minutes on a leader).
Freezing the long-lived objects (`gc.freeze()`) every 30 s did not help: a task is a new stored
object at each state it goes through, so the frozen set died as fast as it was made.

So, once the heap is past `FULL_FLOOR` blocks (a small agent keeps CPython's own schedule), automatic
collections stop at generation 1 (cheap: only the objects made since the last ones), and the full
ones happen here: at once, then every `FULL_PERIOD`, or sooner once the heap has grown `FULL_STEP`
blocks since the last full collection (CPython's own rule is the old generation grown 1.25 times;
the heap is counted in the allocator's blocks, `sys.getallocatedblocks()`, which costs nothing,
where counting the old generation means listing it). A step, not a factor: each full collection
walks what was made since the last one (below), so a fixed step keeps every pause about as short,
where doubling made each one walk as much as all before it (the first, at two million blocks, held
a leader of 1,000 nodes 2.2-2.6 s while 30,000 tasks started, and cost it its office twice in
session 25; docs/scale.md).
Reference counting frees everything that holds no cycle at once, as ever; a cycle that became
garbage in the old generation waits for the next full collection. One long pause every few
minutes at 1,000 nodes, instead of one every few seconds; at a few nodes, milliseconds.

That one pause was still 2.5 s on a leader of 1,000 nodes / 30,000 tasks (11 M blocks), and it cost
the leader its office (docs/scale.md, session 20). So each full collection made here ends with
`gc.freeze()`: what survived it moves to the permanent generation, which no collection walks, and
the next full collection walks only what was made since (the tasks and views that changed), not
the whole store again. A frozen object is still freed by reference counting the moment nothing
refers to it; only a cycle that becomes garbage among frozen objects waits, for a thorough
collection (unfreeze, collect everything, freeze), made once the heap has grown THOROUGH_GROWTH
times since the last thorough one: a leak of such cycles shows as growth and is collected then.
(Freezing every 30 s while CPython still scheduled its own full collections was tried before and
did not help: frozen objects no longer count in its trigger, so full collections came sooner.)
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import sys
import time
from typing import Any

from shoal import metrics

log = logging.getLogger("shoal.gc")

CHECK_PERIOD = 5.0  # the heap can grow a million blocks in 30 s while thousands of tasks start
FULL_PERIOD = 600.0
FULL_STEP = 500_000  # blocks: a full collection once the heap grew this much since the last (~0.3 s)
FULL_FLOOR = 1_000_000  # blocks; below, CPython's own full collections (a small heap is cheap to walk)
THOROUGH_GROWTH = 4.0  # unfreeze and collect everything once the heap grew this much since the last time
NEVER = 2**31 - 1  # generation 2's threshold: automatic collections stop at generation 1
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


class FullCollections:
    """The schedule above; `check` is called every CHECK_PERIOD."""

    def __init__(self, period: float = FULL_PERIOD, step: int = FULL_STEP, floor: int | None = None) -> None:
        self.period = period
        self.step = step
        self.floor = floor  # None: FULL_FLOOR
        self.last_full = time.monotonic()
        self.heap_after_full = 0
        self.heap_after_thorough = 0
        self.thorough = False  # whether the last full collection was a thorough one
        self.thresholds = gc.get_threshold()

    def take_over(self) -> None:
        young, middle, _ = self.thresholds
        gc.set_threshold(young, middle, NEVER)

    def give_back(self) -> None:
        gc.set_threshold(*self.thresholds)
        gc.unfreeze()  # CPython's own full collections walk every object again

    def check(self) -> bool:
        """True when it made a full collection. Below `FULL_FLOOR` blocks the full collections are
        CPython's again: a small heap is walked in milliseconds, and its garbage goes sooner."""
        floor = FULL_FLOOR if self.floor is None else self.floor
        if sys.getallocatedblocks() < floor:
            self.give_back()
            return False
        self.take_over()
        now = time.monotonic()
        blocks = sys.getallocatedblocks()
        # the first one at once: it walks everything made until now, the later ones what came since
        grown = self.heap_after_full == 0 or blocks >= max(self.heap_after_full, floor) + self.step
        self.thorough = blocks >= THOROUGH_GROWTH * max(self.heap_after_thorough, floor)
        if now - self.last_full < self.period and not grown and not self.thorough:
            return False
        if self.thorough:
            gc.unfreeze()
        gc.collect()
        gc.freeze()  # what survived is walked by no collection until the next thorough one
        self.last_full = now
        self.heap_after_full = sys.getallocatedblocks()
        if self.thorough:
            self.heap_after_thorough = self.heap_after_full
        return True


WATCH = PauseWatch()


def record(watch: PauseWatch = WATCH) -> None:
    """Move the collections timed since the last call into the metrics, and say the long ones."""
    for generation, seconds, collected in watch.drain():
        metrics.GC_PAUSE_SECONDS.labels(str(generation)).observe(seconds)
        if seconds >= LONG_PAUSE:
            log.warning(
                "a generation %d collection of Python's garbage collector held every thread %.2f s (%d objects freed)",
                generation,
                seconds,
                collected,
            )


async def keep_pauses_short(
    full_period: float = FULL_PERIOD, period: float = CHECK_PERIOD, floor: int | None = None
) -> None:
    """Time every collection, and make the full ones here (above); `full_period` 0 leaves them to
    CPython (the agent's `gc_full_period`); `floor` replaces FULL_FLOOR (0: whatever the heap)."""
    if WATCH not in gc.callbacks:
        gc.callbacks.append(WATCH)
    full = FullCollections(full_period, floor=floor) if full_period > 0 else None
    try:
        while True:
            await asyncio.sleep(period)
            if full is not None and full.check():
                log.info(
                    "%s garbage collection: %d blocks allocated after it, %d of them frozen",
                    "thorough" if full.thorough else "full",
                    full.heap_after_full,
                    gc.get_freeze_count(),
                )
            metrics.GC_HEAP_BLOCKS.set(sys.getallocatedblocks())
            record()
    finally:
        if full is not None:
            full.give_back()
        if WATCH in gc.callbacks:
            gc.callbacks.remove(WATCH)
