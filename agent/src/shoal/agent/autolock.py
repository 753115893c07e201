"""Autolock on the node: a manager restarted with wrapped keys stays locked until `swarm unlock`,
and a running manager re-wraps its keys whenever the cluster's unlock key changes.

Part of `Agent` (node.py), on top of its parts (base.py). Shaped after SwarmKit's node.go (a node
whose TLS key is encrypted with a KEK it does not have returns ErrInvalidUnlockKey and the daemon
waits for `swarm unlock`) and manager.go's KEK watch (each manager re-encrypts its own TLS key and
its Raft DEK when `Cluster.UnlockKeys` changes). The KEK lives in `self.kek` (memory) only.
"""

from __future__ import annotations

import asyncio
import logging

from shoal.agent import credentials
from shoal.agent.base import NOT_IN_SWARM, AgentCore
from shoal.errors import Conflict, Unauthorized, Unavailable
from shoal.store.atrest import keywrap

log = logging.getLogger("shoal.agent")

SWARM_LOCKED = (
    'Swarm is encrypted and needs to be unlocked before it can be used. Please use "shoal swarm unlock" to unlock it.'
)
NOT_LOCKED = "swarm is not locked"  # Docker's notLockedError (409)
INVALID_KEY = "swarm could not be unlocked: invalid key provided"  # Docker's invalidUnlockKey (401)


class Autolock(AgentCore):
    def _keys_wrapped(self) -> bool:
        return credentials.key_is_wrapped(self.cfg.data_dir) or self._data_key_source().is_wrapped()

    async def unlock(self, key_text: str) -> None:
        """`POST /swarm/unlock`: open this manager's keys with the key given, then start it.
        A wrong key changes nothing (the files are only read)."""
        async with self._lock:
            if self.identity is None:
                raise Unavailable(NOT_IN_SWARM)
            if not self.locked:
                raise Conflict(NOT_LOCKED)
            kek = keywrap.parse_unlock_key(key_text)
            try:
                await asyncio.to_thread(self._check_kek, kek)
            except keywrap.WrongUnlockKey:
                log.warning("swarm unlock refused: the key given does not open this manager's keys")
                raise Unauthorized(INVALID_KEY) from None
            self.kek = kek
            self.locked = False
            await self._activate()
            log.info("swarm unlocked: the manager is starting")

    def _check_kek(self, kek: bytes) -> None:
        credentials.load(self.cfg.data_dir, kek)
        dek = self._data_key_source()
        dek.kek = kek
        if dek.exists():
            dek.load()

    def _on_unlock_key(self, wanted: bytes | None) -> None:
        """Re-wrap this manager's data key and TLS key for the cluster's current unlock key (in
        clear when autolock is off). Called from the manager's watch of the store; files are
        replaced atomically, the TLS key first, so a crash in between is caught at the next
        unlock (the data key still opens with the previous key) instead of losing either."""
        if wanted == self.kek or self.identity is None or self.identity.role != "manager":
            return
        dek = self._data_key_source()
        credentials.rewrap_key(self.cfg.data_dir, self.kek, wanted)
        if dek.exists():
            dek.rewrap(wanted)
        self.kek = wanted
        log.info("autolock: this manager's keys are now %s", "wrapped by the unlock key" if wanted else "in clear")
