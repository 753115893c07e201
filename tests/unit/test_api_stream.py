"""An answer streamed from shared pieces arrives whole: the pieces in order, the declared length,
slices cut across piece boundaries put back together by the client."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
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


def test_a_client_that_leaves_mid_answer_ends_it_quietly() -> None:
    # a node that gave up on its poll while a 3 MB answer was written: no 500, no traceback (the
    # agent's servers do not cancel a handler whose client left, as aiohttp's TestServer does)
    pieces = [b"x" * (stream.SLICE * 64)]  # far more than the socket buffers take at once
    gone: list[int] = []
    ended: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            response = await stream.stream_pieces(request, pieces, on_gone=lambda: gone.append(1))
        except BaseException as exc:
            ended.append(type(exc).__name__)
            raise
        ended.append("returned")
        return response

    async def run() -> None:
        app = web.Application()
        app.router.add_get("/answer", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            async with aiohttp.ClientSession() as session:
                resp = await session.get(f"http://127.0.0.1:{port}/answer")
                await resp.content.read(1024)  # the answer has started
                resp.close()  # and the client leaves
            for _ in range(100):
                if ended:
                    break
                await asyncio.sleep(0.05)
        finally:
            await runner.cleanup()

    asyncio.run(run())
    assert ended == ["returned"] and gone == [1]


def test_a_long_list_is_answered_as_the_same_json_and_lets_the_loop_run(monkeypatch: pytest.MonkeyPatch) -> None:
    items = [{"ID": f"t{i}", "Spec": {"n": i, "s": "é"}} for i in range(stream.BATCH * 3 + 7)]
    ticks: list[int] = []
    while_encoding: list[int] = []
    write = stream.stream_pieces

    async def counted(request: web.Request, pieces: list[bytes], *args: object, **kwargs: object) -> object:
        while_encoding.append(len(ticks))  # the encoding is done: how often the loop ran meanwhile
        return await write(request, pieces)

    monkeypatch.setattr(stream, "stream_pieces", counted)
    monkeypatch.setattr(stream, "YIELD_AFTER", 0.0)  # every batch: the test's lists encode in microseconds

    async def handler(request: web.Request) -> web.StreamResponse:
        ticks.clear()
        return await stream.json_list(request, items)

    async def empty_handler(request: web.Request) -> web.StreamResponse:
        return await stream.json_list(request, [])

    async def ticker() -> None:
        while True:
            ticks.append(1)
            await asyncio.sleep(0)

    async def run() -> tuple[int, bytes, bytes]:
        app = web.Application()
        app.router.add_get("/list", handler)
        app.router.add_get("/empty", empty_handler)
        async with TestClient(TestServer(app)) as client:
            beside = asyncio.create_task(ticker())
            resp = await client.get("/list")
            body = await resp.read()
            beside.cancel()
            empty = await (await client.get("/empty")).read()
            return resp.status, body, empty

    status, body, empty = asyncio.run(run())
    assert status == 200 and json.loads(body) == items
    assert empty == b"[]"
    assert while_encoding[0] >= 3  # the loop ran between the 4 batches
