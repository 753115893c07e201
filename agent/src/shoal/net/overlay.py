"""One overlay network on one node: namespace `1-<id[:10]>` with `br0` and a VXLAN device, and
the static FDB and neighbour entries for its remote endpoints (DESIGN.md §5, notes #3-#5)."""

from __future__ import annotations

import contextlib
import socket

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import ndmsg

from shoal.net import links, ns
from shoal.net.model import VXLAN_PORT, ZERO_MAC, NetAttachment, Peer, mac_for

BRIDGE = "br0"
ENDPOINT_PREFIX = "ve"
NUD_PERMANENT = ndmsg.states["permanent"]
NTF_SELF = ndmsg.flags["self"]


def vxlan_name(vni: int) -> str:
    return f"vxlan{vni}"


def disable_ipv6() -> None:
    """IPv6 ND and router solicitations would be flooded to every node (notes #5)."""
    for scope in ("all", "default"):
        with contextlib.suppress(OSError):  # kernel without IPv6
            ns.sysctl_write(f"net.ipv6.conf.{scope}.disable_ipv6", "1")


def sandbox_ready(path: str, att: NetAttachment) -> bool:
    if not ns.exists(path):
        return False

    def check(ipr: IPRoute) -> bool:
        br, vx = links.lookup(ipr, BRIDGE), links.lookup(ipr, vxlan_name(att.vni))
        if br is None or vx is None:
            return False
        addrs = [(a.get("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(family=2, index=br)]
        up = all(ipr.get_links(i)[0]["flags"] & links.IFF_UP for i in (br, vx))
        return up and (att.gateway, att.prefixlen) in addrs

    return ns.iproute(path, check)


def create_sandbox(name: str, netns_dir: str, att: NetAttachment, node_ip: str, port: int = VXLAN_PORT) -> str:
    """Make the namespace, br0 and the VXLAN device; on failure nothing of it is left."""
    path = ns.create(name, netns_dir)
    try:
        ns.run(path, disable_ipv6)

        def bridge(ipr: IPRoute) -> None:
            links.delete(ipr, BRIDGE)  # half a sandbox from an earlier failure
            # a fixed MAC: a bridge otherwise takes its lowest port's, which changes as tasks
            # come and go and leaves stale ARP entries behind
            ipr.link("add", ifname=BRIDGE, kind="bridge", mtu=att.mtu, address=mac_for(att.gateway))
            idx = links.lookup(ipr, BRIDGE)
            ipr.addr("add", index=idx, address=att.gateway, prefixlen=att.prefixlen)
            ipr.link("set", index=idx, state="up")

        ns.iproute(path, bridge)
        vx = vxlan_name(att.vni)

        def make_vxlan(ipr: IPRoute) -> None:
            # created in the host namespace so that its UDP socket sees the underlay, then
            # moved: created inside the sandbox, every packet is lost (notes #3)
            links.delete(ipr, vx)
            ipr.link(
                "add",
                ifname=vx,
                kind="vxlan",
                vxlan_id=att.vni,
                vxlan_port=port,  # the cluster's DataPathPort
                vxlan_local=node_ip,
                vxlan_learning=0,  # remote MACs only come from set_peers
                vxlan_proxy=1,  # answer ARP from the neighbour entries: no ARP on the wire
                mtu=att.mtu,
            )
            try:
                ipr.link("set", index=links.lookup(ipr, vx), net_ns_fd=path)
            except BaseException:
                links.delete(ipr, vx)
                raise

        ns.iproute(None, make_vxlan)

        def enslave(ipr: IPRoute) -> None:
            idx = links.lookup(ipr, vx)
            ipr.link("set", index=idx, master=links.lookup(ipr, BRIDGE))
            ipr.link("set", index=idx, state="up")

        ns.iproute(path, enslave)
    except BaseException:
        remove_sandbox(name, netns_dir)
        raise
    return path


def remove_sandbox(name: str, netns_dir: str) -> None:
    """Delete its links (synchronously, not when the namespace is reaped) and the namespace."""
    path = ns.path_of(name, netns_dir)
    if ns.exists(path):

        def wipe(ipr: IPRoute) -> None:
            for link in ipr.get_links():
                if link.get("IFLA_IFNAME") != "lo":
                    with contextlib.suppress(NetlinkError):
                        ipr.link("del", index=link["index"])

        ns.iproute(path, wipe)
    ns.remove(name, netns_dir)


def endpoint(sandbox: str, owner: str, task_netns: str, ifname: str, att: NetAttachment) -> links.Endpoint:
    return links.Endpoint(
        side_netns=sandbox,
        side_name=links.side_name(ENDPOINT_PREFIX, owner),
        bridge=BRIDGE,
        alias=links.alias_for(owner),
        mtu=att.mtu,
        isolated=False,
        task_netns=task_netns,
        ifname=ifname,
        mac=att.mac,
        address=att.address,
    )


def endpoint_owners(sandbox: str) -> dict[str, str]:
    """{owner: sandbox-side ifname} of the local endpoints plugged into br0."""
    found = ns.iproute(sandbox, lambda ipr: links.owned(ipr, BRIDGE))
    return {owner: ifname for owner, (ifname, _) in found.items()}


def remove_endpoint(sandbox: str, owner: str) -> bool:
    def drop(ipr: IPRoute) -> bool:
        for o, (ifname, _) in links.owned(ipr).items():
            if o == owner:
                return links.delete(ipr, ifname)
        return False

    return ns.iproute(sandbox, drop)


# ---- peers
def desired_entries(node_ip: str, peers: list[Peer]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(FDB {(mac, node)}, neighbours {(ip, mac)}) for the remote peers; flood entries (the
    all-zero MAC to each remote node) carry broadcast and unknown unicast."""
    remote = [p for p in peers if p.node_ip != node_ip]
    fdb = {(p.mac.lower(), p.node_ip) for p in remote}
    fdb |= {(ZERO_MAC, p.node_ip) for p in remote}
    neigh = {(p.ip, p.mac.lower()) for p in remote}
    return fdb, neigh


def current_entries(ipr: IPRoute, vx: int) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    fdb = set()
    for m in ipr.get_neighbours(family=socket.AF_BRIDGE):
        dst = m.get("NDA_DST")
        if m["ifindex"] == vx and dst and m.get("NDA_LLADDR"):
            fdb.add((m.get("NDA_LLADDR").lower(), dst))
    neigh = set()
    for m in ipr.get_neighbours(family=socket.AF_INET, ifindex=vx):
        if m["state"] & NUD_PERMANENT and m.get("NDA_LLADDR"):
            neigh.add((m.get("NDA_DST"), m.get("NDA_LLADDR").lower()))
    return fdb, neigh


def sync_peers(sandbox: str, vni: int | None, node_ip: str, peers: list[Peer]) -> tuple[int, int]:
    """Make the sandbox hold exactly these peers' entries; returns (added, removed)."""
    want_fdb, want_neigh = desired_entries(node_ip, peers)

    def sync(ipr: IPRoute) -> tuple[int, int]:
        vx = links.lookup(ipr, vxlan_name(vni)) if vni is not None else vxlan_index(ipr)
        if vx is None:
            raise OSError(f"no VXLAN device in {sandbox}")
        have_fdb, have_neigh = current_entries(ipr, vx)
        for ip, mac in have_neigh - want_neigh:
            with contextlib.suppress(NetlinkError):
                ipr.neigh("del", dst=ip, lladdr=mac, ifindex=vx)
        for mac, dst in have_fdb - want_fdb:
            with contextlib.suppress(NetlinkError):
                ipr.fdb("del", ifindex=vx, lladdr=mac, dst=dst)
        for mac, dst in sorted(want_fdb - have_fdb):
            # append: the all-zero MAC has one entry per remote node
            ipr.fdb("append", ifindex=vx, lladdr=mac, dst=dst)
        for ip, mac in sorted(want_neigh - have_neigh):
            ipr.neigh("replace", dst=ip, lladdr=mac, ifindex=vx, state=NUD_PERMANENT)
        added = len(want_fdb - have_fdb) + len(want_neigh - have_neigh)
        return added, len(have_fdb - want_fdb) + len(have_neigh - want_neigh)

    return ns.iproute(sandbox, sync)


def vxlan_index(ipr: IPRoute) -> int | None:
    for link in ipr.get_links():
        info = link.get("IFLA_LINKINFO")
        if info is not None and info.get("IFLA_INFO_KIND") == "vxlan":
            return int(link["index"])
    return None
