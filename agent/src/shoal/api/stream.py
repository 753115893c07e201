"""Answers written from shared pieces, a slice at a time: what a slow client holds in this agent's
buffers is one slice, not a copy of its answer (a new leader answering 1,000 nodes' polls at once
held 1,000 copies of a 3 MB overlay, docs/scale.md)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

# Bytes written at a time; aiohttp's write waits for the connection to drain past 64 KiB.
SLICE = 256 << 10
# Items encoded at a time by `json_list`: a few milliseconds of the C encoder, which holds the GIL.
BATCH = 200
YIELD_AFTER = 0.02  # seconds of encoding between two turns of the event loop


async def stream_pieces(
    request: web.Request,
    pieces: Sequence[bytes],
    content_type: str = "application/json",
    on_gone: Callable[[], object] | None = None,
) -> web.StreamResponse:
    """An answer that is `pieces` joined, each piece written as it is (no join, no copy). A client
    that closes its connection meanwhile (a node that gave up on its poll) ends the answer quietly:
    it is no error of this agent's, and at 1,000 nodes a new leader logged 413 tracebacks for it in a
    second (docs/scale.md, session 20)."""
    response = web.StreamResponse(headers={"Content-Type": content_type})
    response.content_length = sum(len(p) for p in pieces)
    try:
        await response.prepare(request)
        for piece in pieces:
            view = memoryview(piece)
            for start in range(0, len(view), SLICE):
                await response.write(view[start : start + SLICE])
        await response.write_eof()
    except ConnectionError:  # reset, or aiohttp's "Connection lost" for a write waiting to drain
        if on_gone is not None:
            on_gone()
    return response


async def json_list(request: web.Request, items: Sequence[Any]) -> web.StreamResponse:
    """A JSON array answered from `items` encoded BATCH at a time (the GIL free between batches),
    the event loop let go every YIELD_AFTER seconds. One `json.dumps` of 33,000 tasks (57 MB) held
    the GIL for seconds: the Raft tick thread waited 13.5 s behind a `GET /tasks` on a follower,
    and the new leader, short of that follower's acknowledgements, stepped down (docs/scale.md,
    session 20)."""
    pieces: list[bytes] = [b"["]
    since = time.monotonic()
    for start in range(0, len(items), BATCH):
        if start:
            pieces.append(b",")
            # the GIL goes round between batches anyway; the loop is let go every YIELD_AFTER
            # seconds: heartbeats wait no longer, and on a busy loop the listing is not queued
            # behind every other callback once per batch
            if time.monotonic() - since >= YIELD_AFTER:
                await asyncio.sleep(0)
                since = time.monotonic()
        pieces.append(json.dumps(items[start : start + BATCH])[1:-1].encode())
    pieces.append(b"]")
    return await stream_pieces(request, pieces)
