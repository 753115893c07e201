"""The local control API on /run/shoal/shoal.sock: Docker Engine API paths for the swarm subset.

Managers answer from their replica of the store; workers answer cluster-wide reads (nodes) by
asking a manager over the cluster API, and refuse writes as Docker does.
"""

from __future__ import annotations

import os
import platform
from typing import Any

from aiohttp import web

from shoal import __version__
from shoal.agent import NOT_A_MANAGER, SWARM_LOCKED, Agent
from shoal.api import debug, localtasks, routes, service_validate
from shoal.api import events as events_api
from shoal.api import images as images_api
from shoal.api import logs as logs_api
from shoal.api import networks as networks_api
from shoal.api import secrets as secrets_api
from shoal.api import services as services_api
from shoal.api import system as system_api
from shoal.api import volumes as volumes_api
from shoal.api.errors import Handler, error_middleware, json_body, query_bool, query_int
from shoal.api.filters import parse_filters
from shoal.api.keys import AGENT
from shoal.api.metrics import request_metrics
from shoal.api.secrets import BODY_LIMIT  # a 1000 KB config in base64; json_body keeps 1 MiB for the rest
from shoal.api.stream import json_list
from shoal.api.ui import load_token, page_url
from shoal.errors import InvalidArgument, NotFound, Unavailable
from shoal.manager.control import nodes as node_ops
from shoal.manager.control import swarm as swarm_ops
from shoal.manager.control.commit import commit_retrying
from shoal.model.objects import cluster_info
from shoal.model.validate import validate_init_request, validate_join_request


def agent_of(request: web.Request) -> Agent:
    return request.app[AGENT]


# ---- system
async def ping(request: web.Request) -> web.Response:
    return web.Response(text="OK", headers={"API-Version": routes.API_VERSION, "Swarm": agent_of(request).state})


async def version(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "Platform": {"Name": "shoal"},
            "Version": __version__,
            "ApiVersion": routes.API_VERSION,
            "MinAPIVersion": routes.MIN_API_VERSION,
            "Os": "linux",
            "Arch": platform.machine(),
            "KernelVersion": platform.release(),
            "Components": [{"Name": "shoald", "Version": __version__, "Details": {}}],
        }
    )


async def info(request: web.Request) -> web.Response:
    agent = agent_of(request)
    desc_host = platform.node()
    swarm: dict[str, Any] = {
        "NodeID": "",
        "NodeAddr": "",
        "LocalNodeState": agent.state,
        "ControlAvailable": False,
        "Error": agent.error or "",
        "RemoteManagers": None,
    }
    ident = agent.identity
    if ident is not None:
        swarm.update(
            NodeID=ident.node_id,
            NodeAddr=ident.advertise_ip,
            RemoteManagers=[{"NodeID": "", "Addr": a} for a in agent.manager_addrs()],
        )
        if agent.manager is not None:
            nodes = agent.manager.store.list("node")
            swarm.update(
                ControlAvailable=True,
                Nodes=len(nodes),
                Managers=sum(1 for n in nodes if n["Spec"].get("Role") == "manager"),
            )
            cluster = agent.manager.store.get("cluster", ident.cluster_id)
            if cluster:
                swarm["Cluster"] = cluster_info(cluster)
            swarm["RemoteManagers"] = [
                {"NodeID": n["ID"], "Addr": n["ManagerStatus"]["Addr"]} for n in nodes if n.get("ManagerStatus")
            ]
            swarm["Raft"] = {
                "Leader": agent.manager.store.leader(),
                "Members": agent.manager.store.members(),
                "Epoch": agent.manager.store.epoch,
                "Quorum": agent.manager.store.has_quorum(),
            }
        if agent.session is not None:
            swarm["Session"] = {
                "Connected": agent.session.connected,
                "Leader": agent.session.leader,
                "Error": agent.session.last_error,
            }
    netagent = agent.netagent
    backend = netagent.dataplane.backend() if netagent is not None else "unavailable"
    # Docker's runtime fields name the OCI runtime (runc/crun); shoal's own says which task driver runs it
    runtime = str(getattr(agent.driver, "runtime", "") or "")
    runtimes = {os.path.basename(runtime): {"path": runtime}} if runtime else {}
    return web.json_response(
        {
            "Shoal": {"LoadBalancerBackend": backend, "TaskRuntime": agent.driver.name},
            "DefaultRuntime": next(iter(runtimes), ""),
            "Runtimes": runtimes,
            "ID": ident.node_id if ident else "",
            "Name": desc_host,
            "ServerVersion": __version__,
            "OperatingSystem": "linux",
            "OSType": "linux",
            "Architecture": platform.machine(),
            "KernelVersion": platform.release(),
            "Swarm": swarm,
        }
    )


