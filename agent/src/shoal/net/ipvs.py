"""The IPVS load-balancing backend: Docker's layout, through pyroute2's IPVS (generic netlink).

Task namespaces: a packet to a service VIP gets a firewall mark in the output hook (nft map
`ip daddr -> mark`), and one IPVS firewall-mark service per VIP balances it round robin over the
tasks that are up, NAT (masquerading) forwarding, destination port 0 (every port of the VIP is
forwarded, as Docker does). A VIP with no task up is rejected, as with the nftables backend.

Ingress sandbox (routing mesh): packets from the gateway leg get a mark per published port
(`meta l4proto . th dport -> mark`); one firewall-mark service per port sends them to the
tasks' ingress-overlay addresses at the target port; `net.ipv4.vs.conntrack=1` (in the sandbox
only) lets the masquerade rule see IPVS's connections, as Docker's ingress sandbox does.

The marks are derived from what they mark (a VIP's address, a port and protocol), so no state
is needed to find what an earlier agent programmed. Everything here that touches the kernel runs
inside a namespace thread (ns.run).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
from dataclasses import dataclass

from shoal.net import lb, nft, ns
from shoal.net.model import Published

TABLE = lb.TABLE  # the task namespace's table keeps its name whatever the backend
MARKS_MAP = "marks"
MARK_CHAIN = "mark"
MANGLE_PRIORITY = -150
SCHEDULER = "rr"
FWD_MASQ = 0  # IP_VS_CONN_F_MASQ (pyroute2's default is direct routing)
# ingress marks: 0x5A.. in the top byte keeps them apart from VIP marks of 172.x/10.x addresses
# only by convention; they live in the ingress sandbox, where no VIP mark exists
INGRESS_MARK_BASE = 0x5A000000
PROTO_BITS = {"tcp": 0x10000, "udp": 0x20000, "sctp": 0x30000}
PROTO_NUMBERS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP, "sctp": 132}


class IPVSUnavailable(OSError):
    pass


@dataclass(frozen=True)
class VirtualServer:
    """One firewall-mark service and its real servers (address, port; port 0 keeps the port)."""

    mark: int
    dests: tuple[tuple[str, int], ...]


# ---- pure
def vip_mark(vip: str) -> int:
    """A VIP's firewall mark is its address as a number: unique in the namespace, never 0."""
    return int(ipaddress.IPv4Address(vip))


def ingress_mark(proto: str, port: int) -> int:
    return INGRESS_MARK_BASE | PROTO_BITS[proto.lower()] | port


def task_servers(state: lb.State) -> dict[int, VirtualServer]:
    out: dict[int, VirtualServer] = {}
    for e in state.values():
        if e.backends:
            mark = vip_mark(e.vip)
            out[mark] = VirtualServer(mark, tuple((ip, 0) for ip in e.backends))
    return out


def task_ruleset(state: lb.State) -> list[nft.Cmd]:
    """The task namespace's `shoal_lb` table for the IPVS backend: marks and the reject set."""
    marks = [[e.vip, vip_mark(e.vip)] for e in sorted(state.values(), key=lambda e: e.vip) if e.backends]
    empty = sorted({e.vip for e in state.values() if not e.backends})
    body: list[nft.Cmd] = [
        _mark_map(MARKS_MAP, "ipv4_addr", marks),
        nft.set_(TABLE, lb.EMPTY_SET, "ipv4_addr", empty),
        nft.chain(TABLE, MARK_CHAIN, hook="output", kind="filter", prio=MANGLE_PRIORITY),
        nft.chain(TABLE, lb.REJECT, hook="output", kind="filter", prio=0),
        nft.rule(TABLE, MARK_CHAIN, _set_mark(nft.payload("ip", "daddr"), MARKS_MAP)),
        nft.rule(TABLE, lb.REJECT, nft.match(nft.payload("ip", "daddr"), "@" + lb.EMPTY_SET), nft.reject()),
    ]
    return nft.replace_table(TABLE, body)


def ingress_servers(published: list[Published]) -> dict[int, VirtualServer]:
    out: dict[int, VirtualServer] = {}
    for p in published:
        backends = sorted(set(p.backends))
        if p.mode != "ingress" or not backends:
            continue  # no backend: the port stays closed
        mark = ingress_mark(p.protocol, p.published_port)
        out[mark] = VirtualServer(mark, tuple((ip, p.target_port) for ip in backends))
    return out


def ingress_ruleset(published: list[Published], gw_if: str, overlay_if: str) -> list[nft.Cmd]:
    """The ingress sandbox's `shoal_mesh` table for the IPVS backend."""
    from shoal.net import mesh

    marks = [
        [nft.concat(proto, port), mark]
        for (proto, port), mark in sorted(
            {
                (p.protocol.lower(), p.published_port): ingress_mark(p.protocol, p.published_port)
                for p in published
                if p.mode == "ingress" and p.backends
            }.items()
        )
    ]
    body: list[nft.Cmd] = [
        _mark_map("ports", ["inet_proto", "inet_service"], marks, table=mesh.TABLE),
        nft.chain(mesh.TABLE, "prerouting", hook="prerouting", kind="filter", prio=MANGLE_PRIORITY),
        nft.chain(mesh.TABLE, "postrouting", hook="postrouting", prio=nft.NAT_PRIORITY_SRC),
        nft.chain(mesh.TABLE, "clamp", hook="postrouting", kind="filter", prio=0),
        nft.rule(
            mesh.TABLE,
            "prerouting",
            nft.match(nft.meta("iifname"), gw_if),
            _set_mark(nft.concat(nft.meta("l4proto"), nft.payload("th", "dport")), "ports"),
        ),
        # IPVS's connections to the backends leave with the client's address: answer through here
        nft.rule(
            mesh.TABLE,
            "postrouting",
            nft.match(nft.meta("oifname"), overlay_if),
            nft.match({"&": [nft.meta("mark"), 0xFF000000]}, INGRESS_MARK_BASE),
            nft.masquerade(),
        ),
        # clients sit behind 1500-byte links, backends behind the 1450-byte overlay
        nft.rule(mesh.TABLE, "clamp", nft.match(nft.meta("oifname"), overlay_if), *nft.clamp_mss()),
    ]
    return nft.replace_table(mesh.TABLE, body)


