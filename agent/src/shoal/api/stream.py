"""Answers written from shared pieces, a slice at a time: what a slow client holds in this agent's
buffers is one slice, not a copy of its answer (a new leader answering 1,000 nodes' polls at once
held 1,000 copies of a 3 MB overlay, docs/scale.md)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aiohttp import web

# Bytes written at a time; aiohttp's write waits for the connection to drain past 64 KiB.
SLICE = 256 << 10


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
