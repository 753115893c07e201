"""Encrypted overlays on one node: IPsec ESP transport-mode states and policies per peer node, and
the nftables rules that send only the encrypted networks' VXLAN packets through them (as
libnetwork's drivers/overlay/encryption.go, with nftables instead of iptables).

* Outbound: a `route` chain on the output hook marks UDP packets to the cluster's data path port
  whose VXLAN header carries an encrypted network's VNI (raw payload `@th,96,24`, the 24-bit VNI
  after the UDP header and the VXLAN flags); the xfrm policy per peer selects only marked packets,
  so plain networks to the same peer stay plain. A `route` chain re-routes (and so re-looks-up
  xfrm) when it changes the mark, as iptables' mangle table does for Docker.
* Inbound: VXLAN for an encrypted VNI that did not come out of ESP (`meta secpath missing`) is
  dropped: a peer cannot be made to accept plain packets on an encrypted network.
* States: for every peer and every key of the ring, one state each way (SPIs from
  `model.netkeys.spi`); the policy's template names the primary key's SPI. A rotation adds the
  new key's states first, then moves the policy to the new primary, then deletes the dropped key's.

States and policies are programmed with iproute2 (`ip -batch -` on stdin, `net/xfrm.py`): pyroute2
0.9 has no XFRM state/policy API. Keys travel only on stdin, never on a command line, and errors
are scrubbed of anything that looks like key material before they are raised.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shoal.model import netkeys
from shoal.net import nft, ns, xfrm

TABLE = "shoal_encrypt"
MARK = 0x5E0A1C  # the packet mark of encrypted networks' VXLAN packets (Docker's is 0xD0C4E3)
REQID = 0x5E0A  # ties the states to the policies' templates; every state shoal adds has it
ROUTE_PRIORITY = -150  # mangle
VNI_OFFSET_BITS = 96  # after the 8-byte UDP header and the VXLAN flags + reserved (4 bytes)

StateID = tuple[str, str, int]  # (src, dst, spi)


@dataclass(frozen=True)
class Plan:
    """What one node must hold (pure; keys kept out of repr)."""

    states: dict[StateID, bytes] = field(repr=False)
    policies: dict[str, int]  # peer node IP -> SPI of the outbound state the policy uses
    vnis: frozenset[int]
    port: int


def plan(node_ip: str, peers: Iterable[str], vnis: Iterable[int], port: int, ring: Sequence[Mapping[str, Any]]) -> Plan:
    peers = sorted({p for p in peers if p != node_ip})
    vni_set = frozenset(vnis)
    if not ring or not vni_set or not peers:  # nothing to encrypt, so no rule either
        return Plan({}, {}, frozenset(), port)
    states: dict[StateID, bytes] = {}
    for key in ring:
        raw, tag = netkeys.key_bytes(key), int(key["LamportTime"])
        for peer in peers:
            states[(node_ip, peer, netkeys.spi(node_ip, peer, tag))] = raw
            states[(peer, node_ip, netkeys.spi(peer, node_ip, tag))] = raw
    tag = int(netkeys.primary(ring)["LamportTime"])
    policies = {peer: netkeys.spi(node_ip, peer, tag) for peer in peers}
    return Plan(states, policies, vni_set, port)


# ---- ip -batch lines (pure)
def state_delete_line(sid: StateID) -> str:
    src, dst, spi = sid
    return f"xfrm state delete src {src} dst {dst} proto esp spi 0x{spi:08x}"


def policy_selector(node_ip: str, peer: str, port: int) -> str:
    return f"src {node_ip}/32 dst {peer}/32 proto udp dport {port} dir out mark 0x{MARK:x} mask 0xffffffff"


def policy_update_line(node_ip: str, peer: str, port: int, spi: int) -> str:
    return (
        f"xfrm policy update {policy_selector(node_ip, peer, port)} "
        f"tmpl src {node_ip} dst {peer} proto esp spi 0x{spi:08x} reqid {REQID} mode transport"
    )


def policy_delete_line(node_ip: str, peer: str, port: int) -> str:
    return f"xfrm policy delete {policy_selector(node_ip, peer, port)}"


# ---- nftables (pure)
def vni_match(vnis: Iterable[int]) -> list[nft.Expr]:
    """`udp dport` is matched by the caller; this is the VNI in the VXLAN header."""
    raw = {"payload": {"base": "th", "offset": VNI_OFFSET_BITS, "len": 24}}
    values = sorted(vnis)
    right: Any = values[0] if len(values) == 1 else {"set": values}
    return [nft.match(raw, right)]


def ruleset(vnis: Iterable[int], port: int) -> list[nft.Cmd]:
    """The table that marks encrypted VNIs on the way out and drops them unencrypted on the way in."""
    vnis = sorted(vnis)
    if not vnis:
        return []
    udp = nft.match(nft.payload("udp", "dport"), port)
    body = [
        nft.chain(TABLE, "mark", hook="output", kind="route", prio=ROUTE_PRIORITY),
        nft.rule(TABLE, "mark", udp, *vni_match(vnis), {"mangle": {"key": nft.meta("mark"), "value": MARK}}),
        nft.chain(TABLE, "plain_in", hook="input", kind="filter", prio=0),
        nft.rule(TABLE, "plain_in", udp, *vni_match(vnis), nft.match(nft.meta("secpath"), False), {"drop": None}),
    ]
    return nft.replace_table(TABLE, body)


_KEYISH = re.compile(r"(0x)?[0-9a-fA-F]{24,}")


def scrub(text: str) -> str:
    """An iproute2 error may quote the argument it choked on: never let key material through."""
    return _KEYISH.sub("<redacted>", text)


def run_batch(netns: str | None, lines: list[str], force: bool = False) -> None:
    if not lines:
        return
    argv = ["ip", *(["-force"] if force else []), "-batch", "-"]
    try:
        ns.exec_in(netns, argv, stdin="\n".join(lines) + "\n", timeout=60)
    except OSError as exc:
        raise OSError("ip xfrm: " + scrub(str(exc))) from None


class Encryption:
    """The encryption state of one node, in its own (underlay) namespace; not thread-safe (the
    dataplane calls it under its lock)."""

    def __init__(self, node_ip: str, netns: str | None = None) -> None:
        self.node_ip = node_ip
        self.netns = netns
        self.current = Plan({}, {}, frozenset(), 0)
        self._clean = False

    def program(self, want: Plan) -> None:
        """Move from what is installed to `want` in the order that keeps traffic flowing. A batch
        that failed half-way left some of its lines applied: the next call starts from none."""
        try:
            self._program(want)
        except BaseException:
            self._clean = False
            raise

    def _program(self, want: Plan) -> None:
        empty = Plan({}, {}, frozenset(), want.port)
        if want == empty and self.current.states == {} and not self.current.policies and not self.current.vnis:
            return  # nothing encrypted here, nor ever was: no `ip` to run
        if not self._clean:  # states left by an earlier run of the agent (crash): start from none
            run_batch(self.netns, [f"xfrm state deleteall reqid {REQID}"], force=True)
            self._clean = True
            self.current = Plan({}, {}, frozenset(), 0)
        have = self.current
        adds = [
            xfrm.state_add_line(src, dst, spi, key, reqid=REQID)
            for (src, dst, spi), key in sorted(want.states.items())
            if (src, dst, spi) not in have.states
        ]
        run_batch(self.netns, adds)
        self.current = Plan({**have.states, **want.states}, have.policies, have.vnis, have.port)
        moved_port = have.port != want.port
        policies = [
            policy_update_line(self.node_ip, peer, want.port, spi)
            for peer, spi in sorted(want.policies.items())
            if moved_port or have.policies.get(peer) != spi
        ]
        run_batch(self.netns, policies)
        if have.vnis != want.vnis or moved_port:
            if want.vnis and want.policies:
                nft.apply(self.netns, ruleset(want.vnis, want.port))
            else:
                with contextlib.suppress(nft.NftError):
                    nft.delete_table(self.netns, TABLE)
        gone_policies = [
            policy_delete_line(self.node_ip, peer, have.port)
            for peer in sorted(have.policies)
            if peer not in want.policies or moved_port
        ]
        run_batch(self.netns, gone_policies, force=True)
        run_batch(self.netns, [state_delete_line(s) for s in sorted(have.states) if s not in want.states], force=True)
        self.current = want

    def clear(self) -> None:
        self.program(Plan({}, {}, frozenset(), self.current.port))
