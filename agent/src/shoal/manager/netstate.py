"""What a node needs to program its dataplane, computed by a manager from the store (pure).

For each overlay the node has a local endpoint on: the network and every remote endpoint (peers);
the load-balanced services reachable on those networks (VIP → running backends); the DNS records
per network; and the published ports with their ingress backends for the routing mesh.

`NetView` does the cluster-wide part once per store snapshot (endpoints, backends, DNS records per
network: O(tasks)) and every node's answer picks its networks from it. Computing all of it again
for each waiting node made each store event cost O(nodes x tasks x services) on the leader.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from functools import cached_property
from typing import Any

from shoal.manager import netitems
from shoal.manager.netitems import NetTables, aliases_on, base_of, dumps, endpoint_mode, ip_of, load_balancer, vip_on
from shoal.model.netdelta import task_names
from shoal.model.network import gateway_of, mac_of, subnet_of, vni_of

LIVE_STATES = ("assigned", "accepted", "preparing", "starting", "running")


class NetView:
    """The store's network state as of one snapshot; read-only, shared by every node's answer."""

    def __init__(
        self,
        tasks: list[dict[str, Any]],
        services: list[dict[str, Any]],
        networks: list[dict[str, Any]],
        nodes: list[dict[str, Any]],
        tables: NetTables | None = None,
    ) -> None:
        """`tables`: an earlier view's networks' items (`take_tables`), updated to this view from
        what changed since (netitems.py); none: built whole."""
        # by ID: LBs and DNS aliases come in this order, the same on every manager whatever its
        # store's order (a node's increments carry LBs by service, and rebuild them in this order)
        self.services = sorted(services, key=lambda s: s["ID"])
        self.nodes_by_id = {n["ID"]: n for n in nodes}
        self.by_net = {n["ID"]: n for n in networks}
        self.svc_by_id = {s["ID"]: s for s in services}
        live = [
            t
            for t in tasks
            if t["DesiredState"] in ("running", "complete")  # complete: a job's task (it runs until done)
            and t["Status"]["State"] in LIVE_STATES
            and t.get("NodeID") in self.nodes_by_id
        ]
        self.live_by_node: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for t in live:
            self.live_by_node[t["NodeID"]].append(t)
        self.publishing = [
            s
            for s in services
            if any(p.get("PublishMode") == "ingress" for p in (s.get("Endpoint") or {}).get("Ports") or [])
        ]
        self.ingress_id = next((n["ID"] for n in networks if n["Spec"].get("Ingress")), None)
        self.live = live
        self._tables = tables
        self._items: dict[str, dict[str, Any]] | None = None
        self._detail: dict[str, dict[str, Any]] = {}
        self._parts: dict[str, tuple[str | None, list[str], list[dict[str, Any]]]] = {}
        self._digests: dict[str, str] = {}

    @cached_property
    def tasks_by_id(self) -> dict[str, dict[str, Any]]:
        """The live tasks by ID (for whole answers: `detail`)."""
        return {t["ID"]: t for t in self.live}

    def take_tables(self) -> NetTables | None:
        """The networks' items this view was built to, for the next view to update (once: they are
        updated in place); None when they were taken already, or not built."""
        tables, self._tables = self._tables, None
        return tables if self._items is not None else None

    def _built(self) -> dict[str, dict[str, Any]]:
        """Network ID -> {"digest": its version, "items": its items' texts, "size": its endpoints},
        as of this view: the carried tables brought up to it (netitems.py), then copied, so that the
        next view may update the tables while answers still read this one's."""
        if self._items is None:
            tables = netitems.update(self._tables, self.live, self.nodes_by_id, self.by_net, self.services)
            self._tables = tables
            self._items = {
                net_id: {"digest": table.version, "items": dict(table.texts), "size": len(table.endpoints)}
                for net_id, table in tables.nets.items()
            }
        return self._items

    def network(self, net_id: str) -> dict[str, Any]:
        """One network's version ("digest"), items as JSON texts ("items", model/netdelta.py) and
        number of endpoints ("size"): the same for every node."""
        return self._built()[net_id]

    @cached_property
    def endpoints(self) -> dict[str, list[dict[str, Any]]]:
        """Network ID -> every endpoint on it, anywhere (for whole answers: `detail`)."""
        endpoints: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for t in self.live:
            node_ip = self.nodes_by_id[t["NodeID"]]["Status"]["Addr"]
            for att in t.get("NetworksAttachments") or []:
                addr = att["Addresses"][0]
                endpoints[att["Network"]["ID"]].append(
                    {
                        "IP": ip_of(addr),
                        "NodeIP": node_ip,
                        "NodeID": t["NodeID"],
                        "TaskID": t["ID"],
                        "Running": t["Status"]["State"] == "running",
                    }
                )
        for n in self.nodes_by_id.values():
            for att in n.get("Attachments") or []:
                addr = att["Addresses"][0]
                endpoints[att["Network"]["ID"]].append(
                    {
                        "IP": ip_of(addr),
                        "NodeIP": n["Status"]["Addr"],
                        "NodeID": n["ID"],
                        "TaskID": "",
                        "Running": False,
                    }
                )
        return endpoints

    def backends(self, net_id: str) -> dict[str, list[str]]:
        """Service ID -> sorted IPs of its running tasks on the network."""
        return self.detail(net_id)["backends"]

    def detail(self, net_id: str) -> dict[str, Any]:
        """One network as whole answers list it, the same for every node (computed on first use):
        only nodes that take no increments, and the routing mesh's backends, need it."""
        done = self._detail.get(net_id)
        if done is not None:
            return done
        net = self.by_net[net_id]
        ingress = net["Spec"]["Ingress"]
        # every endpoint, sorted by IP; a node's peers are these less its own (a stable sort keeps the order)
        endpoints = sorted(self.endpoints.get(net_id, []), key=lambda e: e["IP"])
        by_service: dict[str, list[str]] = defaultdict(list)
        for e in endpoints:
            task = self.tasks_by_id.get(e["TaskID"]) if e["Running"] else None
            if task is not None:
                by_service[task["ServiceID"]].append(e["IP"])
        backends = {sid: sorted(ips) for sid, ips in by_service.items()}
        base = base_of(net)
        tasks = [(e, self._task_of(e)) for e in endpoints]
        lbs, records = self._lb_and_dns(net_id, ingress, backends, tasks)
        done = {"base": base, "endpoints": endpoints, "lbs": lbs, "dns": records, "backends": backends}
        self._detail[net_id] = done
        return done

    def peers(self, net_id: str) -> list[tuple[str, dict[str, Any]]]:
        """(node ID, peer) of every endpoint on the network, sorted by IP: only whole answers (nodes
        that take no increments) list peers, so they are made on first use."""
        done = self.detail(net_id)
        if "peers" not in done:
            done["peers"] = [
                (e["NodeID"], {"IP": e["IP"], "MAC": mac_of(e["IP"]), "NodeIP": e["NodeIP"]}) for e in done["endpoints"]
            ]
        return done["peers"]

    def network_json(self, net_id: str) -> dict[str, Any]:
        """The network's parts of a whole answer, encoded once for every node's (for_node_json)."""
        done = self.detail(net_id)
        if "json" not in done:
            done["json"] = {
                "base": dumps(done["base"])[:-1],  # without its closing brace: the node's peers follow
                "peers": [(nid, dumps(p)) for nid, p in self.peers(net_id)],
                "lbs": [dumps(lb) for lb in done["lbs"]],
                "dns": None if done["dns"] is None else dumps(done["dns"]),
            }
        return done["json"]

    def _task_of(self, endpoint: dict[str, Any]) -> tuple[str, Any, str, bool] | None:
        """(service ID, unit: slot or node, task ID, running) of a task's endpoint; None for a node's."""
        task = self.tasks_by_id.get(endpoint["TaskID"])
        if task is None:
            return None
        return task["ServiceID"], task.get("Slot") or task["NodeID"], task["ID"], endpoint["Running"]

    @cached_property
    def service_names(self) -> dict[str, str]:
        return {s["ID"]: s["Spec"]["Name"] for s in self.services}

    def _lb_and_dns(
        self,
        net_id: str,
        ingress: bool,
        backends: dict[str, list[str]],
        tasks: list[tuple[dict[str, Any], tuple[str, Any, str, bool] | None]],
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """The network's load balancers and its DNS records (None on the ingress network)."""
        lbs = []
        records: dict[str, Any] = {"NetworkID": net_id, "Services": {}, "TasksOf": {}, "Names": {}}
        aliases: dict[str, str] = {}  # network alias -> the service it names on this network
        for s in self.services:
            ips = backends.get(s["ID"], [])
            vip = vip_on(s, net_id)
            if vip is None and not ips:
                continue
            mode = endpoint_mode(s)
            if vip is not None and not ingress:
                lbs.append({**load_balancer(s, net_id, vip), "Backends": ips})
            if ingress:
                continue  # no service discovery on the ingress network (seed §8)
            name = s["Spec"]["Name"]
            records["Services"][name] = [vip] if mode == "vip" and vip else ips
            records["TasksOf"][name] = ips
            for alias in aliases_on(s, net_id):
                aliases.setdefault(alias, name)
        if ingress:
            return lbs, None
        for alias, name in aliases.items():  # after every service name: a real name wins a clash
            records["Services"].setdefault(alias, records["Services"][name])
            records["TasksOf"].setdefault(alias, records["TasksOf"][name])
        records["Names"] = task_names(
            (e["IP"], self.service_names.get(task[0]), task[1], task[2], task[3]) for e, task in tasks if task
        )
        return lbs, records

    @cached_property
    def published(self) -> list[dict[str, Any]]:
        """The routing mesh's published ports (the same on every node that has an ingress sandbox)."""
        out = []
        ingress_backends = self.backends(self.ingress_id) if self.ingress_id in self.by_net else {}
        for s in self.publishing:
            for p in s["Endpoint"]["Ports"]:
                if p.get("PublishMode") == "ingress":
                    out.append(
                        {
                            "PublishedPort": p["PublishedPort"],
                            "Protocol": p.get("Protocol", "tcp"),
                            "TargetPort": p["TargetPort"],
                            "Mode": "ingress",
                            "Backends": ingress_backends.get(s["ID"], []),
                        }
                    )
        return out

    # ---- one node
    def _node_parts(self, node_id: str) -> tuple[str | None, list[str], list[dict[str, Any]]]:
        """(its ingress sandbox address, its networks (sorted), its host-mode ports): once per node
        and view, as every poll of the node asks for them (its digest, then its answer's parts)."""
        known = self._parts.get(node_id)
        if known is None:
            known = self._parts[node_id] = self._node_parts_of(node_id)
        return known

    def _node_parts_of(self, node_id: str) -> tuple[str | None, list[str], list[dict[str, Any]]]:
        me = self.nodes_by_id.get(node_id) or {}
        ingress_addr = next((a["Addresses"][0] for a in me.get("Attachments") or []), None)
        mine = self.live_by_node.get(node_id, [])
        local_nets = {a["Network"]["ID"] for t in mine for a in t.get("NetworksAttachments") or []}
        if self.publishing and ingress_addr and self.ingress_id:
            local_nets.add(self.ingress_id)
        host_ports = []
        for t in mine:
            if t["Status"]["State"] != "running":
                continue
            for p in ((self.svc_by_id.get(t["ServiceID"]) or {}).get("Endpoint") or {}).get("Ports") or []:
                if p.get("PublishMode") == "host":
                    host_ports.append(
                        {
                            "PublishedPort": p["PublishedPort"],
                            "Protocol": p.get("Protocol", "tcp"),
                            "TargetPort": p["TargetPort"],
                            "TaskID": t["ID"],
                        }
                    )
        return ingress_addr, sorted(n for n in local_nets if n in self.by_net), host_ports

    def weight(self, node_id: str) -> int:
        """How many endpoints the node's answer lists (what sending it costs)."""
        _, nets, _ = self._node_parts(node_id)
        return sum(self.network(n)["size"] for n in nets)

    def digest(self, node_id: str) -> str:
        """Changes whenever `for_node(node_id)` may have changed; cheap: the networks' digests are
        shared, and each node's is made once per view (every waiting poll asks at every commit)."""
        known = self._digests.get(node_id)
        if known is None:
            known = self._digests[node_id] = self._digest_of(node_id)
        return known

    def _digest_of(self, node_id: str) -> str:
        ingress_addr, nets, host_ports = self._node_parts(node_id)
        parts = [node_id, ingress_addr, host_ports, [self.network(n)["digest"] for n in nets]]
        if ingress_addr and self.publishing:
            parts.append(self.published)
        text = json.dumps(parts, sort_keys=True, default=str)
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    @cached_property
    def published_json(self) -> str:
        return dumps(self.published)

    def for_node_json(self, node_id: str) -> str:
        """`for_node` as JSON text, spliced from the networks' pieces encoded once per snapshot:
        encoding each node's copy of a network's every peer and DNS name was most of the leader's
        time (30,000 tasks on one overlay: 6 MB and 0.4 s per answer, for every node)."""
        ingress_addr, nets, host_ports = self._node_parts(node_id)
        networks, lbs, dns = [], [], []
        for net_id in nets:
            enc = self.network_json(net_id)
            peers = ",".join(p for nid, p in enc["peers"] if nid != node_id)
            networks.append(f'{dumps(net_id)}:{enc["base"]},"Peers":[{peers}]}}')
            lbs += enc["lbs"]
            if enc["dns"] is not None:
                dns.append(enc["dns"])
        return (
            f'{{"Networks":{{{",".join(networks)}}},"LB":[{",".join(lbs)}],"DNS":[{",".join(dns)}],'
            f'"Published":{self.published_json if ingress_addr else "[]"},'
            f'"Ingress":{dumps(self._ingress(ingress_addr))},"HostPorts":{dumps(host_ports)}}}'
        )

    def networks_of(self, node_id: str) -> list[str]:
        """The node's networks (sorted): those `for_node` lists."""
        return self._node_parts(node_id)[1]

    def parts_pieces(self, node_id: str, changes: dict[str, bytes]) -> list[bytes]:
        """The node's `NetParts` (model/netdelta.py) as JSON in pieces: its own part, and `changes`
        (network ID -> one network's change, encoded), each change the very object given (shared
        by every node it is sent to, never copied into a node's own text)."""
        ingress_addr, nets, host_ports = self._node_parts(node_id)
        pieces = [
            f'{{"Node":{dumps(node_id)},"Networks":{dumps(nets)},'
            f'"Published":{self.published_json if ingress_addr else "[]"},'
            f'"Ingress":{dumps(self._ingress(ingress_addr))},"HostPorts":{dumps(host_ports)},'
            f'"Changes":{{'.encode()
        ]
        for i, (net_id, change) in enumerate(changes.items()):
            pieces += [f"{',' if i else ''}{dumps(net_id)}:".encode(), change]
        pieces.append(b"}}")
        return pieces

    def _ingress(self, ingress_addr: str | None) -> dict[str, Any] | None:
        if not (ingress_addr and self.ingress_id and self.publishing):
            return None
        net = self.by_net[self.ingress_id]
        return {
            "NetworkID": self.ingress_id,
            "VNI": vni_of(net),
            "Subnet": str(subnet_of(net)),
            "Gateway": gateway_of(net),
            "Address": ingress_addr,
            "MAC": mac_of(ingress_addr),
        }

    def for_node(self, node_id: str) -> dict[str, Any]:
        ingress_addr, nets, host_ports = self._node_parts(node_id)
        out_networks, lbs, dns = {}, [], []
        for net_id in nets:
            net = self.detail(net_id)
            out_networks[net_id] = {**net["base"], "Peers": [p for nid, p in self.peers(net_id) if nid != node_id]}
            lbs += net["lbs"]
            if net["dns"] is not None:
                dns.append(net["dns"])
        ingress = self._ingress(ingress_addr)
        return {
            "Networks": out_networks,
            "LB": lbs,
            "DNS": dns,
            "Published": self.published if ingress_addr else [],
            "Ingress": ingress,
            "HostPorts": list(host_ports),  # the view's own list stays as it is
        }


def node_netstate(
    node_id: str,
    tasks: list[dict[str, Any]],
    services: list[dict[str, Any]],
    networks: list[dict[str, Any]],
    nodes: list[dict[str, Any]],
) -> dict[str, Any]:
    """One node's network state (a whole view for one node: callers with many nodes keep a NetView)."""
    return NetView(tasks, services, networks, nodes).for_node(node_id)
