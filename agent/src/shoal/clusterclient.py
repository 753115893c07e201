"""Client side of the cluster API (port 2377, TLS): node-to-manager calls."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

import aiohttp

from shoal.errors import ShoalError, Unavailable

# On kept connections a call that outlives its timeout is not cut: it goes on in the background for
# up to LATE_GRACE times its timeout, so that its connection (TCP + TLS) goes back to the pool when
# the answer is read. Cutting it closed the connection, and the retry and every call after it made
# a new handshake: in a process too busy to read its answers in time (200 simulated nodes on a
# fifth of a CPU) those handshakes were 15 % of its time and kept it behind (docs/scale.md). gRPC,
# SwarmKit's transport, keeps its one connection when a call times out too.
LATE_GRACE = 3.0
# A new connection's TCP connect and TLS handshake may take this long (within the call's timeout): a
# busy manager's handshakes wait behind its event loop, and at 2 s a thousand nodes gave up on
# theirs by the thousand and connected again, each abandoned handshake still costing the manager
# its work when it got to it (20,000 such connections on one manager at 1,000 nodes, docs/scale.md).
# A manager that is down refuses at once; only a silent one costs the wait.
CONNECT_TIMEOUT = 10.0


def _timeouts(total: float, call_timeout: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=total, connect=min(call_timeout, CONNECT_TIMEOUT))


def _try_next(exc: ShoalError) -> bool:
    """Whether a manager's failure sends the call to the next one: unreachable, or 503 Unavailable
    (e.g. a follower whose replica is behind); any other API error is an answer."""
    return isinstance(exc, Unavailable) or exc.status == 503


def _retrieve(task: asyncio.Task[Any]) -> None:
    """A call nobody waits for any more: its outcome is dropped without a "never retrieved" log."""
    if not task.cancelled():
        task.exception()


class ClusterClient:
    """Calls managers' cluster API with this node's certificate (or none, for join)."""

    def __init__(
        self, ssl_context: ssl.SSLContext, timeout: float = 5.0, session: aiohttp.ClientSession | None = None
    ) -> None:
        self.ssl_context = ssl_context
        self.timeout = _timeouts(timeout, timeout)
        self.session = session  # kept connections (ClientPool); None: one connection per call

    async def call(self, addr: str, method: str, path: str, body: Any = None, *, timeout: float | None = None) -> Any:
        url = f"https://{addr}{path}"
        to = _timeouts(timeout, timeout) if timeout else self.timeout
        if self.session is not None and not self.session.closed:
            pending = self.begin(addr, method, path, body, timeout=to.total or 5.0)
            try:
                return await self.wait(addr, pending, to.total or 5.0)
            except asyncio.CancelledError:
                pending.cancel()  # the caller is gone (stopping): nothing to keep the connection for
                raise
        try:
            async with aiohttp.ClientSession(timeout=to) as session:
                return await self._request(session, addr, method, url, body, to)
        except (TimeoutError, aiohttp.ClientError, OSError, ssl.SSLError) as exc:
            raise Unavailable(f"cannot reach manager {addr}: {exc.__class__.__name__}: {exc}") from exc

    def begin(self, addr: str, method: str, path: str, body: Any = None, *, timeout: float) -> asyncio.Task[Any]:
        """A call on the kept connections, under way until answered or LATE_GRACE x `timeout`;
        `wait` for its answer, as long as the caller wants to, as often as it wants to."""
        assert self.session is not None
        to = _timeouts(timeout * LATE_GRACE, timeout)
        task = asyncio.ensure_future(self._kept(self.session, addr, method, f"https://{addr}{path}", body, to))
        task.add_done_callback(_retrieve)
        return task

    @staticmethod
    async def wait(addr: str, pending: asyncio.Task[Any], timeout: float) -> Any:
        """`pending`'s answer, or Unavailable (caused by TimeoutError) after `timeout` seconds; the
        call itself goes on (its connection is kept)."""
        try:
            # not asyncio.wait_for: on 3.11 it swallows a cancellation that comes as the call ends
            # (bpo-42130), and a node's loop being stopped ran on forever (a flapping node's stop hung)
            async with asyncio.timeout(timeout):
                return await asyncio.shield(pending)
        except TimeoutError as exc:
            raise Unavailable(f"cannot reach manager {addr}: no answer within {timeout:g} s") from exc

    async def _kept(
        self, session: aiohttp.ClientSession, addr: str, method: str, url: str, body: Any, to: aiohttp.ClientTimeout
    ) -> Any:
        try:
            return await self._request(session, addr, method, url, body, to)
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
                if not _try_next(exc):
                    raise
                last = exc
        raise last or Unavailable("no manager address known")

    async def poll_any(
        self,
        addrs: list[str],
        method: str,
        path: str,
        body: Any = None,
        *,
        timeout: float,
        keep_waiting: Callable[[str], bool],
    ) -> tuple[str, Any]:
        """`call_any` for a long poll: an answer still under way after `timeout` is waited for
        again (up to LATE_GRACE x `timeout`) rather than asked for anew, while `keep_waiting(addr)`
        says that manager is still the one to ask. A second poll while a busy manager was still
        building the first doubled its work exactly when it was behind, and the late answer was
        read and dropped (300 nodes / 9,000 tasks: docs/scale.md)."""
        if self.session is None or self.session.closed:
            return await self.call_any(addrs, method, path, body, timeout=timeout)
        last: ShoalError | None = None
        for addr in addrs:
            pending = self.begin(addr, method, path, body, timeout=timeout)
            try:
                while True:
                    try:
                        return addr, await self.wait(addr, pending, timeout)
                    except Unavailable:
                        if pending.done():
                            # it ended as the wait timed out: its outcome (answer or error) is the one
                            return addr, pending.result()
                        if not keep_waiting(addr):
                            raise
            except ShoalError as exc:
                pending.cancel()  # given up: its connection closes, and the manager stops waiting too
                if not _try_next(exc):
                    raise
                last = exc
            except asyncio.CancelledError:
                pending.cancel()
                raise
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
        self.connections_made = 0  # TCP + TLS handshakes, a figure (simulated fleets print it)

    def _trace(self) -> aiohttp.TraceConfig:
        trace = aiohttp.TraceConfig()

        async def made(*_args: Any) -> None:
            self.connections_made += 1

        trace.on_connection_create_end.append(made)
        return trace

    def client(self, ssl_context: ssl.SSLContext) -> ClusterClient:
        if ssl_context is not self._ctx or self._session is None or self._session.closed:
            self._drop()
            self._ctx = ssl_context
            # idle connections close after 30 s, before the managers' own 75 s keep-alive ends them
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(keepalive_timeout=30), trace_configs=[self._trace()]
            )
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
