"""Services and tasks on the local API (Docker Engine API shapes): managers only."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from shoal.agent import Agent
from shoal.api.errors import BadRequest, Conflict, NotFound, json_body, query_bool, query_int
from shoal.api.filters import parse_filters
from shoal.api.keys import AGENT
from shoal.manager import nodes as node_ops
from shoal.manager.allocator.addresses import used_addresses
from shoal.manager.allocator.endpoints import NetworkNotFound, resolve_targets, service_endpoint
from shoal.model.errors import SpecError
from shoal.model.ids import new_id, now_rfc3339
from shoal.model.service import (
    rollback_spec,
    service_object,
    service_status,
    updated_service,
    validate_service_spec,
)
from shoal.model.task import task_dirty
from shoal.model.validate import field
from shoal.store.changes import Change


def _agent(request: web.Request) -> Agent:
    return request.app[AGENT]


ADJECTIVES = (
    "brave",
    "calm",
    "eager",
    "fancy",
    "gentle",
    "happy",
    "jolly",
    "keen",
    "lucid",
    "merry",
    "nimble",
    "quirky",
    "serene",
    "tender",
    "vibrant",
    "witty",
)
SCIENTISTS = (
    "archimedes",
    "curie",
    "darwin",
    "euler",
    "fermi",
    "gauss",
    "hopper",
    "kepler",
    "lovelace",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "turing",
    "wozniak",
    "yonath",
)


def generated_name(store: Any) -> str:
    import secrets

    for _ in range(100):
        name = f"{secrets.choice(ADJECTIVES)}_{secrets.choice(SCIENTISTS)}"
        if store.find_by_name("service", name) is None:
            return name
    return f"service_{new_id()[:8]}"


def resolve_service(services: list[dict[str, Any]], ref: str) -> dict[str, Any]:
    for s in services:
        if s["ID"] == ref or s["Spec"]["Name"] == ref:
            return s
    by_prefix = [s for s in services if ref and s["ID"].startswith(ref)]
    if len(by_prefix) == 1:
        return by_prefix[0]
    if len(by_prefix) > 1:
        raise NotFound(f"service {ref} is ambiguous ({len(by_prefix)} matches)")
    raise NotFound(f"service {ref} not found")


async def create(request: web.Request) -> web.Response:
    manager = _agent(request).require_manager()
    body = await json_body(request)
    if not field(body, "Name"):
        body = {k: v for k, v in body.items() if k.lower() != "name"}
        body["Name"] = generated_name(manager.store)  # as dockerd names an unnamed service
    spec = validate_service_spec(body)
    if manager.store.find_by_name("service", spec["Name"]) is not None:
        raise Conflict(f"service {spec['Name']} already exists (name conflicts with an existing object)")
    spec = _with_networks(manager, spec)
    service = service_object(new_id(), spec, now_rfc3339())
    service["Endpoint"] = _endpoint(manager, spec, None)
    await manager.store.acommit([Change(op="create", kind="service", obj=service)])
    return web.json_response({"ID": service["ID"], "Warnings": []}, status=201)


def _with_networks(manager: Any, spec: dict[str, Any]) -> dict[str, Any]:
    try:
        return resolve_targets(spec, manager.store.list("network"))
    except NetworkNotFound as exc:
        raise NotFound(exc.message) from exc


def _endpoint(manager: Any, spec: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
    """Published ports and VIPs, checked now so that a conflict is the caller's 4xx, not a stuck task."""
    store = manager.store
    services = store.list("service")
    used = used_addresses(store.list("task"), services, store.list("node"))
    try:
        return service_endpoint(
            spec,
            current["ID"] if current else None,
            services,
            store.list("network"),
            used,
            (current or {}).get("Endpoint"),
        )
    except SpecError as exc:
        raise Conflict(exc.message) if "in use" in exc.message else BadRequest(exc.message) from exc


def _with_status(service: dict[str, Any], tasks: list[dict[str, Any]]) -> dict[str, Any]:
    mine = [t for t in tasks if t["ServiceID"] == service["ID"]]
    return {**service, "ServiceStatus": service_status(service, mine)}


def filter_services(services: list[dict[str, Any]], filters: dict[str, list[str]]) -> list[dict[str, Any]]:
    for key in filters:
        if key not in ("id", "name", "label", "mode"):
            raise BadRequest(f"invalid filter '{key}'")
    out = []
    for s in services:
        if "id" in filters and not any(s["ID"].startswith(v) for v in filters["id"]):
            continue
        if "name" in filters and not any(s["Spec"]["Name"].startswith(v) for v in filters["name"]):
            continue
        if "mode" in filters and not any(m.capitalize() in s["Spec"]["Mode"] for m in filters["mode"]):
            continue
        if "label" in filters:
            labels = s["Spec"].get("Labels") or {}
            wanted = [v.split("=", 1) for v in filters["label"]]
            if not all((labels.get(k) == v[0]) if v else k in labels for k, *v in wanted):
                continue
        out.append(s)
    return out


