"""`swarm leave`: stop everything, end the node's tasks, clean its networking, forget the swarm.

Part of `Agent` (node.py), on top of its parts (base.py).
"""

from __future__ import annotations

import asyncio
import logging

from shoal.agent.base import AgentCore
from shoal.errors import Unavailable
from shoal.identity import wipe

log = logging.getLogger("shoal.agent")

MANAGER_LEAVING = (
    "You are attempting to leave the swarm on a node that is participating as a manager. "
    "Removing this node leaves the remaining managers without it; demote it first "
    "(shoal node demote), or use --force to ignore this message."
)


class Leaving(AgentCore):
    async def leave(self, force: bool) -> None:
        async with self._lock:
            ident = self.require_swarm()
            if ident.role == "manager" and not force:
                raise Unavailable(MANAGER_LEAVING)
            await self.stop()
            await self._remove_all_tasks()
            await self.network.detach()
            wipe(self.cfg.data_dir)
            self.identity = None
            self.kek, self.locked = None, False
            self.client_ctx = self.server_ctx = None
            log.info("left the swarm")

    async def _remove_all_tasks(self) -> None:
        """`swarm leave` ends the node's tasks, as Docker removes a leaving node's containers."""
        for task_id in sorted(set(self.executor.state) | set(self.driver.task_ids())):
            try:
                await asyncio.to_thread(self.driver.stop, task_id, None)
                await asyncio.to_thread(self.driver.remove, task_id)
            except Exception as exc:
                log.warning("removing task %s on leave: %s", task_id, exc)
        self.executor.state.clear()
