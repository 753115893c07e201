"""Network control calls (SwarmKit's controlapi/network.go) over the store, and Docker's view.

`remove` refuses a network that a service uses, and the refusal holds under a concurrent service
create: the delete carries the precondition that no service was written since the read (and a
service create carries the precondition that its networks still exist), so whichever of the two
commits second fails; `commit_retrying` then reads again and answers from what it sees.
"""

from __future__ import annotations

from typing import Any

from shoal.errors import Conflict, PermissionDenied, SpecError
from shoal.manager.allocator.endpoints import resolve_network
from shoal.manager.control.filters import Filters, filter_networks
from shoal.model.ids import new_id, now_rfc3339
from shoal.model.network import (
    ENCRYPTED_OPTION,
    GWBRIDGE,
    GWBRIDGE_ID,
    docker_view,
    free_vni,
    mac_of,
    network_object,
    validate_create,
)
from shoal.model.objects import DEFAULT_ADDR_POOL, DEFAULT_SUBNET_SIZE
from shoal.store.changes import Change
from shoal.store.protocol import StoreReader

Obj = dict[str, Any]


def is_gwbridge(ref: str, networks: list[Obj] | None = None) -> bool:
    """Docker's order: a full ID or an exact name of a swarm network wins over the bridge's ID prefix."""
    if ref in ("shoal_gwbridge", GWBRIDGE_ID):
        return True
    if any(ref in (n["ID"], n["Spec"]["Name"]) for n in networks or []):
        return False
    return len(ref) >= 3 and GWBRIDGE_ID.startswith(ref)


def create(store: StoreReader, body: Obj) -> tuple[Obj, list[Change]]:
    networks = store.list("network")
    options = body.get("Options") if isinstance(body, dict) else None
    if isinstance(options, dict) and ENCRYPTED_OPTION in options:
        refuse_encrypted(store.list_shared("node"), options[ENCRYPTED_OPTION])
    pools, size = address_pools(store)
    req = validate_create(body, networks, pools, size)
    network = network_object(new_id(), req, free_vni(networks), now_rfc3339())
    return network, [Change(op="create", kind="network", obj=network)]


def refuse_encrypted(nodes: list[Obj], value: Any) -> None:
    """`--opt encrypted` is never created unencrypted: refused with the reason the cluster cannot
    encrypt (the nodes whose kernels have no ESP/AES-GCM, as they reported it at join). A node
    without ESP that joins later gets no task on the network (scheduler's EncryptionFilter)."""
    cannot = nodes_without_esp(nodes)
    if cannot:
        raise SpecError(
            "encrypted overlay networks need IPsec ESP with AES-GCM (rfc4106(gcm(aes))) in every node's kernel; "
            "this cluster cannot encrypt (" + "; ".join(sorted(cannot)) + ")"
        )


def nodes_without_esp(nodes: list[Obj]) -> list[str]:
    """ "hostname: reason" for every node whose kernel cannot do ESP with AES-GCM."""
    cannot = []
    for node in nodes:
        dataplane = node.get("Description", {}).get("Dataplane") or {}
        if not dataplane.get("EncryptedOverlay"):
            name = node.get("Description", {}).get("Hostname") or node["ID"]
            cannot.append(f"{name}: {dataplane.get('Reason') or 'did not report IPsec support'}")
    return cannot


def address_pools(store: StoreReader) -> tuple[list[str], int]:
    """The cluster's DefaultAddrPool and SubnetSize (fixed at `swarm init`), Docker's defaults without one."""
    for cluster in store.list_shared("cluster"):
        return list(cluster.get("DefaultAddrPool") or DEFAULT_ADDR_POOL), int(
            cluster.get("SubnetSize") or DEFAULT_SUBNET_SIZE
        )
    return list(DEFAULT_ADDR_POOL), DEFAULT_SUBNET_SIZE


def users_of(network_id: str, services: list[Obj]) -> list[str]:
    """Names of the services attached to the network (by target or by a VIP on it)."""
    return sorted(
        s["Spec"]["Name"]
        for s in services
        if any(a["Target"] == network_id for a in s["Spec"]["TaskTemplate"].get("Networks") or [])
        or any(v["NetworkID"] == network_id for v in (s.get("Endpoint") or {}).get("VirtualIPs") or [])
    )


def remove(store: StoreReader, ref: str) -> list[Change]:
    networks = store.list("network")
    if is_gwbridge(ref, networks):
        raise PermissionDenied("shoal_gwbridge is a pre-defined network and cannot be removed")
    network = resolve_network(networks, ref)
    services = store.list("service")
    users = users_of(network["ID"], services)
    if users:
        raise Conflict(f"network {network['Spec']['Name']} is in use by service {', '.join(users)}")
    if network["Spec"].get("Ingress"):
        raise Conflict("the ingress network cannot be removed (the routing mesh needs it)")
    # every service written after this read has a higher Version.Index than any read here
    read_at = max((s["Version"]["Index"] for s in services), default=0)
    return [
        Change.none_newer("service", read_at),
        Change(op="delete", kind="network", obj_id=network["ID"], expected_version=network["Version"]["Index"]),
    ]


def _attached(task: Obj, services: dict[str, str]) -> bool:
    """A task counts as on the network while it runs and is meant to: not once its service is removed
    or it is being stopped (community.docker's docker_network disconnects every listed container
    before removing a network, and a task on its way out has nothing left to disconnect)."""
    return (
        task["Status"]["State"] == "running"
        and task.get("DesiredState") in ("running", "complete")  # complete: a job's task, while it runs
        and task["ServiceID"] in services
    )


def view(store: StoreReader, network: Obj, local_node_id: str) -> Obj:
    """Docker's Network: peers (nodes with running tasks on it) and this node's endpoints."""
    nodes = {n["ID"]: n for n in store.list("node")}
    peers: dict[str, dict[str, str]] = {}
    containers: dict[str, Any] = {}
    names = {s["ID"]: s["Spec"]["Name"] for s in store.list("service")}
    for t in store.list("task"):
        for att in t.get("NetworksAttachments") or []:
            if att["Network"]["ID"] != network["ID"] or not _attached(t, names):
                continue
            node = nodes.get(t.get("NodeID", ""))
            if node is not None:
                peers[node["ID"]] = {"Name": node["Description"]["Hostname"], "IP": node["Status"]["Addr"]}
            if t.get("NodeID") == local_node_id:
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
                    if node["ID"] == local_node_id:
                        containers["ingress-sbox"] = {
                            "Name": "ingress-endpoint",
                            "EndpointID": "ingress-sbox",
                            "MacAddress": "",
                            "IPv4Address": att["Addresses"][0],
                            "IPv6Address": "",
                        }
    return docker_view(network, sorted(peers.values(), key=lambda p: p["Name"]), containers)


def inspect(store: StoreReader, ref: str, local_node_id: str) -> Obj:
    networks = store.list("network")
    if is_gwbridge(ref, networks):
        return dict(GWBRIDGE)
    return view(store, resolve_network(networks, ref), local_node_id)


def list_networks(store: StoreReader, filters: Filters, local_node_id: str) -> list[Obj]:
    services = store.list("service")
    networks = store.list("network")
    in_use = {n["ID"] for n in networks if users_of(n["ID"], services)}
    views = [view(store, n, local_node_id) for n in networks] + [dict(GWBRIDGE)]
    return sorted(filter_networks(views, filters, in_use), key=lambda n: n["Name"])
