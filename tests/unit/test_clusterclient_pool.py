"""A node's steady calls to the managers reuse their TLS connections (ClientPool), and a kept
connection the manager closed is replaced without the caller seeing an error."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from shoal import tls
from shoal.clusterclient import ClientPool, ClusterClient
from shoal.errors import Unavailable
from shoal.manager import ca
from shoal.worker.session import Session


async def serve(root: ca.RootCA, peers: list[Any]) -> tuple[web.AppRunner, str]:
    key, csr = tls.new_key_and_csr()
    cert = root.issue(csr, "mgr1", "manager", "cluster1")

    async def ping(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        return web.json_response({"Seen": len(peers)})

    app = web.Application()
    app.router.add_post("/ping", ping)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.server_context(cert, key, root.cert_pem))
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"127.0.0.1:{port}"


def client_ctx(root: ca.RootCA) -> Any:
    key, csr = tls.new_key_and_csr()
    return tls.client_context(root.cert_pem, root.issue(csr, "node1", "worker", "cluster1"), key)


def test_pooled_calls_share_one_connection_and_single_calls_do_not() -> None:
    async def main() -> tuple[int, int]:
        root = ca.RootCA.create()
        peers: list[Any] = []
        runner, addr = await serve(root, peers)
        ctx = client_ctx(root)
        pool = ClientPool()
        try:
            for _ in range(4):
                await pool.client(ctx).call(addr, "POST", "/ping", {})
            pooled = len(set(peers))
            peers.clear()
            for _ in range(4):
                await ClusterClient(ctx).call(addr, "POST", "/ping", {})
            single = len(set(peers))
        finally:
            await pool.close()
            await runner.cleanup()
        return pooled, single

    assert asyncio.run(main()) == (1, 4)


def test_a_kept_connection_closed_by_the_manager_is_replaced() -> None:
    async def main() -> tuple[dict[str, Any], int]:
        root = ca.RootCA.create()
        peers: list[Any] = []
        runner, addr = await serve(root, peers)
        ctx = client_ctx(root)
        pool = ClientPool()
        try:
            await pool.client(ctx).call(addr, "POST", "/ping", {})
            # the manager drops every idle kept connection (as a restart of its cluster port does)
            for conn in list(runner.server.connections) if runner.server else []:
                conn.force_close()
            await asyncio.sleep(0.05)
            answer = await pool.client(ctx).call(addr, "POST", "/ping", {})
        finally:
            await pool.close()
            await runner.cleanup()
        return answer, len(set(peers))

    answer, connections = asyncio.run(main())
    assert answer == {"Seen": 2}
    assert connections == 2


def test_a_new_certificate_gets_new_connections() -> None:
    async def main() -> int:
        root = ca.RootCA.create()
        peers: list[Any] = []
        runner, addr = await serve(root, peers)
        pool = ClientPool()
        try:
            await pool.client(client_ctx(root)).call(addr, "POST", "/ping", {})
            await pool.client(client_ctx(root)).call(addr, "POST", "/ping", {})  # renewed: another context
        finally:
            await pool.close()
            await runner.cleanup()
        return len(set(peers))

    assert asyncio.run(main()) == 2


async def serve_slow(root: ca.RootCA, peers: list[Any], delays: list[float]) -> tuple[web.AppRunner, str]:
    """A manager that answers its first calls late (`delays`, seconds, one per call), as a busy one does."""
    key, csr = tls.new_key_and_csr()
    cert = root.issue(csr, "mgr1", "manager", "cluster1")

    async def answer(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        if delays:
            await asyncio.sleep(delays.pop(0))
        return web.json_response({"Seen": len(peers), "Leader": request.host})

    app = web.Application()
    app.router.add_post("/ping", answer)
    app.router.add_post("/shoal/heartbeat", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.server_context(cert, key, root.cert_pem))
    await site.start()
    return runner, f"127.0.0.1:{runner.addresses[0][1]}"


def test_a_call_answered_after_its_timeout_keeps_its_connection() -> None:
    """A timed-out call is refused to its caller, but its connection (and TLS session) is not cut:
    the calls after it use it again instead of a new handshake each."""

    async def main() -> tuple[BaseException | None, list[Any], dict[str, Any], int]:
        root = ca.RootCA.create()
        peers: list[Any] = []
        runner, addr = await serve_slow(root, peers, [0.8])
        pool = ClientPool()
        late: BaseException | None = None
        try:
            client = pool.client(client_ctx(root))
            try:
                await client.call(addr, "POST", "/ping", {}, timeout=0.3)
            except Unavailable as exc:
                late = exc.__cause__
            await asyncio.sleep(0.8)  # the late answer arrives and is read
            for _ in range(50):  # on a loaded machine it may come later: until its connection is idle
                connector = pool._session.connector if pool._session is not None else None
                if connector is not None and any(connector._conns.values()):
                    break
                await asyncio.sleep(0.1)
            answer = await client.call(addr, "POST", "/ping", {}, timeout=5)
        finally:
            await pool.close()
            await runner.cleanup()
        return late, peers, answer, pool.connections_made

    late, peers, answer, made = asyncio.run(main())
    assert isinstance(late, TimeoutError)
    assert answer["Seen"] == 2 and len(set(peers)) == 1 and made == 1


def test_a_beat_that_timed_out_is_waited_for_again_not_sent_again() -> None:
    async def main() -> tuple[Any, Any, Session, list[Any]]:
        root = ca.RootCA.create()
        peers: list[Any] = []
        runner, addr = await serve_slow(root, peers, [1.6])
        pool = ClientPool()
        ctx = client_ctx(root)

        async def on_answer(_answer: dict[str, Any]) -> None:
            return None

        session = Session(lambda: pool.client(ctx), lambda: [addr], "10.0.0.9:2377", 0.5, on_answer)
        try:
            first = await session.beat_once()  # no answer within its 1 s timeout
            second = await session.beat_once()  # the same beat's answer, 0.6 s later
            third = await session.beat_once()  # a new beat, on the same connection
        finally:
            await session.stop()
            await pool.close()
            await runner.cleanup()
        return first, (second, third), session, peers

    first, (second, third), session, peers = asyncio.run(main())
    assert first is None and session.timeouts == 1
    assert second["Seen"] == 1  # the beat that timed out, not a second one
    assert third["Seen"] == 2 and len(set(peers)) == 1


def test_a_caller_cancelled_as_its_call_is_answered_is_cancelled() -> None:
    """Stopping a node's loops cancels them while they wait for answers: a cancellation that comes
    as the answer does must not be swallowed (asyncio.wait_for on 3.11 does: the loop then ran on
    and the stop never ended, a flapping simulated node's)."""

    async def main() -> str:
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        waiting = asyncio.create_task(ClusterClient.wait("m1", answer, 10.0))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        answer.set_result({"ok": True})
        waiting.cancel()
        try:
            return f"returned {await waiting}"
        except asyncio.CancelledError:
            return "cancelled"

    assert asyncio.run(main()) == "cancelled"
