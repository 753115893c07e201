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


class Cyclic:
    """Holds itself: freed only by the cyclic collector."""

    def __init__(self) -> None:
        self.me = self


async def _garbage(query: str) -> tuple[int, Any]:
    app = web.Application(middlewares=[error_middleware])
    for method, path, handler in debug.ROUTES:
        app.router.add_route(method, path, handler)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get(f"/shoal/debug/garbage{query}")
        return resp.status, await resp.json()


def test_garbage_names_the_cycles_waiting_and_frees_them() -> None:
    import gc
    import weakref

    made = [Cyclic() for _ in range(300)]
    alive = [weakref.ref(c) for c in made]
    del made
    gc.disable()  # no automatic collection between here and the call frees them first
    try:
        status, body = asyncio.run(_garbage("?top=500"))
    finally:
        gc.enable()
    assert status == 200
    assert {"Type": "Cyclic", "Count": 300} in body["Types"]
    assert any(o["Origin"].endswith("test_api_debug.Cyclic") and o["Count"] == 300 for o in body["Origins"])
    assert not gc.garbage and not any(ref() for ref in alive)  # freed for real, not kept in gc.garbage


def test_garbage_refuses_a_bad_top() -> None:
    status, body = asyncio.run(_garbage("?top=0"))
    assert status == 400 and "top" in body["message"]


def test_an_object_that_refuses_attribute_access_is_named_by_its_type() -> None:
    import weakref

    class Gone:
        pass

    target = Gone()
    proxy = weakref.proxy(target)
    del target  # the proxy is dead: any attribute access raises ReferenceError
    named = debug.describe(proxy)
    del proxy  # pytest's report of a failure would look into it
    assert named == "ProxyType", named
