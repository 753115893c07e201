"""The overlays' items (model/netdelta.py), kept from one assignments snapshot to the next and updated
from what changed: the tasks and nodes whose stored object is a new one since the last build.

Rebuilt whole at each snapshot, one overlay of 30,000 endpoints took 0.35-0.8 s of the leader's CPU
(its endpoints gathered, sorted, encoded where changed, and its version hashed over every item), and
a rolling update's batch of 100 tasks waited for one or two such builds at 1,000 nodes (docs/scale.md).
Updated, a build costs O(tasks) identity checks and O(changes) items; a network's version is a sum
of its items' hashes, so that a change of one item changes it in O(1), whatever order the items came
in, and the same on every manager (a follower's answer continues a leader's).

An endpoint's address is its item's key. Two live endpoints with one address (never allocated so)
take the whole build's keys ("e:IP", then "e:IP+", in address order): that network is built whole
while they last, as before.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from shoal.model.network import gateway_of, is_encrypted, subnet_of, vni_of

Owner = Any  # the stored object (a task or a node): a new object is a change, the same one is not


@dataclass(slots=True)
class Endpoint:
    """What a live task or a node's sandbox puts on one network: its items' keys, and what the
    derived items count (its node's "N:", its service's "v:" and running addresses)."""

    ip: str
    node_id: str
    service_id: str  # "" for a node's sandbox
    running: bool
    keys: tuple[str, ...]


def _hash(key: str, text: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{key}={text}".encode(), digest_size=8).digest(), "big")


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def ip_of(addr: str) -> str:
    """The address of "IP/prefix"."""
    return addr.split("/")[0]


def vip_on(service: dict[str, Any], net_id: str) -> str | None:
    """The service's virtual IP on one network, if it has one there."""
    vips = (service.get("Endpoint") or {}).get("VirtualIPs") or []
    return next((ip_of(v["Addr"]) for v in vips if v["NetworkID"] == net_id), None)


def endpoint_mode(service: dict[str, Any]) -> str:
    return ((service.get("Endpoint") or {}).get("Spec") or {}).get("Mode", "vip")


def load_balancer(service: dict[str, Any], net_id: str, vip: str) -> dict[str, Any]:
    """The service's load balancer on one network, without its backends (its "l:" item; whole
    answers add the backends)."""
    return {
        "ServiceID": service["ID"],
        "NetworkID": net_id,
        "VIP": vip,
        "Ports": [
            (int(p["TargetPort"]), p.get("Protocol", "tcp"))
            for p in (service["Spec"].get("EndpointSpec") or {}).get("Ports") or []
        ],
        "Mode": endpoint_mode(service),
    }


def aliases_on(service: dict[str, Any], net_id: str) -> list[str]:
    """The service's network aliases on one network (its spec's Targets are network IDs)."""
    for att in service["Spec"]["TaskTemplate"].get("Networks") or []:
        if att.get("Target") == net_id:
            return list(att.get("Aliases") or [])
    return []


def base_of(net: dict[str, Any]) -> dict[str, Any]:
    """The network itself, as its "b" item holds it."""
    return {
        "VNI": vni_of(net),
        "Subnet": str(subnet_of(net)),
        "Gateway": gateway_of(net),
        "Internal": net["Spec"]["Internal"],
        "Ingress": net["Spec"]["Ingress"],
        "Name": net["Spec"]["Name"],
        "Encrypted": is_encrypted(net),
    }


