"""Secrets and configs on the local API (Docker Engine API shapes): managers only.

Parse, call `manager/control/secrets.py` (configs: the same calls with the config kind),
serialize. `/secrets` and `/configs` differ only in their kind.
"""

from __future__ import annotations

from aiohttp import web

from shoal.api.errors import Handler, json_body, query_int
from shoal.api.filters import parse_filters
from shoal.api.keys import AGENT
from shoal.manager.control import secrets as control
from shoal.manager.control.commit import commit_retrying
from shoal.model.secret import CONFIG, SECRET, Kind

# A 1000 KB config is ~1.33 MB of base64; the general 1 MiB body limit would refuse it before
# the size check could say why.
BODY_LIMIT = 2 << 20


def _handlers(kind: Kind) -> list[tuple[str, str, Handler]]:
    async def create(request: web.Request) -> web.Response:
        manager = request.app[AGENT].require_manager()
        body = await json_body(request, limit=BODY_LIMIT)
        created: list[str] = []

        def plan() -> list:
            obj, changes = control.create(manager.store, kind, body)
            created[:] = [obj["ID"]]
            return changes

        await commit_retrying(manager.store, plan)
        return web.json_response({"ID": created[0]}, status=201)

    async def list_objects(request: web.Request) -> web.Response:
        manager = request.app[AGENT].require_manager()
        return web.json_response(control.list_objects(manager.store, kind, parse_filters(request)))

    async def inspect(request: web.Request) -> web.Response:
        manager = request.app[AGENT].require_manager()
        return web.json_response(control.inspect(manager.store, kind, request.match_info["id"]))

    async def update(request: web.Request) -> web.Response:
        manager = request.app[AGENT].require_manager()
        version = query_int(request, "version", required=True)
        assert version is not None
        body = await json_body(request, limit=BODY_LIMIT)
        await manager.store.acommit(control.update(manager.store, kind, request.match_info["id"], version, body))
        return web.Response(status=200)

    async def remove(request: web.Request) -> web.Response:
        manager = request.app[AGENT].require_manager()
        ref = request.match_info["id"]
        await commit_retrying(manager.store, lambda: control.remove(manager.store, kind, ref))
        return web.Response(status=204)

    base = "/" + kind.plural
    return [
        ("POST", f"{base}/create", create),
        ("GET", base, list_objects),
        ("GET", f"{base}/{{id}}", inspect),
        ("POST", f"{base}/{{id}}/update", update),
        ("DELETE", f"{base}/{{id}}", remove),
    ]


ROUTES = _handlers(SECRET) + _handlers(CONFIG)
