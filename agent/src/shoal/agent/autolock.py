"""Autolock on the node: a manager restarted with wrapped keys stays locked until `swarm unlock`,
and a running manager re-wraps its keys whenever the cluster's unlock key changes.

Part of `Agent` (node.py), on top of its parts (base.py). Shaped after SwarmKit's node.go (a node
whose TLS key is encrypted with a KEK it does not have returns ErrInvalidUnlockKey and the daemon
waits for `swarm unlock`) and manager.go's KEK watch (each manager re-encrypts its own TLS key and
its Raft DEK when `Cluster.UnlockKeys` changes). The KEK lives in `self.kek` (memory) only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from shoal.agent import credentials
from shoal.agent.base import NOT_IN_SWARM, AgentCore
from shoal.errors import Conflict, Unauthorized, Unavailable
from shoal.identity import KEY_DIR, node_file
from shoal.store.atrest import keyset, keywrap

log = logging.getLogger("shoal.agent")

SWARM_LOCKED = (
    'Swarm is encrypted and needs to be unlocked before it can be used. Please use "shoal swarm unlock" to unlock it.'
)
NOT_LOCKED = "swarm is not locked"  # Docker's notLockedError (409)
INVALID_KEY = "swarm could not be unlocked: invalid key provided"  # Docker's invalidUnlockKey (401)


def seal_password(password: str, kek: bytes | None) -> dict[str, object] | None:
    """The Raft password as node.json keeps it under autolock (None: in clear, no autolock)."""
    return None if kek is None else keywrap.wrap(kek, keywrap.PURPOSE_RAFT_PASSWORD, password.encode())


class Autolock(AgentCore):
    def _keys_wrapped(self) -> bool:
        password_wrapped = self.identity is not None and self.identity.raft_password_wrapped is not None
        return password_wrapped or credentials.key_is_wrapped(self.cfg.data_dir) or self._data_key_source().is_wrapped()

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
                password = await asyncio.to_thread(self._check_kek, kek)
            except keywrap.WrongUnlockKey:
                log.warning("swarm unlock refused: the key given does not open this manager's keys")
                raise Unauthorized(INVALID_KEY) from None
            self.kek = kek
            if password is not None:  # known in memory only: node.json keeps it wrapped
                self.identity.raft_password = password
            self.locked = False
            await self._activate()
            log.info("swarm unlocked: the manager is starting")

    def _check_kek(self, kek: bytes) -> str | None:
        """Open every wrapped key with `kek` (WrongUnlockKey if any does not open); the Raft
        password if node.json keeps it wrapped."""
        credentials.load(self.cfg.data_dir, kek)
        dek = self._data_key_source()
        dek.kek = kek
        if dek.exists():
            dek.load()
        wrapped = self.identity.raft_password_wrapped if self.identity else None
        if wrapped is None:
            return None
        return keywrap.unwrap(kek, keywrap.PURPOSE_RAFT_PASSWORD, wrapped).decode()

    def _on_unlock_key(self, wanted: bytes | None) -> None:
        """Re-wrap this manager's data key, TLS key and Raft password for the cluster's current
        unlock key (in clear when autolock is off). Called from the manager's watch of the store,
        on the event loop (so a certificate renewal's save runs wholly before or after it: the
        renewed key is then either re-wrapped here or saved with the new `self.kek`). The three
        files switch as one (`keyset.replace_all`): a crash leaves all under the old key or all
        under the new one."""
        ident = self.identity
        if wanted == self.kek or ident is None or ident.role != "manager":
            return
        data_dir = self.cfg.data_dir
        dek = self._data_key_source()
        files = {credentials.key_path(data_dir): credentials.rewrapped_key(data_dir, self.kek, wanted)}
        if dek.exists():
            files[dek.path] = dek.rewrapped(wanted)
        sealed = seal_password(ident.raft_password, wanted)
        files[node_file(data_dir)] = dataclasses.replace(ident, raft_password_wrapped=sealed).to_bytes()

        def switched() -> None:  # from here on the files on disk are under `wanted`
            ident.raft_password_wrapped = sealed
            self.kek = wanted

        keyset.replace_all(data_dir / KEY_DIR, files, on_commit=switched)
        log.info("autolock: this manager's keys are now %s", "wrapped by the unlock key" if wanted else "in clear")
