"""nftables through `nft -j -f -` inside a namespace: JSON builders and the runner.

pyroute2 only has raw nftables expressions (no maps, vmaps or atomic batches), so the dataplane
hands whole JSON batches to nft; one `nft -f` input is one kernel transaction (notes #10).
Quirks this module encodes (notes #7): `priority dstnat` is refused on the output hook, so
priorities are numbers; a `dnat to IP:port` needs a `meta l4proto` match before it.
"""

from __future__ import annotations

import json
from typing import Any

from shoal.net import ns

FAMILY = "ip"
NAT_PRIORITY_DST = -100  # dstnat, as a number (the name is refused on output)
NAT_PRIORITY_SRC = 100  # srcnat

Cmd = dict[str, Any]
Expr = dict[str, Any]


class NftError(OSError):
    pass


# ---- objects
def table(name: str) -> Cmd:
    return {"table": {"family": FAMILY, "name": name}}


def chain(tbl: str, name: str, hook: str | None = None, kind: str = "nat", prio: int = 0) -> Cmd:
    body: dict[str, Any] = {"family": FAMILY, "table": tbl, "name": name}
    if hook:
        body.update(type=kind, hook=hook, prio=prio, policy="accept")
    return {"chain": body}


def rule(tbl: str, chn: str, *expr: Expr) -> Cmd:
    return {"rule": {"family": FAMILY, "table": tbl, "chain": chn, "expr": list(expr)}}


def verdict_map(tbl: str, name: str, key_type: str | list[str], elems: list[list[Any]]) -> Cmd:
    body: dict[str, Any] = {"family": FAMILY, "table": tbl, "name": name, "type": key_type, "map": "verdict"}
    if elems:
        body["elem"] = elems
    return {"map": body}


def set_(tbl: str, name: str, key_type: str, elems: list[Any]) -> Cmd:
    body: dict[str, Any] = {"family": FAMILY, "table": tbl, "name": name, "type": key_type}
    if elems:
        body["elem"] = elems
    return {"set": body}


def element(tbl: str, name: str, elems: list[Any]) -> Cmd:
    return {"element": {"family": FAMILY, "table": tbl, "name": name, "elem": elems}}


# ---- expressions
def payload(protocol: str, field: str) -> Expr:
    return {"payload": {"protocol": protocol, "field": field}}


def meta(key: str) -> Expr:
    return {"meta": {"key": key}}


def concat(*parts: Any) -> Expr:
    return {"concat": list(parts)}


def match(left: Any, right: Any, op: str = "==") -> Expr:
    return {"match": {"op": op, "left": left, "right": right}}


def goto(target: str) -> Expr:
    return {"goto": {"target": target}}


def vmap(key: Any, data: Any) -> Expr:
    return {"vmap": {"key": key, "data": data}}


def round_robin(targets: list[str]) -> Expr:
    """numgen inc mod N to one of the chains: the per-connection round robin of notes #9."""
    return vmap(
        {"numgen": {"mode": "inc", "mod": len(targets), "offset": 0}},
        {"set": [[i, goto(t)] for i, t in enumerate(targets)]},
    )


def dnat(addr: str, port: int | None = None) -> Expr:
    body: dict[str, Any] = {"addr": addr}
    if port is not None:
        body["port"] = port
    return {"dnat": body}


def l4proto(proto: str) -> Expr:
    return match(meta("l4proto"), proto)


def daddr_local() -> Expr:
    return match({"fib": {"result": "type", "flags": ["daddr"]}}, "local")


def masquerade() -> Expr:
    return {"masquerade": None}


def reject() -> Expr:
    return {"reject": None}


def clamp_mss() -> list[Expr]:
    """tcp flags syn tcp option maxseg size set rt mtu"""
    return [
        match(payload("tcp", "flags"), "syn", op="in"),
        {"mangle": {"key": {"tcp option": {"name": "maxseg", "field": "size"}}, "value": {"rt": {"key": "mtu"}}}},
    ]


# ---- batches
def replace_table(name: str, body: list[Cmd]) -> list[Cmd]:
    """Atomic replacement: `add` makes sure the table exists so that `delete` never fails."""
    return [{"add": table(name)}, {"delete": table(name)}, {"add": table(name)}, *({"add": c} for c in body)]


def document(commands: list[Cmd]) -> str:
    return json.dumps({"nftables": commands}, separators=(",", ":"))


def apply(netns: str | None, commands: list[Cmd]) -> None:
    """Run one batch (one transaction) in the namespace at `netns` (None: this one)."""
    if not commands:
        return
    try:
        ns.exec_in(netns, ["nft", "-j", "-f", "-"], stdin=document(commands))
    except OSError as exc:
        raise NftError(f"nft: {exc}") from None


def delete_table(netns: str | None, name: str) -> None:
    """Remove table `name` if it is there (add-then-delete in one batch never fails on absence)."""
    apply(netns, [{"add": table(name)}, {"delete": table(name)}])


def has_table(netns: str | None, name: str) -> bool:
    """Lists that one table only (listing all tables fetches every rule of every table)."""
    try:
        ns.exec_in(netns, ["nft", "list", "table", FAMILY, name])
    except OSError:
        return False
    return True


def tables(netns: str | None) -> list[str]:
    try:
        out = ns.exec_in(netns, ["nft", "-j", "list", "tables"])
    except OSError as exc:
        raise NftError(f"nft: {exc}") from None
    items = json.loads(out).get("nftables", [])
    return [i["table"]["name"] for i in items if "table" in i and i["table"].get("family") == FAMILY]
