"""What a TLS connection costs a manager's memory.

A handshake the client gives up on leaves no reference cycle holding the connection's SSL
objects: at 1,000 nodes, 15,000 abandoned handshakes held 3.8 GB on each manager until a full
collection that came too late (docs/scale.md). Collections are off while the handshakes fail, as
on a large manager where a cycle reaching old objects waits for a full collection. And each
connection reads through a 64 KiB buffer, not asyncio's 256 KiB, with large messages intact."""

from __future__ import annotations

import asyncio
import gc
import socket
from asyncio import sslproto
from collections import Counter

from shoal import tls
from shoal.manager import ca
from shoal.manager.ca import RootCA

ABANDONED = 40


def garbage_types() -> Counter[str]:
    flags = gc.get_debug()
    gc.set_debug(flags | gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = Counter(type(o).__name__ for o in gc.garbage)
        gc.garbage.clear()
    finally:
        gc.set_debug(flags)
    gc.collect()
    return found


def abandon_handshakes(patched: bool, failures: list[str] | None = None) -> Counter[str]:
    failures = [] if failures is None else failures
    root = RootCA.create()
    key_pem, csr_pem = ca.new_node_key_and_csr("mgr")
    cert = root.issue(csr_pem, "mgr", "manager", "cluster1", ips=["127.0.0.1"])
    server_ctx = ca.server_context(cert, key_pem, root.cert_pem)

    async def run() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        try:
            for _ in range(ABANDONED):
                # the start of a ClientHello, then EOF: a client whose connect timed out
                with socket.create_connection(("127.0.0.1", port)) as s:
                    s.sendall(b"\x16\x03\x01")
                await asyncio.sleep(0.02)
            await asyncio.sleep(tls.FORGET_AFTER + 0.5)  # the tracebacks are dropped after this
        finally:
            server.close()
            await server.wait_closed()

    current = sslproto.SSLProtocol._on_handshake_complete
    sslproto.SSLProtocol._on_handshake_complete = getattr(current, "wrapped", current)  # asyncio's own
    if patched:
        tls.send_handshake_alerts(failures.append)
    gc.collect()
    gc.disable()
    try:
        asyncio.run(run())
        return garbage_types()
    finally:
        gc.enable()
        sslproto.SSLProtocol._on_handshake_complete = current


def test_an_abandoned_handshake_leaves_no_ssl_objects_for_the_collector() -> None:
    failures: list[str] = []
    found = abandon_handshakes(patched=True, failures=failures)
    assert failures == ["ConnectionResetError"] * ABANDONED  # counted (shoal_tls_handshake_failures_total)
    assert found["MemoryBIO"] == 0 and found["SSLProtocol"] == 0 and found["SSLObject"] == 0, found


def test_without_the_patch_asyncio_leaves_them_in_cycles() -> None:
    """What the patch is for (asyncio 3.11): each abandoned handshake's SSL objects wait for gc."""
    found = abandon_handshakes(patched=False)
    assert found["MemoryBIO"] >= ABANDONED, found


def test_connections_read_through_lean_buffers_and_large_messages_arrive_whole() -> None:
    root = RootCA.create()
    key_pem, csr_pem = ca.new_node_key_and_csr("mgr")
    cert = root.issue(csr_pem, "mgr", "manager", "cluster1", ips=["127.0.0.1"])
    server_ctx = ca.server_context(cert, key_pem, root.cert_pem)
    client_ctx = ca.client_context(root.cert_pem)
    message = bytes(range(256)) * 4096  # 1 MiB, sixteen times the buffer
    buffers: list[int] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_protocol = writer.transport._ssl_protocol  # type: ignore[attr-defined]
        buffers.append(len(ssl_protocol._ssl_buffer))
        writer.write(await reader.readexactly(len(message)))
        await writer.drain()
        writer.close()

    async def run() -> bytes:
        server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
            writer.write(message)
            back = await reader.readexactly(len(message))
            writer.close()
            return back
        finally:
            server.close()
            await server.wait_closed()

    before = sslproto.SSLProtocol.max_size
    try:
        tls.lean_read_buffers()
        assert asyncio.run(run()) == message
    finally:
        sslproto.SSLProtocol.max_size = before
    assert buffers == [tls.READ_BUFFER]
