"""A node's network state as increments: the wire format shared by the managers and the nodes.

A full answer carries every network's whole state (every peer, LB backend and DNS name): at
30,000 tasks on one overlay that was 5.6 MB per answer, sent to every node at every change, and
parsed by each (docs/scale.md). As SwarmKit's assignments stream sends changes since what the node
holds, a node that sends `NetHave` ({network ID: version}) gets `NetParts` instead of `Net`:

    {"Node": its ID, "Networks": [its network IDs], "Published": [...], "Ingress": {...} | null,
     "HostPorts": [...],
     "Changes": {network ID: {"Version": V, "From": V0 | null, "Set": {key: value}, "Del": [key]}}}

Each network's shared state is a flat map of items (manager/netitems.py); its version is the digest of that
state (the same on every manager, so a follower's answer continues a leader's). `From` null is a
full set (the node holds none, or a version the manager no longer keeps); otherwise the changes
apply to the version `From`, which is the one the node sent. A network absent from `Changes` is
unchanged. `assemble` rebuilds exactly what the full answer's `Net` holds (`NetView.for_node`).

Items, per network: "b" the network itself; "e:IP" one endpoint, "NODE_ID" for a node's ingress
sandbox, "NODE_ID SERVICE_ID UNIT TASK_ID" for a task's (one string: a node parses it 2.7 times
faster than the list it was, and a 1,000-node fleet parses every endpoint a thousand times), and
"r:IP" (1) while that task runs
(an item of its own: a task starting changes 12 bytes, not its endpoint); "N:NODE_ID" that
node's underlay address; "v:SERVICE_ID" the service's name (while it exists); "l:SERVICE_ID" its
load balancer without its backends; "s:NAME" [service ID, the name's addresses ([VIP]), or null:
its running tasks' addresses]. Everything else the node derives (model/network.py's MAC of an
address, a service's backends and task names from its endpoints), so an endpoint costs one item of
about 100 bytes: as five items (peer, backend, task address, two task names) it was 270, and every
node on an overlay is sent every endpoint (1,000 nodes x 30,000 tasks: 8 GB while they start).
A task name ("web.3") that two live tasks share names the running one, the greater address
between equals.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shoal.model.network import mac_of

Items = dict[str, Any]


class Held:
    """What a node holds: per network, (version, items). Applies `NetParts` answers.

    `versions_only` keeps the versions and checks that each change follows the one held, but not
    the items: for simulated nodes (shoal.sim), which program nothing. A hundred of them in one
    process each held every endpoint of the overlay, 19 MB a node at 30,000 tasks, and a 1,000-node
    fleet outgrew the machine's memory (docs/scale.md)."""

    def __init__(self, versions_only: bool = False) -> None:
        self.nets: dict[str, tuple[str, Items]] = {}
        self.versions_only = versions_only

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
            whole = change.get("From") is None
            if not whole and (held is None or held[0] != change["From"]):
                self.nets.pop(net_id, None)
                ok = False
                continue
            if self.versions_only:
                items: Items = {}
            elif whole:
                items = dict(change.get("Set") or {})
            else:
                items = held[1]  # updated in place: a node's copy is its own
                for key in change.get("Del") or []:
                    items.pop(key, None)
                items.update(change.get("Set") or {})
            self.nets[net_id] = (str(change["Version"]), items)
        for net_id in list(self.nets):
            if net_id not in wanted:
                del self.nets[net_id]
        if not ok or any(n not in self.nets for n in wanted):
            return None
        if not assemble_state or self.versions_only:
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
        # (IP, the endpoint, whether its task runs), sorted by IP
        endpoints = sorted(
            ((k[2:].rstrip("+"), v.split(" "), f"r:{k[2:]}" in net) for k, v in net.items() if k.startswith("e:")),
            key=lambda e: e[0],
        )
        out_networks[net_id] = {
            **base,
            "Peers": [
                {"IP": ip, "MAC": mac_of(ip), "NodeIP": net.get(f"N:{v[0]}")}
                for ip, v, _ in endpoints
                if v[0] != node_id
            ],
        }
        running: dict[str, list[str]] = {}  # service ID -> its running tasks' addresses (sorted)
        for ip, v, runs in endpoints:
            if runs and len(v) == 4:
                running.setdefault(v[1], []).append(ip)
        lbs += sorted(
            ({**v, "Backends": running.get(k[2:], [])} for k, v in net.items() if k.startswith("l:")),
            key=lambda lb: lb["ServiceID"],
        )
        if base.get("Ingress"):
            continue  # no service discovery on the ingress network
        record: dict[str, Any] = {"NetworkID": net_id, "Services": {}, "TasksOf": {}, "Names": {}}
        for key, (sid, addrs) in ((k, v) for k, v in net.items() if k.startswith("s:")):
            ips = running.get(sid, [])
            record["TasksOf"][key[2:]] = list(ips)
            record["Services"][key[2:]] = list(ips) if addrs is None else addrs
        record["Names"] = task_names(
            (ip, net.get(f"v:{v[1]}"), v[2], v[3], runs) for ip, v, runs in endpoints if len(v) == 4
        )
        dns.append(record)
    return {
        "Networks": out_networks,
        "LB": lbs,
        "DNS": dns,
        "Published": local.get("Published") or [],
        "Ingress": local.get("Ingress"),
        "HostPorts": local.get("HostPorts") or [],
    }


def task_names(endpoints: Iterable[tuple[str, str | None, Any, str, bool]]) -> dict[str, str]:
    """DNS names of tasks from (IP, service name or None (gone), unit, task ID, running): "web.3.ID"
    and "web.3"; a short name two live tasks share is the running one's, the greater address between
    equals (the managers and the nodes both name tasks so, whatever order they hold endpoints in)."""
    names: dict[str, str] = {}
    short_of: dict[str, tuple[bool, str]] = {}
    for ip, name, unit, task_id, running in endpoints:
        if name is None:
            continue
        short = f"{name}.{unit}"
        names[f"{short}.{task_id}"] = ip
        best = short_of.get(short)
        if best is None or (running, ip) > best:
            short_of[short] = (running, ip)
    for short, (_, ip) in short_of.items():
        names[short] = ip
    return names
