"""The cluster API on port 2377 (TLS, mutual certificates from the cluster CA).

Only two calls work without a client certificate: fetching the CA certificate (the joining node
pins it against its token's digest) and the token-authenticated join. Every other call needs a
certificate of this cluster naming a node that still exists; manager-only calls need a manager.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from aiohttp import web

from shoal import metrics, tls
from shoal.agent import Agent
from shoal.api import logs as logs_api
from shoal.api import routes
from shoal.api.errors import error_middleware, json_body
from shoal.api.filters import parse_filters
from shoal.api.keys import AGENT
from shoal.api.metrics import request_metrics
from shoal.api.stream import json_list, stream_pieces
from shoal.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable
from shoal.manager import assignments
from shoal.manager.control import nodes as node_ops

if TYPE_CHECKING:
    from shoal.manager.manager import ManagerRole


def manager_of(request: web.Request) -> ManagerRole:
    manager = request.app[AGENT].manager
    if manager is None:
        raise Unavailable("this node is not a manager")
    return manager


def caller(request: web.Request, role: str | None = None) -> tuple[str, dict[str, Any]]:
    """The calling node's ID from its client certificate, checked against the store, and its stored
    node object (shared: read it, never change it)."""
    ssl_obj = request.transport.get_extra_info("ssl_object") if request.transport else None
    try:
        peer = tls.peer_identity(ssl_obj) if isinstance(ssl_obj, ssl.SSLObject) else None
    except tls.CertError as exc:
        raise PermissionDenied(f"unusable client certificate: {exc.message}") from exc
    if peer is None:
        raise PermissionDenied("a client certificate from the cluster CA is required for this call")
    node_id, cert_role, cluster_id = peer
    if role == "manager" and cert_role != "manager":
        raise PermissionDenied("this call needs a manager certificate")
    node = manager_of(request).check_member(node_id, cluster_id, role)
    return node_id, node


def text_field(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"missing or invalid field {key}")
    return value


async def get_ca(request: web.Request) -> web.Response:
    root = manager_of(request).root_ca()
    return web.json_response(
        {"CACertificate": root.cert_pem.decode() if isinstance(root.cert_pem, bytes) else root.cert_pem}
    )


async def join(request: web.Request) -> web.Response:
    manager = manager_of(request)
    body = await json_body(request, limit=64 << 10)
    desc = body.get("Description") if isinstance(body.get("Description"), dict) else {}
    ports = [body.get("ClusterPort", 2377), body.get("RaftPort", 2378)]
    if not all(isinstance(p, int) and 0 < p < 65536 for p in ports):
        raise InvalidArgument("invalid ClusterPort or RaftPort")
    grant = await manager.join(
        text_field(body, "Token"),
        text_field(body, "CSR"),
        text_field(body, "Hostname"),
        text_field(body, "AdvertiseIP"),
        ports[0],
        ports[1],
        desc,
    )
    return web.json_response(grant)


async def heartbeat(request: web.Request) -> web.Response:
    node_id, node = caller(request)
    manager = manager_of(request)
    body = await json_body(request, required=False, limit=16 << 10)  # malformed is a 400 on followers too
    if not manager.is_leader():
        leader = manager.leader_cluster_addr()
        if leader is None:
            raise Unavailable("no leader is elected right now (no quorum)")
        return web.json_response({"Redirect": leader})
    addr = body.get("Addr") if isinstance(body.get("Addr"), str) else None
    period = manager.dispatcher.heartbeat(node_id, addr.rsplit(":", 1)[0] if addr else None)
    return web.json_response(
        {
            "Leader": manager.leader_cluster_addr(),
            "Managers": manager.manager_addrs(),
            "Period": period,
            "Role": node["Spec"]["Role"],
            "RaftMember": "ManagerStatus" in node,
            "Epoch": manager.store.epoch,
            "TrustDigest": manager.trust_digest(),  # differs from the node's own: renew (root rotation)
        }
    )


async def renew(request: web.Request) -> web.Response:
    node_id, _ = caller(request)
    body = await json_body(request, limit=64 << 10)
    return web.json_response(await manager_of(request).renew(node_id, text_field(body, "CSR")))


async def raft_join(request: web.Request) -> web.Response:
    node_id, _ = caller(request, role="manager")
    manager = manager_of(request)
    body = await json_body(request, limit=16 << 10)
    if not manager.is_leader():
        leader = manager.leader_cluster_addr()
        if leader is None:
            raise Unavailable("no leader is elected right now (no quorum)")
        _, answer = await request.app[AGENT].client().call_any([leader], "POST", "/shoal/raft/join", body, timeout=10.0)
        return web.json_response(answer)
    return web.json_response(
        await manager.add_raft_member(node_id, text_field(body, "RaftAddr"), text_field(body, "Addr"))
    )


async def nodes_list(request: web.Request) -> web.StreamResponse:
    caller(request)
    manager = manager_of(request)
    return await json_list(request, node_ops.list_nodes(manager.store, parse_filters(request), manager.raft_view()))


async def node_inspect(request: web.Request) -> web.Response:
    caller(request)
    manager = manager_of(request)
    node = node_ops.resolve_node(manager.store.list("node"), request.match_info["id"])
    return web.json_response(node_ops.decorate(node, manager.raft_view()))


def net_have(body: dict[str, Any]) -> dict[str, str] | None:
    """The network versions a node holds (`NetHave`): it takes increments (model/netdelta.py)."""
    have = body.get("NetHave")
    if have is not None and not (
        isinstance(have, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in have.items())
    ):
        raise InvalidArgument("NetHave must be an object of network IDs to version strings")
    return have


async def task_assignments(request: web.Request) -> web.Response:
    node_id, _ = caller(request)
    body = await json_body(request, required=False, limit=16 << 10)
    since = body.get("Since") if isinstance(body.get("Since"), str) else None
    wait = body.get("Wait", 10)
    wait = min(max(float(wait), 0.0), 30.0) if isinstance(wait, (int, float)) else 10.0
    have = net_have(body)
    increments = body.get("TaskIncrements", False)
    if not isinstance(increments, bool):
        raise InvalidArgument("TaskIncrements must be true or false")
    manager = manager_of(request)
    manager.check_replica_current()

    def gone() -> bool:  # the node gave up waiting (client timeout): it asks again from what it holds
        return request.transport is None or request.transport.is_closing()

    answer = await assignments.assignments(manager.store, node_id, since, wait, have, increments, gone)
    if answer is None or gone():
        metrics.ASSIGNMENT_UNREAD.inc()
        raise Unavailable("the node stopped waiting for this answer")
    pieces = assignments.encode_pieces(answer)
    del answer
    size = sum(len(p) for p in pieces)
    metrics.ASSIGNMENT_ANSWERS.inc()
    metrics.ASSIGNMENT_BYTES.inc(size)
    return await stream_pieces(request, pieces, on_gone=metrics.ASSIGNMENT_UNREAD.inc)


async def task_status(request: web.Request) -> web.Response:
    node_id, _ = caller(request)
    body = await json_body(request, limit=4 << 20)
    updates = body.get("Updates")
    if not isinstance(updates, list) or not all(isinstance(u, dict) for u in updates):
        raise InvalidArgument("Updates must be a list of task status objects")
    applied = await assignments.apply_reports(manager_of(request).store, node_id, updates)
    return web.json_response({"Applied": applied})


async def not_found(request: web.Request) -> web.Response:
    raise NotFound(f"page not found: {request.method} {request.path}")


def build_app(agent: Agent) -> web.Application:
    app = web.Application(middlewares=[request_metrics("cluster"), error_middleware], client_max_size=256 << 10)
    app[AGENT] = agent
    for method, path, handler in [
        ("GET", "/shoal/ca", get_ca),
        ("POST", "/shoal/join", join),
        ("POST", "/shoal/heartbeat", heartbeat),
        ("POST", "/shoal/renew", renew),
        ("POST", "/shoal/raft/join", raft_join),
        ("POST", "/shoal/assignments", task_assignments),
        ("GET", "/shoal/node/tasks/{id}/logs", logs_api.node_task_log),
        ("POST", "/shoal/task-status", task_status),
        ("GET", "/nodes", nodes_list),
        ("GET", "/nodes/{id}", node_inspect),
    ]:
        routes.add(app, method, path, handler)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app
