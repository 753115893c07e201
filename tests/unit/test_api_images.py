"""`GET /images/json` filters on a node's real (built-in) images: Docker's keys and its 400s."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shoal.api import images
from shoal.api.errors import error_middleware
from shoal.api.keys import AGENT
from shoal.runtime.images import ImageStore


def _list(tmp_path: Path, queries: list[dict[str, Any]]) -> list[tuple[int, Any]]:
    store = ImageStore(tmp_path / "images")
    store.get("shoal/hello"), store.get("shoal/host")  # made on first use

    async def run() -> list[tuple[int, Any]]:
        app = web.Application(middlewares=[error_middleware])
        app[AGENT] = SimpleNamespace(images=store)
        for method, path, handler in images.ROUTES:
            app.router.add_route(method, path, handler)
        out = []
        async with TestClient(TestServer(app)) as client:
            for filters in queries:
                resp = await client.get("/images/json", params={"filters": json.dumps(filters)} if filters else {})
                out.append((resp.status, await resp.json()))
        return out

    return asyncio.run(run())


def _tags(body: list[dict[str, Any]]) -> list[str]:
    return sorted(t for image in body for t in image["RepoTags"])


def test_image_list_filters_follow_docker(tmp_path: Path) -> None:
    every, by_ref, by_label, by_pair, dangling, tagged, unknown, bad_value = _list(
        tmp_path,
        [
            {},
            {"reference": ["shoal/hello"]},
            {"label": ["io.shoal.host-binds"]},
            {"label": {"io.shoal.host-binds=/nowhere": True}},  # the docker CLI's map form
            {"dangling": ["true"]},
            {"dangling": ["false"]},
            {"colour": ["red"]},
            {"dangling": ["maybe"]},
        ],
    )
    assert every == (200, every[1]) and _tags(every[1]) == ["shoal/hello:latest", "shoal/host:latest"]
    assert by_ref[0] == 200 and _tags(by_ref[1]) == ["shoal/hello:latest"]
    assert by_label[0] == 200 and _tags(by_label[1]) == ["shoal/host:latest"]
    assert by_pair == (200, [])
    assert dangling == (200, []) and _tags(tagged[1]) == _tags(every[1])
    assert unknown[0] == 400 and unknown[1]["message"] == "invalid filter 'colour'"
    assert bad_value[0] == 400 and bad_value[1]["message"] == "invalid filter 'dangling=maybe'"
