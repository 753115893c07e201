"""Small asyncio helpers shared by the agent's loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger("shoal.aio")

T = TypeVar("T")


def cpu_timed(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    """`fn(*args)` and the CPU seconds the calling thread spent in it. What a worker thread of a
    busy manager is charged for pacing: it shares the GIL with the event loop, and its wall time
    was several times its CPU (docs/scale.md)."""
    started = time.thread_time()
    out = fn(*args)
    return out, time.thread_time() - started


class BackgroundLoop:
    """One named background task that can be started (idempotently) and stopped."""

    def __init__(self, name: str, body: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.name = name
        self.body = body
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self.body(), name=self.name)
            self._task.add_done_callback(self._report)

    def _report(self, task: asyncio.Task[None]) -> None:
        # a loop that dies silently is the worst kind of bug: say so in the log
        if not task.cancelled() and task.exception() is not None:
            log.error("background loop %s died", self.name, exc_info=task.exception())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class LagMeter:
    """How late this event loop wakes up: a coroutine sleeping `tick` seconds at a time records
    each oversleep. A loop held by CPU work (parsing, snapshot building) delays every socket it
    serves by as much: heartbeats among them (docs/scale.md, the 200-node all-Down)."""

    def __init__(self, tick: float = 0.25, slow: float = 1.0) -> None:
        self.tick = tick
        self.slow = slow  # an oversleep this long counts as a stall
        self.worst = 0.0
        self.stalls = 0
        self.total = 0.0  # seconds of oversleep in all
        self._loop = BackgroundLoop("loop-lag", self._run)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    def record(self, late: float) -> None:
        late = max(0.0, late)
        self.total += late
        self.worst = max(self.worst, late)
        if late >= self.slow:
            self.stalls += 1

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.tick)
            self.record(loop.time() - before - self.tick)