@dataclass
class NetItems:
    """One network's items as JSON texts, with its version kept as they change."""

    ingress: bool
    texts: dict[str, str] = field(default_factory=dict)
    hashes: dict[str, int] = field(default_factory=dict)
    total: int = 0
    endpoints: dict[str, Endpoint] = field(default_factory=dict)  # owner key -> its endpoint here
    ips: Counter[str] = field(default_factory=Counter)
    on_node: Counter[str] = field(default_factory=Counter)
    of_service: Counter[str] = field(default_factory=Counter)
    running: dict[str, set[str]] = field(default_factory=dict)  # service ID -> its running tasks' IPs
    derived: dict[str, tuple[Any, str]] = field(default_factory=dict)  # key -> (value, text), rebuilt each time

    @property
    def version(self) -> str:
        return f"{self.total % 2**64:016x}"

    def put(self, key: str, text: str) -> None:
        if self.texts.get(key) == text:
            return
        h = _hash(key, text)
        self.total += h - self.hashes.get(key, 0)
        self.texts[key] = text
        self.hashes[key] = h

    def drop(self, key: str) -> None:
        if key in self.texts:
            del self.texts[key]
            self.total -= self.hashes.pop(key)

    def add(self, owner: str, ep: Endpoint, text: str, dedupe: bool = False) -> None:
        key = f"e:{ep.ip}"
        while dedupe and key in self.texts:
            key += "+"
        keys = (key, f"r:{key[2:]}") if ep.running and ep.service_id and not self.ingress else (key,)
        ep.keys = keys
        self.put(key, text)
        if len(keys) > 1:
            self.put(keys[1], "1")
        self.endpoints[owner] = ep
        self.ips[ep.ip] += 1
        self.on_node[ep.node_id] += 1
        if ep.service_id:
            self.of_service[ep.service_id] += 1
            if ep.running:
                self.running.setdefault(ep.service_id, set()).add(ep.ip)

    def remove(self, owner: str) -> None:
        ep = self.endpoints.pop(owner, None)
        if ep is None:
            return
        for key in ep.keys:
            self.drop(key)
        _less(self.ips, ep.ip)
        _less(self.on_node, ep.node_id)
        if ep.service_id:
            _less(self.of_service, ep.service_id)
            if ep.running:
                ips = self.running[ep.service_id]
                ips.discard(ep.ip)
                if not ips:
                    del self.running[ep.service_id]

    def shared_addresses(self) -> bool:
        """Whether two live endpoints have one address (their keys depend on their order)."""
        return len(self.ips) < len(self.endpoints)

    def set_derived(self, want: dict[str, Any]) -> None:
        """The items recomputed at each build ("b", "N:", "v:", "s:", "l:"): texts reused where the value is
        the same, those gone dropped."""
        for key in [k for k in self.derived if k not in want]:
            del self.derived[key]
            self.drop(key)
        for key, value in want.items():
            known = self.derived.get(key)
            if known is not None and type(known[0]) is type(value) and known[0] == value:
                text = known[1]
            else:
                text = dumps(value)
                self.derived[key] = (value, text)
            self.put(key, text)


def _less(counter: Counter[str], key: str) -> None:
    left = counter[key] - 1
    if left > 0:
        counter[key] = left
    else:
        del counter[key]


@dataclass
class NetTables:
    """Every network's items as of the last build, and the objects they were built from (carried
    from one view to the next, owned by one build at a time)."""

    networks: dict[str, Any]  # network ID -> the stored network object built from
    node_ids: frozenset[str]
    owners: dict[str, Owner] = field(default_factory=dict)  # owner key -> the object applied
    nets: dict[str, NetItems] = field(default_factory=dict)


def node_owner(node_id: str) -> str:
    return f"\0node:{node_id}"  # task IDs never start so


def _attachments(owner: Owner, is_node: bool) -> list[tuple[str, str]]:
    """(network ID, IP) of each of the owner's endpoints."""
    atts = owner.get("Attachments" if is_node else "NetworksAttachments") or []
    return [(att["Network"]["ID"], ip_of(att["Addresses"][0])) for att in atts]


def _endpoint(owner: Owner, is_node: bool, ip: str, table: NetItems) -> tuple[Endpoint, str]:
    """The owner's endpoint on one network, and its "e:" item's text."""
    if is_node:
        return Endpoint(ip, owner["ID"], "", False, ()), dumps(owner["ID"])
    node_id, sid = owner["NodeID"], owner["ServiceID"]
    running = owner["Status"]["State"] == "running"
    if table.ingress:  # no discovery on the ingress network: its endpoints need no task
        return Endpoint(ip, node_id, sid, running, ()), dumps(node_id)
    unit = owner.get("Slot") or node_id
    return Endpoint(ip, node_id, sid, running, ()), dumps(f"{node_id} {sid} {unit} {owner['ID']}")


