"""Networks on the local API (Docker Engine API shapes): create, list, inspect, remove.

Parse, call `manager/control/networks.py`, serialize.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from shoal.api.errors import json_body
from shoal.api.filters import parse_filters
from shoal.api.keys import AGENT
from shoal.manager.control import networks as control
from shoal.manager.control.commit import commit_retrying


def _local_node_id(agent: Any) -> str:
    return agent.identity.node_id if agent.identity else ""


async def create(request: web.Request) -> web.Response:
    manager = request.app[AGENT].require_manager()
    network, changes = control.create(manager.store, await json_body(request))
    await manager.store.acommit(changes)
    return web.json_response({"Id": network["ID"], "Warning": ""}, status=201)


async def list_networks(request: web.Request) -> web.Response:
    agent = request.app[AGENT]
    manager = agent.require_manager()
    filters = parse_filters(request)
    return web.json_response(control.list_networks(manager.store, filters, _local_node_id(agent)))


async def inspect(request: web.Request) -> web.Response:
    agent = request.app[AGENT]
    manager = agent.require_manager()
    return web.json_response(control.inspect(manager.store, request.match_info["id"], _local_node_id(agent)))


async def remove(request: web.Request) -> web.Response:
    manager = request.app[AGENT].require_manager()
    ref = request.match_info["id"]
    await commit_retrying(manager.store, lambda: control.remove(manager.store, ref))
    return web.Response(status=204)


ROUTES = [
    ("POST", "/networks/create", create),
    ("GET", "/networks", list_networks),
    ("GET", "/networks/{id}", inspect),
    ("DELETE", "/networks/{id}", remove),
]
