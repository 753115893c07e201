"""Service VIPs inside a client task's namespace: nftables table `shoal_lb`, kube-proxy's
nftables layout (notes #9): one `ip daddr . meta l4proto . th dport` verdict-map lookup, a chain
per service doing `numgen inc mod N` round robin to a DNAT chain per backend.

Docker's VIPs forward every port (IPVS on a firewall mark set for the whole VIP), and services
with no declared port are reached by VIP too: a second lookup on `ip daddr` alone catches the
ports the first map does not list. DNAT keeps the port (target port = VIP port, as in Swarm).
A VIP with no running backend is rejected (filter hook) instead of timing out.

Updates are incremental when the last programmed state of the namespace is known: one backend
changing is one small transaction, not a rewrite of 1,000 services.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

from shoal.net import nft
from shoal.net.model import ServiceLB

TABLE = "shoal_lb"
PORTS_MAP = "ports"
VIPS_MAP = "vips"
EMPTY_SET = "no_backends"
OUTPUT = "output"
REJECT = "reject"


@dataclass(frozen=True)
class Entry:
    """A service's VIP on one network, normalised (sorted, deduplicated)."""

    key: str
    vip: str
    ports: tuple[tuple[str, int], ...]
    backends: tuple[str, ...]

    @property
    def chain(self) -> str:
        return f"svc-{self.key}"

    def ep_chain(self, ip: str) -> str:
        return f"ep-{self.key}-{ip}"


State = dict[str, Entry]


def normalise(services: list[ServiceLB]) -> State:
    out: State = {}
    for s in services:
        if s.mode != "vip" or not s.vip:
            continue  # dnsrr: DNS hands out task IPs, nothing to balance here
        key = f"{s.service_id}-{s.network_id[:10]}"
        ports = tuple(sorted({(proto.lower(), int(port)) for port, proto in s.ports}))
        out[key] = Entry(key, s.vip, ports, tuple(sorted(set(s.backends))))
    return out


def _port_elems(e: Entry) -> list[list[object]]:
    return [[nft.concat(e.vip, proto, port), nft.goto(e.chain)] for proto, port in e.ports] if e.backends else []


def _vip_elems(e: Entry) -> list[list[object]]:
    return [[e.vip, nft.goto(e.chain)]] if e.backends else []


def _empty_elems(e: Entry) -> list[str]:
    return [] if e.backends else [e.vip]


def _base() -> list[nft.Cmd]:
    return [
        nft.verdict_map(TABLE, PORTS_MAP, ["ipv4_addr", "inet_proto", "inet_service"], []),
        nft.verdict_map(TABLE, VIPS_MAP, "ipv4_addr", []),
        nft.set_(TABLE, EMPTY_SET, "ipv4_addr", []),
        nft.chain(TABLE, OUTPUT, hook="output", prio=nft.NAT_PRIORITY_DST),
        nft.chain(TABLE, REJECT, hook="output", kind="filter", prio=0),
        nft.rule(
            TABLE,
            OUTPUT,
            nft.vmap(nft.concat(nft.payload("ip", "daddr"), nft.meta("l4proto"), nft.payload("th", "dport")), "@ports"),
        ),
        nft.rule(TABLE, OUTPUT, nft.vmap(nft.payload("ip", "daddr"), "@vips")),
        nft.rule(TABLE, REJECT, nft.match(nft.payload("ip", "daddr"), "@" + EMPTY_SET), nft.reject()),
    ]


def _svc_rule(e: Entry) -> nft.Cmd:
    return nft.rule(TABLE, e.chain, nft.round_robin([e.ep_chain(ip) for ip in e.backends]))


def _ep(e: Entry, ip: str) -> list[nft.Cmd]:
    return [{"add": nft.chain(TABLE, e.ep_chain(ip))}, {"add": nft.rule(TABLE, e.ep_chain(ip), nft.dnat(ip))}]


def full(state: State) -> list[nft.Cmd]:
    """The whole table, replaced atomically."""
    body = _base()
    ports: list[list[object]] = []
    vips: list[list[object]] = []
    empty: list[str] = []
    for e in state.values():
        body.append(nft.chain(TABLE, e.chain))
        for ip in e.backends:
            body += [nft.chain(TABLE, e.ep_chain(ip)), nft.rule(TABLE, e.ep_chain(ip), nft.dnat(ip))]
        if e.backends:
            body.append(_svc_rule(e))
        ports += _port_elems(e)
        vips += _vip_elems(e)
        empty += _empty_elems(e)
    for name, elems in ((PORTS_MAP, ports), (VIPS_MAP, vips), (EMPTY_SET, empty)):
        if elems:
            body.append(nft.element(TABLE, name, elems))
    return nft.replace_table(TABLE, body)


def diff(old: State, new: State) -> list[nft.Cmd]:
    """Commands turning table `old` into `new` in one transaction (empty: nothing to do).
    Order matters: references go before what they point to is deleted."""
    del_elems: list[nft.Cmd] = []
    add_elems: list[nft.Cmd] = []
    flush: list[nft.Cmd] = []
    add_chains: list[nft.Cmd] = []
    svc_rules: list[nft.Cmd] = []
    del_eps: list[nft.Cmd] = []
    del_svcs: list[nft.Cmd] = []
    for key in sorted(old.keys() | new.keys()):
        o, n = old.get(key), new.get(key)
        if o == n:
            continue
        for name, fn in ((PORTS_MAP, _port_elems), (VIPS_MAP, _vip_elems), (EMPTY_SET, _empty_elems)):
            before = fn(o) if o else []
            after = fn(n) if n else []
            gone = [el[0] if isinstance(el, list) else el for el in before if el not in after]
            fresh = [el for el in after if el not in before]
            if gone:
                del_elems.append({"delete": nft.element(TABLE, name, gone)})
            if fresh:
                add_elems.append({"add": nft.element(TABLE, name, fresh)})
        o_be, n_be = set(o.backends) if o else set(), set(n.backends) if n else set()
        if o and (n is None or o.backends != n.backends):
            flush.append({"flush": nft.chain(TABLE, o.chain)})
        if o is None and n:
            add_chains.append({"add": nft.chain(TABLE, n.chain)})
        if n:
            for ip in sorted(n_be - o_be):
                add_chains += _ep(n, ip)
            if n.backends and (o is None or o.backends != n.backends):
                svc_rules.append({"add": _svc_rule(n)})
        if o:
            del_eps += [{"delete": nft.chain(TABLE, o.ep_chain(ip))} for ip in sorted(o_be - n_be)]
            if n is None:
                del_svcs.append({"delete": nft.chain(TABLE, o.chain)})
    return del_elems + flush + add_chains + svc_rules + del_eps + del_svcs + add_elems


def ipvs_available() -> bool:
    """Whether this kernel has IPVS (loaded, or as a module that could be loaded)."""
    if os.path.exists("/proc/net/ip_vs") or os.path.isdir("/sys/module/ip_vs"):
        return True
    return os.path.isdir(f"/lib/modules/{platform.release()}/kernel/net/netfilter/ipvs")
