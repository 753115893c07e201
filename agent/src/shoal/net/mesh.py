"""Routing mesh rulesets (pure): table `shoal_mesh` in the host namespace and in `ingress_sbox`.

Host: a published ingress port on any local address is DNATed to the ingress sandbox's gateway
leg (prerouting for other machines, output for this one, never loopback: that would need
route_localnet). Host-mode ports go straight to the local task's gateway leg.
ingress_sbox: round robin over the backends' ingress-overlay addresses, then masquerade to its
own ingress address: without that the backend answers the client directly and the connection,
NATed here, never completes (notes/dataplane.md "routing mesh").
"""

from __future__ import annotations

from dataclasses import dataclass

from shoal.net import nft
from shoal.net.model import Published

TABLE = "shoal_mesh"
SBOX_OVERLAY_IF = "eth0"  # the ingress_sbox's leg on the ingress overlay
SBOX_GW_IF = "eth1"  # its leg on the gateway bridge


@dataclass(frozen=True)
class HostTarget:
    """Where the host sends a published port: one address (ingress_sbox) or local tasks."""

    proto: str
    port: int
    addrs: tuple[str, ...]
    target_port: int | None  # None: keep the port (the ingress sandbox translates it)


def _port_match(proto: str, port: int) -> list[nft.Expr]:
    return [nft.l4proto(proto), nft.match(nft.payload("th", "dport"), port)]


def _chain_name(kind: str, proto: str, port: int, ip: str | None = None) -> str:
    return f"{kind}-{proto}-{port}" + (f"-{ip}" if ip else "")


def host_ruleset(targets: list[HostTarget]) -> list[nft.Cmd]:
    body: list[nft.Cmd] = [
        nft.chain(TABLE, "prerouting", hook="prerouting", prio=nft.NAT_PRIORITY_DST),
        nft.chain(TABLE, "output", hook="output", prio=nft.NAT_PRIORITY_DST),
    ]
    loopback = {"prefix": {"addr": "127.0.0.0", "len": 8}}
    for t in sorted(targets, key=lambda t: (t.proto, t.port)):
        if not t.addrs:
            continue
        if len(t.addrs) == 1:
            verdict: list[nft.Expr] = [nft.l4proto(t.proto), nft.dnat(t.addrs[0], t.target_port)]
        else:  # several local tasks publish the same host port: take turns
            eps = [_chain_name("host", t.proto, t.port, ip) for ip in t.addrs]
            for ep, ip in zip(eps, t.addrs, strict=True):
                body += [nft.chain(TABLE, ep), nft.rule(TABLE, ep, nft.l4proto(t.proto), nft.dnat(ip, t.target_port))]
            verdict = [nft.round_robin(eps)]
        match = [nft.daddr_local(), *_port_match(t.proto, t.port)]
        body.append(nft.rule(TABLE, "prerouting", *match, *verdict))
        body.append(
            nft.rule(TABLE, "output", nft.match(nft.payload("ip", "daddr"), loopback, op="!="), *match, *verdict)
        )
    return nft.replace_table(TABLE, body)


def sbox_ruleset(published: list[Published]) -> list[nft.Cmd]:
    body: list[nft.Cmd] = [
        nft.verdict_map(TABLE, "ports", ["inet_proto", "inet_service"], []),
        nft.chain(TABLE, "prerouting", hook="prerouting", prio=nft.NAT_PRIORITY_DST),
        nft.chain(TABLE, "postrouting", hook="postrouting", prio=nft.NAT_PRIORITY_SRC),
        nft.chain(TABLE, "forward", hook="forward", kind="filter", prio=0),
        nft.rule(
            TABLE,
            "prerouting",
            nft.match(nft.meta("iifname"), SBOX_GW_IF),
            nft.vmap(nft.concat(nft.meta("l4proto"), nft.payload("th", "dport")), "@ports"),
        ),
        nft.rule(
            TABLE,
            "postrouting",
            nft.match({"ct": {"key": "status"}}, "dnat", op="in"),
            nft.match(nft.meta("oifname"), SBOX_OVERLAY_IF),
            nft.masquerade(),
        ),
        # clients sit behind 1500-byte links, backends behind the 1450-byte overlay
        nft.rule(TABLE, "forward", nft.match(nft.meta("oifname"), SBOX_OVERLAY_IF), *nft.clamp_mss()),
    ]
    elems: list[list[object]] = []
    for p in sorted(published, key=lambda p: (p.protocol, p.published_port)):
        backends = sorted(set(p.backends))
        if p.mode != "ingress" or not backends:
            continue  # no backend: the port stays closed (the sandbox answers with a reset)
        proto = p.protocol.lower()
        pub = _chain_name("pub", proto, p.published_port)
        eps = [_chain_name("be", proto, p.published_port, ip) for ip in backends]
        body.append(nft.chain(TABLE, pub))
        for ep, ip in zip(eps, backends, strict=True):
            body += [nft.chain(TABLE, ep), nft.rule(TABLE, ep, nft.l4proto(proto), nft.dnat(ip, p.target_port))]
        body.append(nft.rule(TABLE, pub, nft.round_robin(eps)))
        elems.append([nft.concat(proto, p.published_port), nft.goto(pub)])
    if elems:
        body.append(nft.element(TABLE, "ports", elems))
    return nft.replace_table(TABLE, body)