# ---- swarm
async def swarm_inspect(request: web.Request) -> web.Response:
    agent = agent_of(request)
    manager = agent.require_manager()
    return web.json_response(manager.cluster())


async def swarm_init(request: web.Request) -> web.Response:
    agent = agent_of(request)
    body = validate_init_request(await json_body(request, required=False), agent.init_defaults())
    node_id = await agent.init_swarm(body)
    return web.json_response(node_id)


async def swarm_join(request: web.Request) -> web.Response:
    body = validate_join_request(await json_body(request))
    await agent_of(request).join_swarm(body)
    return web.Response(status=200)


async def swarm_leave(request: web.Request) -> web.Response:
    await agent_of(request).leave(query_bool(request, "force"))
    return web.Response(status=200)


async def swarm_update(request: web.Request) -> web.Response:
    manager = agent_of(request).require_manager()
    version_ = query_int(request, "version", required=True)
    assert version_ is not None
    body = await json_body(request)

    def rotate(role: str) -> bool:  # rotateWorkerToken, rotateManagerToken
        return query_bool(request, f"rotate{role}Token")

    rotate_unlock = query_bool(request, "rotateManagerUnlockKey")
    changes = swarm_ops.update(
        manager.cluster(),
        version_,
        body,
        lambda: manager.root_ca().digest(),
        rotate,
        manager.ca_meta(),
        manager.unlock_meta(),
        rotate_unlock,
    )
    await manager.store.acommit(changes)
    return web.Response(status=200)


async def swarm_unlock(request: web.Request) -> web.Response:
    body = await json_body(request)
    key = body.get("UnlockKey")
    if set(body) - {"UnlockKey"}:
        raise InvalidArgument(f"unknown field(s) in the unlock request: {', '.join(sorted(set(body) - {'UnlockKey'}))}")
    if not isinstance(key, str):
        raise InvalidArgument("UnlockKey must be a string")
    await agent_of(request).unlock(key)
    return web.Response(status=200)


async def swarm_unlock_key(request: web.Request) -> web.Response:
    manager = agent_of(request).require_manager()
    return web.json_response({"UnlockKey": manager.unlock_key()})


# what a locked manager still answers (Docker answers status and unlock, refuses the rest)
SERVED_WHILE_LOCKED = frozenset({"/_ping", "/version", "/info", "/swarm/unlock", "/swarm/leave"})


@web.middleware
async def locked_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if agent_of(request).locked:
        path = request.path
        version_prefix = request.match_info.get("api_version")
        if version_prefix:
            path = path[len(f"/v{version_prefix}") :]
        if path not in SERVED_WHILE_LOCKED:
            raise Unavailable(SWARM_LOCKED)
    return await handler(request)


# ---- nodes
async def _remote_read(agent: Agent, path: str) -> Any:
    """Workers answer cluster-wide reads by asking a manager."""
    agent.require_swarm()
    _, data = await agent.client().call_any(agent.manager_addrs(), "GET", path)
    return data


