"""Services and tasks on the local API (Docker Engine API shapes): managers only.

Parse, call `manager/control/services.py`, serialize.
"""

from __future__ import annotations

from aiohttp import web

from shoal.api.errors import json_body, query_bool, query_int
from shoal.api.filters import parse_filters
from shoal.api.keys import AGENT
from shoal.manager.control import services as control


async def create(request: web.Request) -> web.Response:
    manager = request.app[AGENT].require_manager()
    service, changes = control.create(manager.store, await json_body(request))
    await manager.store.acommit(changes)
    return web.json_response({"ID": service["ID"], "Warnings": []}, status=201)


async def list_services(request: web.Request) -> web.Response:
    manager = request.app[AGENT].require_manager()
    filters = parse_filters(request)
    return web.json_response(control.list_services(manager.store, filters, query_bool(request, "status")))


async def inspect(request: web.Request) -> web.Response:
    manager = request.app[AGENT].require_manager()
    return web.json_response(control.resolve_service(manager.store.list("service"), request.match_info["id"]))


async def update(request: web.Request) -> web.Response:
    manager = request.app[AGENT].require_manager()
    version = query_int(request, "version", required=True)
    assert version is not None
    rollback = request.query.get("rollback") == "previous"
    body = await json_body(request, required=not rollback)
    changes = control.update(manager.store, request.match_info["id"], version, None if rollback else body)
    await manager.store.acommit(changes)
    return web.json_response({"Warnings": []})


async def remove(request: web.Request) -> web.Response:
    manager = request.app[AGENT].require_manager()
    await manager.store.acommit(control.remove(manager.store, request.match_info["id"]))
    return web.Response(status=200)


async def list_tasks(request: web.Request) -> web.Response:
    manager = request.app[AGENT].require_manager()
    return web.json_response(control.list_tasks(manager.store, parse_filters(request)))


async def inspect_task(request: web.Request) -> web.Response:
    manager = request.app[AGENT].require_manager()
    return web.json_response(control.inspect_task(manager.store, request.match_info["id"]))


ROUTES = [
    ("POST", "/services/create", create),
    ("GET", "/services", list_services),
    ("GET", "/services/{id}", inspect),
    ("POST", "/services/{id}/update", update),
    ("DELETE", "/services/{id}", remove),
    ("GET", "/tasks", list_tasks),
    ("GET", "/tasks/{id}", inspect_task),
]