def update(
    tables: NetTables | None,
    live: list[dict[str, Any]],
    nodes_by_id: dict[str, dict[str, Any]],
    networks: dict[str, dict[str, Any]],
    services: list[dict[str, Any]],
) -> NetTables:
    """`tables` brought up to `live` (the live tasks, on known nodes), the nodes and the services;
    built whole when there are none, or when the networks or the set of nodes changed. `tables` is
    updated in place (it belongs to this build alone) and returned."""
    if (
        tables is None
        or tables.node_ids != nodes_by_id.keys()
        or tables.networks.keys() != networks.keys()
        or any(tables.networks[k] is not v for k, v in networks.items())
    ):
        tables = NetTables(dict(networks), frozenset(nodes_by_id))
    current: dict[str, Owner] = {t["ID"]: t for t in live}
    for n in nodes_by_id.values():
        if n.get("Attachments"):
            current[node_owner(n["ID"])] = n
    whole = {net_id for net_id in networks if net_id not in tables.nets}
    whole |= {net_id for net_id, table in tables.nets.items() if table.shared_addresses()}
    owners = tables.owners
    for key in [k for k in owners if k not in current]:
        for net_id, _ in _attachments(owners.pop(key), key.startswith("\0")):
            if net_id in tables.nets and net_id not in whole:
                tables.nets[net_id].remove(key)
    for key, obj in current.items():
        old = owners.get(key)
        if old is obj:
            continue
        is_node = key.startswith("\0")
        if old is not None:
            for net_id, _ in _attachments(old, is_node):
                if net_id in tables.nets and net_id not in whole:
                    tables.nets[net_id].remove(key)
        owners[key] = obj
        for net_id, ip in _attachments(obj, is_node):
            table = tables.nets.get(net_id)
            if table is not None and net_id not in whole:
                ep, text = _endpoint(obj, is_node, ip, table)
                table.add(key, ep, text)
    whole |= {net_id for net_id, table in tables.nets.items() if table.shared_addresses()}
    for net_id in whole:
        tables.nets[net_id] = _whole(networks[net_id], net_id, current)
    for net_id, table in tables.nets.items():
        table.set_derived(_derived(networks[net_id], net_id, table, nodes_by_id, services))
    return tables


def _whole(net: dict[str, Any], net_id: str, current: dict[str, Owner]) -> NetItems:
    """One network's items built from every endpoint, in address order (the tasks' in their store
    order, then the nodes'): two endpoints with one address take "e:IP" and "e:IP+" in that order."""
    table = NetItems(ingress=bool(net["Spec"]["Ingress"]))
    mine = [
        (ip, key, obj, key.startswith("\0"))
        for key, obj in current.items()
        for att_net, ip in _attachments(obj, key.startswith("\0"))
        if att_net == net_id
    ]
    mine.sort(key=lambda e: e[0])
    for ip, key, obj, is_node in mine:
        ep, text = _endpoint(obj, is_node, ip, table)
        table.add(key, ep, text, dedupe=True)
    return table


def _derived(
    net: dict[str, Any],
    net_id: str,
    table: NetItems,
    nodes_by_id: dict[str, dict[str, Any]],
    services: list[dict[str, Any]],
) -> dict[str, Any]:
    """The items that follow from the endpoints and the services: the network ("b"), the
    endpoints' nodes' addresses ("N:"), and, except on the ingress network, the services' names
    ("v:"), load balancers ("l:") and DNS names ("s:")."""
    want: dict[str, Any] = {"b": base_of(net)}
    for node_id in table.on_node:
        want[f"N:{node_id}"] = nodes_by_id[node_id]["Status"]["Addr"]
    if table.ingress:
        return want
    names: dict[str, str] = {s["ID"]: s["Spec"]["Name"] for s in services}
    for sid in table.of_service:
        if sid in names:
            want[f"v:{sid}"] = names[sid]
    dns: dict[str, list[Any]] = {}
    aliases: dict[str, list[Any]] = {}
    for s in services:  # sorted by ID (a name two services share, which the API refuses, is the last's)
        sid = s["ID"]
        ips = table.running.get(sid, set())
        vip = vip_on(s, net_id)
        if vip is None and not ips:
            continue
        if vip is not None:
            want[f"l:{sid}"] = load_balancer(s, net_id, vip)
        # its addresses, or None for its running tasks' (what a node derives)
        addrs = [vip] if endpoint_mode(s) == "vip" and vip and ips != {vip} else None
        dns[s["Spec"]["Name"]] = [sid, addrs]
        for alias in aliases_on(s, net_id):
            aliases.setdefault(alias, [sid, addrs])
    for alias, value in aliases.items():  # after every service name: a real name wins a clash
        dns.setdefault(alias, value)
    for name, value in dns.items():
        want[f"s:{name}"] = value
    return want
