"""Client side of the cluster API (port 2377, TLS): node-to-manager calls."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import aiohttp

from shoal.errors import ShoalError, Unavailable


class ClusterClient:
    """Calls managers' cluster API with this node's certificate (or none, for join)."""

    def __init__(
        self, ssl_context: ssl.SSLContext, timeout: float = 5.0, session: aiohttp.ClientSession | None = None
    ) -> None:
        self.ssl_context = ssl_context
        self.timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 2.0))
        self.session = session  # kept connections (ClientPool); None: one connection per call

    async def call(self, addr: str, method: str, path: str, body: Any = None, *, timeout: float | None = None) -> Any:
        url = f"https://{addr}{path}"
        to = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 2.0)) if timeout else self.timeout
        try:
            if self.session is None or self.session.closed:
                async with aiohttp.ClientSession(timeout=to) as session:
                    return await self._request(session, addr, method, url, body, to)
            return await self._request(self.session, addr, method, url, body, to)
        except (TimeoutError, aiohttp.ClientError, OSError, ssl.SSLError) as exc:
            raise Unavailable(f"cannot reach manager {addr}: {exc.__class__.__name__}: {exc}") from exc

    async def _request(
        self, session: aiohttp.ClientSession, addr: str, method: str, url: str, body: Any, to: aiohttp.ClientTimeout
    ) -> Any:
        async with session.request(method, url, json=body, ssl=self.ssl_context, timeout=to) as resp:
            data = await resp.json(content_type=None) if resp.content_length != 0 else None
            if resp.status >= 400:
                message = data.get("message") if isinstance(data, dict) else None
                raise ShoalError(message or f"{addr}: HTTP {resp.status}", resp.status)
            return data

    async def call_any(
        self, addrs: list[str], method: str, path: str, body: Any = None, *, timeout: float | None = None
    ) -> tuple[str, Any]:
        """First manager that answers (an API error is an answer; unreachable ones, and those that
        answer 503 Unavailable, e.g. a follower whose replica is behind, are skipped)."""
        last: ShoalError | None = None
        for addr in addrs:
            try:
                return addr, await self.call(addr, method, path, body, timeout=timeout)
            except ShoalError as exc:
                if not isinstance(exc, Unavailable) and exc.status != 503:
                    raise
                last = exc
        raise last or Unavailable("no manager address known")


DRAIN_SECONDS = 35.0  # longer than the longest call made on kept connections (a 30 s long poll)


class ClientPool:
    """A node's kept TLS connections to the managers, for its steady calls (heartbeats, the
    assignments long poll, task status): a TCP + TLS handshake per call cost both ends CPU on
    every status batch (twice in the leader, which also serves its own worker)."""

    def __init__(self) -> None:
        self._ctx: ssl.SSLContext | None = None
        self._session: aiohttp.ClientSession | None = None
        self._draining: list[aiohttp.ClientSession] = []  # given-up sessions finishing their calls

    def client(self, ssl_context: ssl.SSLContext) -> ClusterClient:
        if ssl_context is not self._ctx or self._session is None or self._session.closed:
            self._drop()
            self._ctx = ssl_context
            # idle connections close after 30 s, before the managers' own 75 s keep-alive ends them
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(keepalive_timeout=30))
        return ClusterClient(ssl_context, session=self._session)

    def _drop(self) -> None:
        """Close the connections of a context given up (new certificate, left the swarm), once the
        calls under way on them are done: a renewal must not cut an assignment long poll (<= 30 s)."""
        old, self._session, self._ctx = self._session, None, None
        if old is not None and not old.closed:
            loop = asyncio.get_running_loop()
            self._draining.append(old)
            loop.call_later(DRAIN_SECONDS, lambda: old.closed or loop.create_task(old.close()))

    async def close(self) -> None:
        old, self._session, self._ctx = self._session, None, None
        if old is not None:
            await old.close()
        draining, self._draining = self._draining, []
        for session in draining:
            await session.close()