async def nodes_list(request: web.Request) -> web.StreamResponse:
    agent = agent_of(request)
    filters = parse_filters(request)
    if agent.manager is None:
        query = f"?{request.query_string}" if request.query_string else ""
        return web.json_response(await _remote_read(agent, f"/nodes{query}"))
    return await json_list(request, node_ops.list_nodes(agent.manager.store, filters, agent.manager.raft_view()))


async def node_inspect(request: web.Request) -> web.Response:
    agent = agent_of(request)
    ref = request.match_info["id"]
    if agent.manager is None:
        return web.json_response(await _remote_read(agent, f"/nodes/{ref}"))
    node = node_ops.resolve_node(agent.manager.store.list("node"), ref)
    return web.json_response(node_ops.decorate(node, agent.manager.raft_view()))


async def node_update(request: web.Request) -> web.Response:
    manager = agent_of(request).require_manager()
    version_ = query_int(request, "version", required=True)
    assert version_ is not None
    spec = await json_body(request)
    ref = request.match_info["id"]
    await manager.store.acommit(node_ops.update(manager.store, ref, version_, spec, manager.raft_view()))
    return web.Response(status=200)


async def node_delete(request: web.Request) -> web.Response:
    manager = agent_of(request).require_manager()
    ref = request.match_info["id"]
    try:
        force = query_bool(request, "force")
    except InvalidArgument:  # an unknown node is still the 404 it always was, before a bad flag
        node_ops.resolve_node(manager.store.list("node"), ref)
        raise
    await commit_retrying(manager.store, lambda: node_ops.remove(manager.store, ref, force))
    return web.Response(status=200)


async def visualizer_url(request: web.Request) -> web.Response:
    """The visualizer page's URL with its token (root only: this is the local socket)."""
    cfg = agent_of(request).cfg
    if not cfg.ui_addr:
        raise NotFound("the visualizer is off on this node: set ui_addr in shoald.yml (e.g. 127.0.0.1:8088)")
    return web.json_response({"URL": page_url(cfg.ui_addr, load_token(cfg.ui_token_file)), "Addr": cfg.ui_addr})


async def not_found(request: web.Request) -> web.Response:
    raise NotFound(f"page not found: {request.method} {request.path}")


def build_app(agent: Agent) -> web.Application:
    app = web.Application(
        middlewares=[request_metrics("local"), error_middleware, locked_middleware], client_max_size=BODY_LIMIT
    )
    app[AGENT] = agent
    for method, path, handler in [
        ("GET", "/_ping", ping),
        ("HEAD", "/_ping", ping),
        ("GET", "/version", version),
        ("GET", "/info", info),
        ("GET", "/swarm", swarm_inspect),
        ("POST", "/swarm/init", swarm_init),
        ("POST", "/swarm/join", swarm_join),
        ("POST", "/swarm/leave", swarm_leave),
        ("POST", "/swarm/update", swarm_update),
        ("POST", "/swarm/unlock", swarm_unlock),
        ("GET", "/swarm/unlockkey", swarm_unlock_key),
        ("GET", "/nodes", nodes_list),
        ("GET", "/nodes/{id}", node_inspect),
        ("POST", "/nodes/{id}/update", node_update),
        ("DELETE", "/nodes/{id}", node_delete),
        ("GET", "/shoal/visualizer", visualizer_url),
    ]:
        routes.add(app, method, path, handler)
    extra = [("GET", "/services/{id}/logs", logs_api.service_logs)]
    for method, path, handler in (
        services_api.ROUTES
        + events_api.ROUTES
        + localtasks.ROUTES
        + images_api.ROUTES
        + networks_api.ROUTES
        + volumes_api.ROUTES
        + system_api.ROUTES
        + secrets_api.ROUTES
        + debug.ROUTES
        + service_validate.ROUTES
        + extra
    ):
        routes.add(app, method, path, handler)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


__all__ = ["NOT_A_MANAGER", "Unavailable", "build_app"]
