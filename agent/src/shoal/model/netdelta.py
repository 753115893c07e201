"""A node's network state as increments: the wire format shared by the managers and the nodes.

A full answer carries every network's whole state (every peer, LB backend and DNS name): at
30,000 tasks on one overlay that was 5.6 MB per answer, sent to every node at every change, and
parsed by each (docs/scale.md). As SwarmKit's assignments stream sends changes since what the node
holds, a node that sends `NetHave` ({network ID: version}) gets `NetParts` instead of `Net`:

    {"Node": its ID, "Networks": [its network IDs], "Published": [...], "Ingress": {...} | null,
     "HostPorts": [...],
     "Changes": {network ID: {"Version": V, "From": V0 | null, "Set": {key: value}, "Del": [key]}}}

Each network's shared state is a flat map of items (`parts_of`); its version is the digest of that
state (the same on every manager, so a follower's answer continues a leader's). `From` null is a
full set (the node holds none, or a version the manager no longer keeps); otherwise the changes
apply to the version `From`, which is the one the node sent. A network absent from `Changes` is
unchanged. `assemble` rebuilds exactly what the full answer's `Net` holds (`NetView.for_node`).

Items, per network: "b" the network itself; "p:IP" [node ID, peer]; "l:SERVICE_ID" its load
balancer without its backends, "lb:SERVICE_ID|IP" one of them; "s:NAME" the name's addresses
([VIP], or null: its tasks' addresses), "t:NAME|IP" one of its tasks' addresses; "n:NAME" one
task name's address. A backend or task address is an item of its own: as a name's whole list, one
task starting in a 1,000-task service re-sent 1,000 addresses to every node.
"""

from __future__ import annotations

from typing import Any

Items = dict[str, Any]


def parts_of(net: dict[str, Any]) -> Items:
    """One network's shared state (`NetView.network`'s base, peers, lbs, dns) as items."""
    items: Items = {"b": net["base"]}
    for node_id, peer in net["peers"]:
        key = f"p:{peer['IP']}"
        while key in items:  # the same address twice (never allocated so): both kept
            key += "+"
        items[key] = [node_id, peer]
    for lb in net["lbs"]:
        items[f"l:{lb['ServiceID']}"] = {k: v for k, v in lb.items() if k != "Backends"}
        for ip in lb["Backends"]:
            items[f"lb:{lb['ServiceID']}|{ip}"] = 0
    dns = net["dns"]
    if dns is not None:
        for name, addrs in dns["Services"].items():
            tasks = dns["TasksOf"][name]
            items[f"s:{name}"] = None if addrs == tasks else addrs
            for ip in tasks:
                items[f"t:{name}|{ip}"] = 0
        for name, addr in dns["Names"].items():
            items[f"n:{name}"] = addr
    return items


class Held:
    """What a node holds: per network, (version, items). Applies `NetParts` answers."""

    def __init__(self) -> None:
        self.nets: dict[str, tuple[str, Items]] = {}

    def have(self) -> dict[str, str]:
        return {net_id: version for net_id, (version, _) in self.nets.items()}

    def apply(self, parts: dict[str, Any], assemble_state: bool = True) -> dict[str, Any] | None:
        """The node's whole network state after `parts`, or None when a change does not follow
        the version held (that network is dropped: the next answer sends it whole). With
        `assemble_state` False the changes are applied and {} returned (nothing to program)."""
        wanted = [n for n in parts.get("Networks") or [] if isinstance(n, str)]
        changes = parts.get("Changes") or {}
        ok = True
        for net_id, change in changes.items():
            held = self.nets.get(net_id)
            if change.get("From") is None:
                items: Items = dict(change.get("Set") or {})
            elif held is not None and held[0] == change["From"]:
                items = held[1]  # updated in place: a node's copy is its own
                for key in change.get("Del") or []:
                    items.pop(key, None)
                items.update(change.get("Set") or {})
            else:
                self.nets.pop(net_id, None)
                ok = False
                continue
            self.nets[net_id] = (str(change["Version"]), items)
        for net_id in list(self.nets):
            if net_id not in wanted:
                del self.nets[net_id]
        if not ok or any(n not in self.nets for n in wanted):
            return None
        if not assemble_state:
            return {}
        return assemble(str(parts.get("Node") or ""), wanted, {n: self.nets[n][1] for n in wanted}, parts)


def assemble(node_id: str, networks: list[str], items: dict[str, Items], local: dict[str, Any]) -> dict[str, Any]:
    """The full `Net` of a node from its networks' items and its own part (`local`)."""
    out_networks: dict[str, Any] = {}
    lbs: list[dict[str, Any]] = []
    dns: list[dict[str, Any]] = []
    for net_id in networks:
        net = items[net_id]
        base = net["b"]
        peers = sorted((v for k, v in net.items() if k.startswith("p:")), key=lambda v: v[1]["IP"])
        out_networks[net_id] = {**base, "Peers": [p for owner, p in peers if owner != node_id]}
        members = _members(net, "lb:")
        lbs += sorted(
            ({**v, "Backends": sorted(members.get(k[2:], []))} for k, v in net.items() if k.startswith("l:")),
            key=lambda lb: lb["ServiceID"],
        )
        if base.get("Ingress"):
            continue  # no service discovery on the ingress network
        record: dict[str, Any] = {"NetworkID": net_id, "Services": {}, "TasksOf": {}, "Names": {}}
        tasks_of = _members(net, "t:")
        for key, value in net.items():
            if key.startswith("s:"):
                name = key[2:]
                ips = sorted(tasks_of.get(name, []))
                record["TasksOf"][name] = ips
                record["Services"][name] = list(ips) if value is None else value
            elif key.startswith("n:"):
                record["Names"][key[2:]] = value
        dns.append(record)
    return {
        "Networks": out_networks,
        "LB": lbs,
        "DNS": dns,
        "Published": local.get("Published") or [],
        "Ingress": local.get("Ingress"),
        "HostPorts": local.get("HostPorts") or [],
    }


def _members(items: Items, prefix: str) -> dict[str, list[str]]:
    """ "PREFIX OWNER|IP" items grouped: owner -> its IPs."""
    out: dict[str, list[str]] = {}
    for key in items:
        if key.startswith(prefix):
            owner, _, ip = key[len(prefix) :].rpartition("|")
            out.setdefault(owner, []).append(ip)
    return out
