"""Links shared by the overlay and the gateway bridge: veth endpoints between a bridge's
namespace and a task's namespace, found again by the owner written in their alias.

The alias (IFLA_IFALIAS) is how the dataplane remembers, in the kernel itself, which task owns a
bridge-side veth and which gateway address it got: an agent restart loses nothing.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from shoal.net import ns

ALIAS_TAG = "shoal"
IFF_UP = 0x1


@dataclass(frozen=True)
class Endpoint:
    """A veth pair: `side` in the bridge's namespace (None: the host), `ifname` in the task."""

    side_netns: str | None
    side_name: str
    bridge: str
    alias: str
    mtu: int
    isolated: bool  # bridge port isolation (no traffic to other isolated ports)
    task_netns: str
    ifname: str
    mac: str
    address: str  # "10.0.1.5/24"


def side_name(prefix: str, owner: str) -> str:
    return (prefix + owner)[:15]  # IFNAMSIZ


def alias_for(owner: str, *extra: str) -> str:
    return " ".join([ALIAS_TAG, owner, *extra])


def parse_alias(alias: str | None) -> list[str] | None:
    """[owner, extra...] of one of our aliases, None for anything else."""
    parts = (alias or "").split()
    return parts[1:] if len(parts) >= 2 and parts[0] == ALIAS_TAG else None


def lookup(ipr: IPRoute, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def delete(ipr: IPRoute, ifname: str) -> bool:
    idx = lookup(ipr, ifname)
    if idx is None:
        return False
    with contextlib.suppress(NetlinkError):  # gone meanwhile (its peer's namespace ended)
        ipr.link("del", index=idx)
    return True


def owned(ipr: IPRoute, master: str | None = None) -> dict[str, tuple[str, list[str]]]:
    """{owner: (ifname, extra alias words)} for our veths (on bridge `master` if given)."""
    master_idx = lookup(ipr, master) if master else None
    out: dict[str, tuple[str, list[str]]] = {}
    for link in ipr.get_links():
        parsed = parse_alias(link.get("IFLA_IFALIAS"))
        if parsed is None or (master_idx is not None and link.get("IFLA_MASTER") != master_idx):
            continue
        out[parsed[0]] = (link.get("IFLA_IFNAME"), parsed[1:])
    return out


def task_addresses(ipr: IPRoute, ifname: str) -> tuple[str, list[str]] | None:
    """(mac, ["ip/prefix", ...]) of `ifname` in the namespace of `ipr`, None if absent."""
    idx = lookup(ipr, ifname)
    if idx is None:
        return None
    link = ipr.get_links(idx)[0]
    addrs = [f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(family=2, index=idx)]
    return str(link.get("IFLA_ADDRESS") or ""), addrs


def endpoint_present(ep: Endpoint) -> bool:
    """Both ends there, the task end with the right MAC and address, the side end ours."""

    def side(ipr: IPRoute) -> bool:
        idx = lookup(ipr, ep.side_name)
        return idx is not None and ipr.get_links(idx)[0].get("IFLA_IFALIAS") == ep.alias

    def task(ipr: IPRoute) -> bool:
        found = task_addresses(ipr, ep.ifname)
        return found is not None and found[0] == ep.mac and found[1] == [ep.address]

    return ns.iproute(ep.side_netns, side) and ns.iproute(ep.task_netns, task)


def create_endpoint(ep: Endpoint) -> None:
    """Make the pair (replacing stale halves); on failure neither half is left."""
    owner = (parse_alias(ep.alias) or [""])[0]

    def clear_side(ipr: IPRoute) -> None:
        idx = lookup(ipr, ep.side_name)
        if idx is not None:
            other = parse_alias(ipr.get_links(idx)[0].get("IFLA_IFALIAS"))
            if other is None or other[0] != owner:
                # names keep only a prefix of the owner (IFNAMSIZ): never take another's link
                raise OSError(f"interface {ep.side_name} exists and is not {owner}'s")
            delete(ipr, ep.side_name)

    ns.iproute(ep.side_netns, clear_side)
    ns.iproute(ep.task_netns, lambda ipr: delete(ipr, ep.ifname))

    def side(ipr: IPRoute) -> None:
        fd = os.open(ep.task_netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            # the task end is born in the task namespace under its final name: no renames,
            # no moment where it sits in the sandbox under a name that could clash
            peer: dict[str, Any] = {"ifname": ep.ifname, "net_ns_fd": fd, "address": ep.mac, "mtu": ep.mtu}
            ipr.link("add", ifname=ep.side_name, kind="veth", mtu=ep.mtu, peer=peer)
        finally:
            os.close(fd)
        try:
            idx = lookup(ipr, ep.side_name)
            ipr.link("set", index=idx, ifalias=ep.alias)
            ipr.link("set", index=idx, master=lookup(ipr, ep.bridge))
            if ep.isolated:
                ipr.brport("set", index=idx, isolated=1)
            ipr.link("set", index=idx, state="up")
        except BaseException:
            delete(ipr, ep.side_name)
            raise

    ns.iproute(ep.side_netns, side)

    def task(ipr: IPRoute) -> None:
        idx = lookup(ipr, ep.ifname)
        ip, prefix = ep.address.split("/")
        ipr.addr("replace", index=idx, address=ip, prefixlen=int(prefix))
        ipr.link("set", index=idx, state="up")

    try:
        ns.iproute(ep.task_netns, task)
    except BaseException:
        ns.iproute(ep.side_netns, lambda ipr: delete(ipr, ep.side_name))
        raise
