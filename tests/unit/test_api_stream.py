"""An answer streamed from shared pieces arrives whole: the pieces in order, the declared length,
slices cut across piece boundaries put back together by the client."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shoal.api import stream


def test_pieces_larger_and_smaller_than_a_slice_arrive_joined() -> None:
    pieces = [b'{"a":', bytes(range(256)) * (stream.SLICE // 256 * 2 + 3), b"", b"}"]
    sent: list[int] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        response = await stream.stream_pieces(request, pieces)
        sent.append(response.content_length or 0)
        return response

    async def run() -> tuple[int, bytes, str]:
        app = web.Application()
        app.router.add_get("/answer", handler)
        async with TestClient(TestServer(app)) as client:
            resp = await client.get("/answer")
            return resp.status, await resp.read(), resp.headers["Content-Type"]

    status, body, content_type = asyncio.run(run())
    assert status == 200 and content_type == "application/json"
    assert body == b"".join(pieces)
    assert sent == [len(body)]
