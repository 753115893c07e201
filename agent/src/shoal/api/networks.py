"""Networks on the local API (Docker Engine API shapes): create, list, inspect, remove."""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web

from shoal.api.errors import json_body
from shoal.api.filters import parse_filters
from shoal.api.keys import AGENT
from shoal.errors import Conflict, InvalidArgument, NotFound, PermissionDenied
from shoal.manager.allocator.endpoints import NetworkNotFound, resolve_network
from shoal.model.ids import new_id, now_rfc3339
from shoal.model.network import docker_view, free_vni, mac_of, network_object, validate_create
from shoal.store.changes import Change

# a local bridge, not a swarm object: a fixed ID (64 hex characters, as docker's) names it on every node
GWBRIDGE_ID = hashlib.sha256(b"shoal_gwbridge").hexdigest()
GWBRIDGE = {
    "Name": "shoal_gwbridge",
    "Id": GWBRIDGE_ID,
    "Created": "0001-01-01T00:00:00Z",
    "Scope": "local",
    "Driver": "bridge",
    "EnableIPv4": True,
    "EnableIPv6": False,
    "IPAM": {"Driver": "default", "Options": None, "Config": [{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]},
    "Internal": False,
    "Attachable": False,
    "Ingress": False,
    "Containers": {},
    "Options": {
        "com.docker.network.bridge.enable_icc": "false",
        "com.docker.network.bridge.enable_ip_masquerade": "true",
        "com.docker.network.bridge.name": "shoal_gwbridge",
    },
    "Labels": {},
}


def _is_gwbridge(ref: str, networks: list[dict[str, Any]] | None = None) -> bool:
    """Docker's order: a full ID or an exact name of a swarm network wins over the bridge's ID prefix."""
    if ref in ("shoal_gwbridge", GWBRIDGE_ID):
        return True
    if any(ref in (n["ID"], n["Spec"]["Name"]) for n in networks or []):
        return False
    return len(ref) >= 3 and GWBRIDGE_ID.startswith(ref)


def _find(networks: list[dict[str, Any]], ref: str) -> dict[str, Any]:
    try:
        return resolve_network(networks, ref)
    except NetworkNotFound as exc:
        raise NotFound(exc.message) from exc


def view(agent: Any, network: dict[str, Any]) -> dict[str, Any]:
    store = agent.manager.store
    nodes = {n["ID"]: n for n in store.list("node")}
    local = agent.identity.node_id if agent.identity else ""
    peers: dict[str, dict[str, str]] = {}
    containers: dict[str, Any] = {}
    names = {s["ID"]: s["Spec"]["Name"] for s in store.list("service")}
    for t in store.list("task"):
        for att in t.get("NetworksAttachments") or []:
            if att["Network"]["ID"] != network["ID"] or t["Status"]["State"] != "running":
                continue
            node = nodes.get(t.get("NodeID", ""))
            if node is not None:
                peers[node["ID"]] = {"Name": node["Description"]["Hostname"], "IP": node["Status"]["Addr"]}
            if t.get("NodeID") == local:
                addr = att["Addresses"][0]
                containers[t["ID"]] = {
                    "Name": f"{names.get(t['ServiceID'], '')}.{t.get('Slot') or t['NodeID']}.{t['ID']}",
                    "EndpointID": t["ID"],
                    "MacAddress": mac_of(addr),
                    "IPv4Address": addr,
                    "IPv6Address": "",
                }
    if network["Spec"].get("Ingress"):
        for node in nodes.values():
            for att in node.get("Attachments") or []:
                if att["Network"]["ID"] == network["ID"]:
                    peers[node["ID"]] = {"Name": node["Description"]["Hostname"], "IP": node["Status"]["Addr"]}
                    if node["ID"] == local:
                        containers["ingress-sbox"] = {
                            "Name": "ingress-endpoint",
                            "EndpointID": "ingress-sbox",
                            "MacAddress": "",
                            "IPv4Address": att["Addresses"][0],
                            "IPv6Address": "",
                        }
    return docker_view(network, sorted(peers.values(), key=lambda p: p["Name"]), containers)


async def create(request: web.Request) -> web.Response:
    agent = request.app[AGENT]
    manager = agent.require_manager()
    networks = manager.store.list("network")
    req = validate_create(await json_body(request), networks)
    network = network_object(new_id(), req, free_vni(networks), now_rfc3339())
    await manager.store.acommit([Change(op="create", kind="network", obj=network)])
    return web.json_response({"Id": network["ID"], "Warning": ""}, status=201)


async def list_networks(request: web.Request) -> web.Response:
    agent = request.app[AGENT]
    manager = agent.require_manager()
    filters = parse_filters(request)
    for key in filters:
        if key not in ("name", "id", "driver", "scope", "label", "type"):
            raise InvalidArgument(f"invalid filter '{key}'")
    out = [view(agent, n) for n in manager.store.list("network")] + [dict(GWBRIDGE)]
    if "name" in filters:
        out = [n for n in out if any(v in n["Name"] for v in filters["name"])]
    if "id" in filters:
        out = [n for n in out if any(n["Id"].startswith(v) for v in filters["id"])]
    if "driver" in filters:
        out = [n for n in out if n["Driver"] in filters["driver"]]
    if "scope" in filters:
        out = [n for n in out if n["Scope"] in filters["scope"]]
    return web.json_response(sorted(out, key=lambda n: n["Name"]))


async def inspect(request: web.Request) -> web.Response:
    agent = request.app[AGENT]
    manager = agent.require_manager()
    ref = request.match_info["id"]
    if _is_gwbridge(ref, manager.store.list("network")):
        return web.json_response(dict(GWBRIDGE))
    return web.json_response(view(agent, _find(manager.store.list("network"), ref)))


async def remove(request: web.Request) -> web.Response:
    manager = request.app[AGENT].require_manager()
    if _is_gwbridge(request.match_info["id"], manager.store.list("network")):
        raise PermissionDenied("shoal_gwbridge is a pre-defined network and cannot be removed")
    network = _find(manager.store.list("network"), request.match_info["id"])
    users = [
        s["Spec"]["Name"]
        for s in manager.store.list("service")
        if any(a["Target"] == network["ID"] for a in s["Spec"]["TaskTemplate"].get("Networks") or [])
        or any(v["NetworkID"] == network["ID"] for v in (s.get("Endpoint") or {}).get("VirtualIPs") or [])
    ]
    if users:
        raise Conflict(f"network {network['Spec']['Name']} is in use by service {', '.join(sorted(users))}")
    if network["Spec"].get("Ingress"):
        raise Conflict("the ingress network cannot be removed (the routing mesh needs it)")
    await manager.store.acommit([Change(op="delete", kind="network", obj_id=network["ID"])])
    return web.Response(status=204)


ROUTES = [
    ("POST", "/networks/create", create),
    ("GET", "/networks", list_networks),
    ("GET", "/networks/{id}", inspect),
    ("DELETE", "/networks/{id}", remove),
]
