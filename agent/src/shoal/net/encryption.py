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
* Leftovers: an agent killed with -9 leaves its states, policies and table in the kernel, and the
  networks may be gone by the time it restarts. At its first program (whatever it wants, even
  nothing) and whenever the encrypted set becomes empty, it lists the kernel's states and policies,
  picks shoal's own (states by shoal's reqid, policies by shoal's mark: never anything else) and
  deletes those the current plan does not want, as libnetwork's clearEncryptionStates does at start;
  the wanted ones that are still there are re-keyed in place (`state update`), so traffic of a
  restarted agent's networks keeps flowing.

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


# ---- what an earlier run left in the kernel (pure)
PolicyID = tuple[str, str, int]  # (src, dst, dport) of an outbound policy with shoal's mark
_STATE_HEAD = re.compile(r"^src (\S+) dst (\S+)\s+proto esp spi (0x[0-9a-f]+) reqid (\d+)")
_POLICY_HEAD = re.compile(r"^src (\S+?)(?:/32)? dst (\S+?)(?:/32)? proto udp dport (\d+)\s+dir out\b")
_POLICY_MARK = re.compile(r"\smark 0x([0-9a-f]+)/0xffffffff\b")


def owned_states(listing: str) -> set[StateID]:
    """The ESP states carrying shoal's reqid in `ip -o xfrm state list` (one state a line; the keys
    on those lines are neither kept nor returned)."""
    found = set()
    for line in listing.splitlines():
        m = _STATE_HEAD.match(line.replace("\\", " "))
        if m and int(m[4]) == REQID:
            found.add((m[1], m[2], int(m[3], 16)))
    return found


def owned_policies(listing: str) -> set[PolicyID]:
    """The outbound policies with shoal's mark (mask all ones) in `ip -o xfrm policy list`."""
    found = set()
    for line in listing.splitlines():
        flat = line.replace("\\", " ")
        m, mark = _POLICY_HEAD.match(flat), _POLICY_MARK.search(flat)
        if m and mark and int(mark[1], 16) == MARK:
            found.add((m[1], m[2], int(m[3])))
    return found


def stale_lines(states: set[StateID], policies: set[PolicyID], node_ip: str, want: Plan) -> list[str]:
    """Delete lines for what shoal left that `want` does not hold: policies first (a policy without
    its state would drop the marked packets), then states."""
    keep = {(node_ip, peer, want.port) for peer in want.policies}
    lines = [f"xfrm policy delete {policy_selector(src, dst, port)}" for src, dst, port in sorted(policies - keep)]
    return lines + [state_delete_line(sid) for sid in sorted(states - set(want.states))]


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

    def sweep(self, want: Plan) -> set[StateID]:
        """Delete what shoal has in the kernel that `want` does not hold (module docstring); return
        the wanted states that are there already. The kernel is the truth here, not `current`."""
        try:
            states = owned_states(ns.exec_in(self.netns, ["ip", "-o", "xfrm", "state", "list"]))
            policies = owned_policies(ns.exec_in(self.netns, ["ip", "-o", "xfrm", "policy", "list"]))
        except OSError as exc:
            if want.states:
                raise OSError("ip xfrm: " + scrub(str(exc))) from None
            return set()  # a kernel without xfrm holds nothing of shoal's
        run_batch(self.netns, stale_lines(states, policies, self.node_ip, want), force=True)
        if not want.vnis:
            with contextlib.suppress(nft.NftError):
                nft.delete_table(self.netns, TABLE)
        return states & set(want.states)

    def _program(self, want: Plan) -> None:
        empty = Plan({}, {}, frozenset(), want.port)
        have = self.current
        if want == empty and self._clean and not have.states and not have.policies and not have.vnis:
            return  # nothing encrypted here since the sweep: no `ip` to run
        present: set[StateID] = set()
        if not self._clean:  # whatever an earlier run (or a failed batch) left: the kernel says
            present = self.sweep(want)
            self._clean = True
            self.current = have = Plan({}, {}, frozenset(), 0)
            if want == empty:
                self.current = want
                return
        adds = [
            xfrm.state_add_line(*sid, key, reqid=REQID, verb="update" if sid in present else "add")
            for sid, key in sorted(want.states.items())
            if sid not in have.states
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
        if have.states and not want.states:  # the last encrypted network went: nothing of shoal's stays
            self.sweep(want)

    def clear(self) -> None:
        self.program(Plan({}, {}, frozenset(), self.current.port))
