"""Certificate renewal (SwarmKit ca/certificates.go RenewTLSConfig): a node renews its certificate
at a random point between 50 % and 80 % of its life, and at once when the managers' trust roots
differ from its own (a root CA rotation began or ended: the heartbeat's `TrustDigest`).

Part of `Agent` (node.py). A renewal swaps the TLS contexts in place: the cluster port's listener
hands each new connection the new certificate (`tls.switching_server_context`) and connections
already open stay, so sessions and the tasks they carry are never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from typing import Any

from shoal import tls
from shoal.agent import credentials
from shoal.agent.roles import RoleChanges
from shoal.errors import ShoalError

log = logging.getLogger("shoal.agent")

RETRY_MIN, RETRY_MAX = 1.0, 30.0  # seconds between attempts after a failed renewal


def trust_digest(ca_pem: bytes | str) -> str:
    """As `ca_rotation.trust_digest` on the managers (this side has no `cryptography`)."""
    return hashlib.sha256(credentials.as_bytes(ca_pem)).hexdigest()[:32]


class Renewal(RoleChanges):
    _renewer: asyncio.Task[None] | None = None
    _renew_now: asyncio.Event | None = None
    renewals = 0  # certificates this node obtained by renewal since it started (tests, metrics)

    def _start_session(self, ident: Any) -> None:
        super()._start_session(ident)
        if self._renewer is None or self._renewer.done():
            self._renew_now = asyncio.Event()
            self._renewer = asyncio.get_running_loop().create_task(self._renewal_loop())

    async def stop(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._renewer
            self._renewer = None
        await super().stop()

    async def _on_session_answer(self, answer: dict[str, Any]) -> None:
        await super()._on_session_answer(answer)
        want = answer.get("TrustDigest")
        if want is None and self.manager is not None and self.manager.is_leader():
            with contextlib.suppress(ShoalError):  # the leader keeps no session: it asks itself
                want = self.manager.trust_digest()
        if want and self._renew_now is not None and self.identity is not None:
            with contextlib.suppress(OSError):
                if trust_digest(credentials.read_ca(self.cfg.data_dir)) != want:
                    self._renew_now.set()

    async def _renewal_loop(self) -> None:
        assert self._renew_now is not None
        while True:
            creds = credentials.load(self.cfg.data_dir, self.kek)
            not_before, not_after = await asyncio.to_thread(tls.cert_times, creds.cert_pem)
            delay = tls.renewal_delay(not_before, not_after, time.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._renew_now.wait(), delay)
            self._renew_now.clear()
            try:
                await self._renew_certificate()
            except (ShoalError, OSError) as exc:
                left = not_after - time.time()
                pause = min(RETRY_MAX, max(RETRY_MIN, left / 10))
                log.warning("certificate renewal failed (%s); next attempt in %.0f s", exc, pause)
                await asyncio.sleep(pause)

    async def _renew_certificate(self) -> None:
        key_pem, grant = await self._renew()
        async with self._lock:
            ident = self.identity
            if ident is None or grant["Role"] != ident.role:
                return  # left meanwhile, or a role change is due: _change_role renews for the new role
            ca_pem = grant.get("CACertificate") or credentials.read_ca(self.cfg.data_dir)
            # the KEK as it is now, not when the CSR went out: an unlock-key rotation meanwhile
            # (autolock.py, on this same loop) has re-wrapped the other keys under the new one
            creds = credentials.save(self.cfg.data_dir, ca_pem, grant["Certificate"], key_pem, kek=self.kek)
            await self._use_credentials(creds, restart_listener=False)
            self.renewals += 1
        log.info("renewed this node's certificate")
