"""This node's volumes (Docker Engine API `/volumes`): handlers parse, call manager/control/volumes
in a worker thread (the disk) and serialise. Volumes are node-local, as Docker's `local` driver's."""

from __future__ import annotations

import asyncio

from aiohttp import web

from shoal.api.errors import json_body, query_bool
from shoal.api.filters import parse_filters
from shoal.api.keys import AGENT
from shoal.manager.control import volumes as ops
from shoal.runtime.volumes import VolumeStore


def _store(request: web.Request) -> VolumeStore:
    return request.app[AGENT].volumes


async def list_volumes(request: web.Request) -> web.Response:
    filters = parse_filters(request)
    return web.json_response(await asyncio.to_thread(ops.list_volumes, _store(request), filters))


async def create_volume(request: web.Request) -> web.Response:
    body = await json_body(request)
    return web.json_response(await asyncio.to_thread(ops.create_volume, _store(request), body), status=201)


async def inspect_volume(request: web.Request) -> web.Response:
    return web.json_response(await asyncio.to_thread(_store(request).inspect, request.match_info["name"]))


async def remove_volume(request: web.Request) -> web.Response:
    force = query_bool(request, "force")
    await asyncio.to_thread(_store(request).remove, request.match_info["name"], force)
    return web.Response(status=204)


def _before_1_42(request: web.Request) -> bool:
    version = request.match_info.get("api_version")
    return bool(version) and tuple(int(p) for p in version.split(".")) < (1, 42)


async def prune_volumes(request: web.Request) -> web.Response:
    filters = parse_filters(request)
    if _before_1_42(request) and "all" not in filters:
        filters["all"] = ["true"]  # as Docker: before API 1.42 a prune removed every unused volume
    return web.json_response(await asyncio.to_thread(ops.prune_volumes, _store(request), filters))


ROUTES = [
    ("GET", "/volumes", list_volumes),
    ("POST", "/volumes/create", create_volume),
    ("POST", "/volumes/prune", prune_volumes),
    ("GET", "/volumes/{name}", inspect_volume),
    ("DELETE", "/volumes/{name}", remove_volume),
]
