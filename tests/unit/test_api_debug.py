"""`GET /shoal/debug/memory`: refused while tracing is off, then heap growth by allocation site."""

from __future__ import annotations

import asyncio
import tracemalloc
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shoal.api import debug
from shoal.api.errors import error_middleware

KEEP: list[Any] = []


async def _calls(queries: list[str]) -> list[tuple[int, Any]]:
    app = web.Application(middlewares=[error_middleware])
    for method, path, handler in debug.ROUTES:
        app.router.add_route(method, path, handler)
    out = []
    async with TestClient(TestServer(app)) as client:
        for query in queries:
            if query == "grow":
                KEEP.append([bytearray(1000) for _ in range(2000)])  # ~2 MB held from this file
                continue
            resp = await client.get(f"/shoal/debug/memory{query}")
            out.append((resp.status, await resp.json()))
    return out


def test_refused_without_tracing() -> None:
    assert not tracemalloc.is_tracing()
    [(status, body)] = asyncio.run(_calls([""]))
    assert status == 503 and "PYTHONTRACEMALLOC" in body["message"]


def test_reports_where_the_heap_grew() -> None:
    debug._last.clear()
    tracemalloc.start(5)
    try:
        first, bad, bad_group, grown = asyncio.run(_calls(["", "?top=0", "?group=file", "grow", "?top=5"]))
    finally:
        tracemalloc.stop()
        KEEP.clear()
    assert first[0] == 200 and first[1]["Since"] == "start"
    assert bad[0] == 400 and "top" in bad[1]["message"]
    assert bad_group[0] == 400 and "lineno or traceback" in bad_group[1]["message"]
    assert grown[0] == 200 and grown[1]["Since"] == "previous call"
    top = grown[1]["Top"][0]
    assert top["SizeDiff"] >= 1_500_000 and any("test_api_debug.py" in f for f in top["Traceback"])
