"""`GET /system/df` (Docker Engine API): this node's disk usage by images and volumes. Handlers parse,
call the stores and manager/control in a worker thread (the disk), and serialise.

As Docker, the only place volumes carry UsageData (Size, RefCount). shoal runs no containers of its
own outside tasks and builds nothing, so Containers and BuildCache are empty lists."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from shoal.api.keys import AGENT
from shoal.errors import InvalidArgument
from shoal.manager.control import volumes as volume_ops

DF_TYPES = ("container", "image", "volume", "build-cache")


def _df(agent: Any, kinds: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "image" in kinds:
        images = [image.summary() for image in agent.images.list()]
        out["LayersSize"] = sum(int(i.get("Size") or 0) for i in images)  # each image's unpacked root
        out["Images"] = images
    if "container" in kinds:
        out["Containers"] = []
    if "volume" in kinds:
        out["Volumes"] = volume_ops.volumes_usage(agent.volumes)
    if "build-cache" in kinds:
        out["BuildCache"] = []
    return out


async def disk_usage(request: web.Request) -> web.Response:
    kinds = set(request.query.getall("type", [])) or set(DF_TYPES)
    unknown = sorted(kinds - set(DF_TYPES))
    if unknown:
        raise InvalidArgument(f"unknown object type: {unknown[0]}")  # Docker's
    return web.json_response(await asyncio.to_thread(_df, request.app[AGENT], kinds))


ROUTES = [("GET", "/system/df", disk_usage)]
