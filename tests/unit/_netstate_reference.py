"""Reference for tests: the node network state as computed before NetView, kept verbatim.

For each overlay the node has a local endpoint on: the network and every remote endpoint (peers);
the load-balanced services reachable on those networks (VIP → running backends); the DNS records
per network; and the published ports with their ingress backends for the routing mesh.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from shoal.model.network import gateway_of, mac_of, subnet_of, vni_of

LIVE_STATES = ("assigned", "accepted", "preparing", "starting", "running")


def _ip(addr: str) -> str:
    return addr.split("/")[0]


def node_netstate(
    node_id: str,
    tasks: list[dict[str, Any]],
    services: list[dict[str, Any]],
    networks: list[dict[str, Any]],
    nodes: list[dict[str, Any]],
) -> dict[str, Any]:
    nodes_by_id = {n["ID"]: n for n in nodes}
    by_net = {n["ID"]: n for n in networks}
    svc_by_id = {s["ID"]: s for s in services}
    live = [
        t
        for t in tasks
        if t["DesiredState"] == "running" and t["Status"]["State"] in LIVE_STATES and t.get("NodeID") in nodes_by_id
    ]
    service_of = {t["ID"]: t["ServiceID"] for t in live}
    tasks_by_id = {t["ID"]: t for t in live}
    me = nodes_by_id.get(node_id) or {}
    ingress_addr = next((a["Addresses"][0] for a in me.get("Attachments") or []), None)
    publishing = [
        s
        for s in services
        if any(p.get("PublishMode") == "ingress" for p in (s.get("Endpoint") or {}).get("Ports") or [])
    ]
    local_nets = {
        a["Network"]["ID"] for t in live if t["NodeID"] == node_id for a in t.get("NetworksAttachments") or []
    }
    ingress_id = next((n["ID"] for n in networks if n["Spec"].get("Ingress")), None)
    if publishing and ingress_addr and ingress_id:
        local_nets.add(ingress_id)
    endpoints: dict[str, list[dict[str, str]]] = defaultdict(list)  # network -> every endpoint anywhere
    for t in live:
        node_ip = nodes_by_id[t["NodeID"]]["Status"]["Addr"]
        for att in t.get("NetworksAttachments") or []:
            addr = att["Addresses"][0]
            endpoints[att["Network"]["ID"]].append(
                {
                    "IP": _ip(addr),
                    "MAC": mac_of(addr),
                    "NodeIP": node_ip,
                    "NodeID": t["NodeID"],
                    "TaskID": t["ID"],
                    "Running": t["Status"]["State"] == "running",
                }
            )
    for n in nodes:
        for att in n.get("Attachments") or []:
            addr = att["Addresses"][0]
            endpoints[att["Network"]["ID"]].append(
                {
                    "IP": _ip(addr),
                    "MAC": mac_of(addr),
                    "NodeIP": n["Status"]["Addr"],
                    "NodeID": n["ID"],
                    "TaskID": "",
                    "Running": False,
                }
            )
    out_networks = {}
    for net_id in sorted(local_nets):
        net = by_net.get(net_id)
        if net is None:
            continue
        peers = [
            {"IP": e["IP"], "MAC": e["MAC"], "NodeIP": e["NodeIP"]}
            for e in endpoints.get(net_id, [])
            if e["NodeID"] != node_id
        ]
        out_networks[net_id] = {
            "VNI": vni_of(net),
            "Subnet": str(subnet_of(net)),
            "Gateway": gateway_of(net),
            "Internal": net["Spec"]["Internal"],
            "Ingress": net["Spec"]["Ingress"],
            "Name": net["Spec"]["Name"],
            "Encrypted": "encrypted" in net["Spec"]["DriverConfiguration"]["Options"],
            "Peers": sorted(peers, key=lambda p: p["IP"]),
        }
    lbs, dns = [], []
    for net_id in sorted(local_nets):
        records: dict[str, Any] = {"NetworkID": net_id, "Services": {}, "TasksOf": {}, "Names": {}}
        for s in services:
            backends = sorted(
                e["IP"]
                for e in endpoints.get(net_id, [])
                if e["Running"] and e["TaskID"] and service_of.get(e["TaskID"]) == s["ID"]
            )
            vip = next(
                (_ip(v["Addr"]) for v in (s.get("Endpoint") or {}).get("VirtualIPs") or [] if v["NetworkID"] == net_id),
                None,
            )
            attached = vip is not None or backends
            if not attached:
                continue
            mode = ((s.get("Endpoint") or {}).get("Spec") or {}).get("Mode", "vip")
            ports = [
                (int(p["TargetPort"]), p.get("Protocol", "tcp"))
                for p in (s["Spec"].get("EndpointSpec") or {}).get("Ports") or []
            ]
            if vip is not None and not by_net[net_id]["Spec"]["Ingress"]:
                lbs.append(
                    {
                        "ServiceID": s["ID"],
                        "NetworkID": net_id,
                        "VIP": vip,
                        "Ports": ports,
                        "Backends": backends,
                        "Mode": mode,
                    }
                )
            if by_net[net_id]["Spec"]["Ingress"]:
                continue  # no service discovery on the ingress network (seed §8)
            name = s["Spec"]["Name"]
            records["Services"][name] = [vip] if mode == "vip" and vip else backends
            records["TasksOf"][name] = backends
        if not by_net.get(net_id, {}).get("Spec", {}).get("Ingress"):
            for e in endpoints.get(net_id, []):
                task = tasks_by_id.get(e["TaskID"])
                if task is None:
                    continue
                svc = svc_by_id.get(task["ServiceID"])
                if svc is None:
                    continue
                unit = task.get("Slot") or task["NodeID"]
                short = f"{svc['Spec']['Name']}.{unit}"
                records["Names"][f"{short}.{task['ID']}"] = e["IP"]
                records["Names"][short] = e["IP"]
            dns.append(records)
    published = []
    for s in publishing if ingress_addr else []:  # the mesh needs this node's ingress sandbox address
        backends = sorted(
            e["IP"]
            for e in endpoints.get(ingress_id or "", [])
            if e["Running"] and e["TaskID"] and service_of.get(e["TaskID"]) == s["ID"]
        )
        for p in s["Endpoint"]["Ports"]:
            if p.get("PublishMode") == "ingress":
                published.append(
                    {
                        "PublishedPort": p["PublishedPort"],
                        "Protocol": p.get("Protocol", "tcp"),
                        "TargetPort": p["TargetPort"],
                        "Mode": "ingress",
                        "Backends": backends,
                    }
                )
    host_ports = []
    for t in live:
        if t["NodeID"] != node_id or t["Status"]["State"] != "running":
            continue
        for p in ((svc_by_id.get(t["ServiceID"]) or {}).get("Endpoint") or {}).get("Ports") or []:
            if p.get("PublishMode") == "host":
                host_ports.append(
                    {
                        "PublishedPort": p["PublishedPort"],
                        "Protocol": p.get("Protocol", "tcp"),
                        "TargetPort": p["TargetPort"],
                        "TaskID": t["ID"],
                    }
                )
    ingress = None
    if ingress_addr and ingress_id and publishing:
        net = by_net[ingress_id]
        ingress = {
            "NetworkID": ingress_id,
            "VNI": vni_of(net),
            "Subnet": str(subnet_of(net)),
            "Gateway": gateway_of(net),
            "Address": ingress_addr,
            "MAC": mac_of(ingress_addr),
        }
    return {
        "Networks": out_networks,
        "LB": lbs,
        "DNS": dns,
        "Published": published,
        "Ingress": ingress,
        "HostPorts": host_ports,
    }
