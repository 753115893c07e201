"""The skeleton of a leader-only loop (SwarmKit starts its role manager, key manager and CA
reconciler when a manager becomes leader and stops them when it steps down): one round, a pause,
again. Writes are fenced at the Raft epoch the loop started in, so a stale leader's round fails
instead of racing the new leader; a failed round (a conflict, lost quorum) is retried at the next."""

from __future__ import annotations

import asyncio
import logging

from shoal.aio import BackgroundLoop
from shoal.store.protocol import Store

log = logging.getLogger("shoal.manager")


class LeaderLoop:
    name = "leader-loop"
    failure_level = logging.DEBUG  # rounds that fail routinely (conflicts) stay out of the default log

    def __init__(self, store: Store) -> None:
        self.store = store
        self.epoch = 0
        self._loop = BackgroundLoop(self.name, self._run)

    def start(self) -> None:
        self.epoch = self.store.epoch
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def round(self) -> object:
        raise NotImplementedError

    def pause(self) -> float:
        """Seconds between rounds."""
        raise NotImplementedError

    async def _run(self) -> None:
        while True:
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.log(self.failure_level, "%s round failed: %s", self.name, exc)
            await asyncio.sleep(self.pause())
