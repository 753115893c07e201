"""A service's Endpoint (published ports, VIPs) and a task's network attachments (pure)."""

from __future__ import annotations

import copy
from typing import Any

from shoal.errors import SpecError
from shoal.manager.allocator.addresses import allocate_ports, take_address
from shoal.model.network import INGRESS_NAME
from shoal.model.resolve import resolve
from shoal.model.sharedcopy import CopiesByObject


def resolve_network(networks: list[dict[str, Any]], ref: str) -> dict[str, Any]:
    """By ID, name or unique ID prefix: NotFound (404) if none, 400 if the prefix is ambiguous."""
    return resolve(networks, ref, "network", ambiguous=SpecError)


def ingress_network(networks: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((n for n in networks if n["Spec"].get("Ingress")), None)


def resolve_targets(spec: dict[str, Any], networks: list[dict[str, Any]]) -> dict[str, Any]:
    """TaskTemplate.Networks targets by name or prefix → IDs, as Docker stores them."""
    spec = copy.deepcopy(spec)
    out = []
    for att in spec["TaskTemplate"].get("Networks") or []:
        network = resolve_network(networks, att["Target"])
        if network["Spec"].get("Ingress"):
            raise SpecError(f"service cannot be explicitly attached to the ingress network {INGRESS_NAME!r}")
        out.append({**att, "Target": network["ID"]})
    spec["TaskTemplate"]["Networks"] = out
    return spec


def publishes_ingress(spec: dict[str, Any]) -> bool:
    ports = (spec.get("EndpointSpec") or {}).get("Ports") or []
    return any(p.get("PublishMode", "ingress") == "ingress" for p in ports)


def service_networks(spec: dict[str, Any], networks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ingress first (when the service publishes through the mesh), then its own networks."""
    by_id = {n["ID"]: n for n in networks}
    out = []
    ingress = ingress_network(networks)
    if publishes_ingress(spec) and ingress is not None:
        out.append(ingress)
    out += [by_id[a["Target"]] for a in spec["TaskTemplate"].get("Networks") or [] if a["Target"] in by_id]
    return out


def service_endpoint(
    spec: dict[str, Any],
    service_id: str | None,
    services: list[dict[str, Any]],
    networks: list[dict[str, Any]],
    used: dict[str, set[str]],
    current: dict[str, Any] | None = None,
) -> dict[str, Any]:
    endpoint_spec = spec.get("EndpointSpec") or {"Mode": "vip", "Ports": []}
    ports = allocate_ports(endpoint_spec.get("Ports") or [], services, service_id, (current or {}).get("Ports"))
    vips = []
    if endpoint_spec.get("Mode", "vip") == "vip":
        kept = {v["NetworkID"]: v["Addr"] for v in (current or {}).get("VirtualIPs") or []}
        for network in service_networks(spec, networks):
            addr = kept.get(network["ID"]) or take_address(network, used)
            vips.append({"NetworkID": network["ID"], "Addr": addr})
    return {"Spec": copy.deepcopy(endpoint_spec), "Ports": ports, "VirtualIPs": vips}


def task_attachments(
    service: dict[str, Any], networks: list[dict[str, Any]], used: dict[str, set[str]]
) -> list[dict[str, Any]]:
    """NetworksAttachments for a new task: one address per network, in eth0, eth1... order."""
    out = []
    for network in service_networks(service["Spec"], networks):
        out.append({"Network": _attached_view(network), "Addresses": [take_address(network, used)]})
    return out


# one copy of a network per stored object, shared by the tasks attached to it (model/sharedcopy.py)
_attached_view = CopiesByObject(
    lambda network: {k: copy.deepcopy(network[k]) for k in ("ID", "Spec", "DriverState", "IPAM")}, 256
)


def node_ingress_attachment(networks: list[dict[str, Any]], used: dict[str, set[str]]) -> dict[str, Any] | None:
    ingress = ingress_network(networks)
    if ingress is None:
        return None
    return {"Network": _attached_view(ingress), "Addresses": [take_address(ingress, used)]}
