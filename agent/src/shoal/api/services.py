"""Services and tasks on the local API (Docker Engine API shapes): managers only.

Parse, call `manager/control/services.py`, serialize.
"""

from __future__ import annotations

from aiohttp import web

from shoal.api.errors import json_body, query_bool, query_int
from shoal.api.filters import parse_filters
from shoal.api.images import registry_auth
from shoal.api.keys import AGENT
from shoal.api.stream import json_list
from shoal.manager.control import services as control


def registry_auth_header(request: web.Request) -> str | None:
    """X-Registry-Auth as sent (checked to be base64url JSON; the message never echoes it), ""
    for an empty AuthConfig (`{}`: what the docker CLI sends when it has no credentials), None
    when absent."""
    raw = request.headers.get("X-Registry-Auth", "").strip()
    if not raw:
        return None
    return raw if registry_auth(request) else ""


async def create(request: web.Request) -> web.Response:
    manager = request.app[AGENT].require_manager()
    auth = registry_auth_header(request)
    service, changes = control.create(manager.store, await json_body(request), auth)
    await manager.store.acommit(changes)
    return web.json_response({"ID": service["ID"], "Warnings": []}, status=201)


async def list_services(request: web.Request) -> web.Response:
    manager = request.app[AGENT].require_manager()
    filters = parse_filters(request)
    return web.json_response(control.list_services(manager.store, filters, query_bool(request, "status")))


async def inspect(request: web.Request) -> web.Response:
    manager = request.app[AGENT].require_manager()
    return web.json_response(control.inspect_service(manager.store, request.match_info["id"]))


async def update(request: web.Request) -> web.Response:
    manager = request.app[AGENT].require_manager()
    version = query_int(request, "version", required=True)
    assert version is not None
    rollback = request.query.get("rollback") == "previous"
    body = await json_body(request, required=not rollback)
    auth = registry_auth_header(request)
    auth_from = request.query.get("registryAuthFrom", "")
    changes = control.update(
        manager.store, request.match_info["id"], version, None if rollback else body, auth, auth_from
    )
    await manager.store.acommit(changes)
    return web.json_response({"Warnings": []})


async def remove(request: web.Request) -> web.Response:
    manager = request.app[AGENT].require_manager()
    await manager.store.acommit(control.remove(manager.store, request.match_info["id"]))
    return web.Response(status=200)


async def list_tasks(request: web.Request) -> web.StreamResponse:
    manager = request.app[AGENT].require_manager()
    return await json_list(request, control.list_tasks(manager.store, parse_filters(request)))


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