async def list_services(request: web.Request) -> web.Response:
    manager = _agent(request).require_manager()
    services = filter_services(manager.store.list("service"), parse_filters(request))
    services.sort(key=lambda s: s["Spec"]["Name"])
    if query_bool(request, "status"):
        tasks = manager.store.list("task")
        services = [_with_status(s, tasks) for s in services]
    return web.json_response(services)


async def inspect(request: web.Request) -> web.Response:
    manager = _agent(request).require_manager()
    return web.json_response(resolve_service(manager.store.list("service"), request.match_info["id"]))


async def update(request: web.Request) -> web.Response:
    manager = _agent(request).require_manager()
    version = query_int(request, "version", required=True)
    current = resolve_service(manager.store.list("service"), request.match_info["id"])
    if current["Version"]["Index"] != version:
        raise Conflict(
            f"update out of sequence: service {current['Spec']['Name']} is at version "
            f"{current['Version']['Index']}, the update was for version {version}"
        )
    body = await json_body(request, required=request.query.get("rollback") != "previous")
    if request.query.get("rollback") == "previous":
        spec = rollback_spec(current)
    else:
        spec = validate_service_spec(body, current["Spec"])
    if spec["Name"] != current["Spec"]["Name"]:
        raise BadRequest("renaming services is not supported")
    spec = _with_networks(manager, spec)
    updated = updated_service(current, spec, now_rfc3339())
    updated["Endpoint"] = _endpoint(manager, spec, current)
    if request.query.get("rollback") == "previous":
        updated["UpdateStatus"] = {
            "State": "rollback_started",
            "StartedAt": updated["UpdatedAt"],
            "Message": "manually requested rollback",
        }
    await manager.store.acommit(
        [Change(op="update", kind="service", obj=updated, obj_id=current["ID"], expected_version=version)]
    )
    return web.json_response({"Warnings": []})


async def remove(request: web.Request) -> web.Response:
    manager = _agent(request).require_manager()
    service = resolve_service(manager.store.list("service"), request.match_info["id"])
    await manager.store.acommit([Change(op="delete", kind="service", obj_id=service["ID"])])
    return web.Response(status=200)


def filter_tasks(
    tasks: list[dict[str, Any]],
    filters: dict[str, list[str]],
    services: list[dict[str, Any]],
    nodes: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    for key in filters:
        if key not in ("id", "name", "service", "node", "desired-state", "label", "_up-to-date"):
            raise BadRequest(f"invalid filter '{key}'")
    if "service" in filters:
        wanted = {resolve_service(services, ref)["ID"] for ref in filters["service"]}
        tasks = [t for t in tasks if t["ServiceID"] in wanted]
    if "node" in filters:
        wanted_nodes = {node_ops.resolve_node(nodes, ref)["ID"] for ref in filters["node"]}
        tasks = [t for t in tasks if t.get("NodeID") in wanted_nodes]
    if "desired-state" in filters:
        states = set(filters["desired-state"])
        bad = states - {"running", "shutdown", "accepted", "remove", "ready"}
        if bad:
            raise BadRequest(f"invalid filter 'desired-state={sorted(bad)[0]}'")
        tasks = [t for t in tasks if t["DesiredState"] in states]
    if "id" in filters:
        tasks = [t for t in tasks if any(t["ID"].startswith(v) for v in filters["id"])]
    if "_up-to-date" in filters and filters["_up-to-date"] and filters["_up-to-date"][0] in ("1", "true", "True"):
        # what `docker service create` polls: tasks that run the service's current spec
        by_id = {s["ID"]: s for s in services}
        tasks = [t for t in tasks if t["ServiceID"] in by_id and not task_dirty(by_id[t["ServiceID"]], t)]
    if "name" in filters:
        names = {s["ID"]: s["Spec"]["Name"] for s in services}
        tasks = [t for t in tasks if any(_task_name(t, names).startswith(v) for v in filters["name"])]
    return tasks


def _task_name(task: dict[str, Any], names: dict[str, str]) -> str:
    unit = task.get("Slot") or task.get("NodeID")
    return f"{names.get(task['ServiceID'], task['ServiceID'])}.{unit}"


async def list_tasks(request: web.Request) -> web.Response:
    manager = _agent(request).require_manager()
    store = manager.store
    tasks = filter_tasks(store.list("task"), parse_filters(request), store.list("service"), store.list("node"))
    tasks.sort(key=lambda t: (t["ServiceID"], t.get("Slot") or 0, t.get("NodeID") or "", t["CreatedAt"]))
    return web.json_response(tasks)


async def inspect_task(request: web.Request) -> web.Response:
    manager = _agent(request).require_manager()
    ref = request.match_info["id"]
    matches = [t for t in manager.store.list("task") if t["ID"] == ref or t["ID"].startswith(ref)]
    if len(matches) != 1:
        raise NotFound(f"task {ref} not found" if not matches else f"task {ref} is ambiguous")
    return web.json_response(matches[0])


ROUTES = [
    ("POST", "/services/create", create),
    ("GET", "/services", list_services),
    ("GET", "/services/{id}", inspect),
    ("POST", "/services/{id}/update", update),
    ("DELETE", "/services/{id}", remove),
    ("GET", "/tasks", list_tasks),
    ("GET", "/tasks/{id}", inspect_task),
]
