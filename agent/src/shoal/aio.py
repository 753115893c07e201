"""Small asyncio helpers shared by the agent's loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("shoal.aio")


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