def _mark_map(name: str, key_type: str | list[str], elems: list[list[object]], table: str = TABLE) -> nft.Cmd:
    body: dict[str, object] = {"family": nft.FAMILY, "table": table, "name": name, "type": key_type, "map": "mark"}
    if elems:
        body["elem"] = elems
    return {"map": body}


def _set_mark(key: nft.Expr, map_name: str) -> nft.Expr:
    """meta mark set KEY map @MAP (the map of the rule's own table; no element: no mark)."""
    return {"mangle": {"key": nft.meta("mark"), "value": {"map": {"key": key, "data": "@" + map_name}}}}


def plan(current: dict[int, VirtualServer], wanted: dict[int, VirtualServer]) -> list[tuple[str, int, tuple]]:
    """IPVS changes turning `current` into `wanted`: (op, mark, dest) with op in add-service,
    del-service, add-dest, del-dest (dest () for service ops). Pure, for tests."""
    ops: list[tuple[str, int, tuple]] = []
    for mark in sorted(current.keys() - wanted.keys()):
        ops.append(("del-service", mark, ()))
    for mark in sorted(wanted):
        have = set(current[mark].dests) if mark in current else None
        if have is None:
            ops.append(("add-service", mark, ()))
            have = set()
        want = set(wanted[mark].dests)
        ops += [("del-dest", mark, d) for d in sorted(have - want)]
        ops += [("add-dest", mark, d) for d in sorted(want - have)]
    return ops


# ---- kernel
def available() -> bool:
    """Whether IPVS can be used here: loads ip_vs if it is a module of this kernel."""
    if os.path.exists("/proc/net/ip_vs"):
        return True
    if not lb.ipvs_available():
        return False
    subprocess.run(["modprobe", "ip_vs"], capture_output=True, check=False)
    return os.path.exists("/proc/net/ip_vs")


def _open():  # type: ignore[no-untyped-def]
    try:
        from pyroute2 import IPVS
    except ImportError as exc:  # pragma: no cover - pyroute2 without IPVS support
        raise IPVSUnavailable(f"pyroute2 has no IPVS support: {exc}") from exc
    try:
        return IPVS()
    except Exception as exc:  # the generic netlink family is missing: ip_vs not loaded
        raise IPVSUnavailable(f"IPVS is not available in this kernel: {exc}") from exc


def _service(mark: int):  # type: ignore[no-untyped-def]
    from pyroute2 import IPVSService

    return IPVSService(fwmark=mark, af=socket.AF_INET, sched_name=SCHEDULER, netmask="255.255.255.255")


def _read(ipvs) -> dict[int, VirtualServer]:  # type: ignore[no-untyped-def]
    from pyroute2 import IPVSDest, IPVSService

    out: dict[int, VirtualServer] = {}
    for msg in ipvs.service("dump"):
        svc = IPVSService.from_message(msg)
        mark = int(svc.get("fwmark") or 0)
        if not mark:
            continue  # not ours: shoal only makes firewall-mark services
        dests = []
        for d in ipvs.dest("dump", service=_service(mark)):
            dest = IPVSDest.from_message(d)
            dests.append((str(dest["addr"]), int(dest["port"])))
        out[mark] = VirtualServer(mark, tuple(sorted(dests)))
    return out


def sync(path: str | None, wanted: dict[int, VirtualServer]) -> int:
    """Make the namespace's firewall-mark services exactly `wanted` (shoal owns every firewall-mark
    service of its task namespaces and of the ingress sandbox). Returns how many changes were made."""

    def work() -> int:
        from pyroute2 import IPVSDest

        with _open() as ipvs:
            ops = plan(_read(ipvs), wanted)
            for op, mark, dest in ops:
                svc = _service(mark)
                if op == "add-service":
                    ipvs.service("add", service=svc)
                elif op == "del-service":
                    ipvs.service("del", service=svc)
                else:
                    d = IPVSDest(addr=dest[0], port=dest[1], fwd_method=FWD_MASQ, weight=1)
                    ipvs.dest("add" if op == "add-dest" else "del", service=svc, dest=d)
            return len(ops)

    return ns.run(path, work)


def read(path: str | None) -> dict[int, VirtualServer]:
    def work() -> dict[int, VirtualServer]:
        with _open() as ipvs:
            return _read(ipvs)

    return ns.run(path, work)


def clear(path: str | None) -> None:
    """Remove every firewall-mark service of the namespace (switching to the nftables backend)."""
    sync(path, {})
