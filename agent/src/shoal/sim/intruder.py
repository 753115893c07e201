"""A node that misbehaves, for the scale test's refusals: garbage where TLS is expected, malformed
requests over its own valid TLS session, and the same session replayed after the node was removed.
Each probe records what the manager answered; the test checks those answers, and that the fleet's
other nodes and tasks were not affected."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import Any

import aiohttp

from shoal.sim.node import SimNode

GARBAGE = b"GARBAGE " + os.urandom(512)  # not a TLS record: the first byte is no content type


async def raw_garbage(addr: str, timeout: float = 10.0) -> dict[str, Any]:
    """Bytes that are not TLS sent to the cluster port: what came back before the close."""
    host, port = addr.rsplit(":", 1)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
    try:
        writer.write(GARBAGE)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(4096), timeout)
        closed = answer == b"" or await asyncio.wait_for(reader.read(4096), timeout) == b""
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return {"answer": answer[:16].hex(), "closed": closed}


async def post(node: SimNode, addr: str, path: str, body: bytes, timeout: float = 10.0) -> dict[str, Any]:
    """`body` as it is, over a TLS session with the node's own certificate: status and message."""
    to = aiohttp.ClientTimeout(total=timeout)
    headers = {"Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession(timeout=to) as session,
        session.post(f"https://{addr}{path}", data=body, ssl=node.ctx, headers=headers) as resp,
    ):
        text = await resp.text()
    try:
        data = json.loads(text)
    except ValueError:
        data = None  # not the API's JSON error: the test sees a message of None
    return {"status": resp.status, "message": data.get("message") if isinstance(data, dict) else None}


async def probe(node: SimNode) -> dict[str, Any]:
    """Every probe against every manager the node knows."""
    out: dict[str, Any] = {}
    beat = json.dumps({"Addr": node.addr}).encode()
    for addr in node.managers:
        try:
            out[addr] = {
                "garbage": await raw_garbage(addr),
                "bad_json": await post(node, addr, "/shoal/heartbeat", b'{"Addr": "10.0.0.1:1", '),
                "bad_updates": await post(node, addr, "/shoal/task-status", b'{"Updates": "all of them"}'),
                "beat": await post(node, addr, "/shoal/heartbeat", beat),
            }
        except (OSError, TimeoutError, aiohttp.ClientError) as exc:  # a manager that is down
            out[addr] = {"error": f"{exc.__class__.__name__}: {exc}"}
    return out
