"""The node's gateway bridge `shoal_gwbridge`: tasks of non-internal networks (and the ingress
sandbox) get a leg on it for traffic that leaves the overlays, masqueraded by table `shoal_gw`.

Inter-task traffic on the bridge is off (Docker's icc=false) through bridge port isolation:
isolated ports reach the bridge (the host) but not each other, whatever br_netfilter does.
Leg addresses are written in the host-side veth's alias, so allocation needs no memory of its own.
"""

from __future__ import annotations

import contextlib
import ipaddress

from pyroute2 import IPRoute

from shoal.net import links, nft, ns
from shoal.net.model import GW_BRIDGE, mac_for

TABLE = "shoal_gw"
LEG_PREFIX = "gw"
LEG_MTU = 1500  # not an overlay: the underlay's MTU (the seed's gateway legs have 1500)


class Gateway:
    def __init__(self, subnet: str) -> None:
        self.subnet = ipaddress.IPv4Network(subnet)
        self.address = str(next(self.subnet.hosts()))  # 172.18.0.1

    # ---- the bridge
    def present(self) -> bool:
        def check(ipr: IPRoute) -> bool:
            idx = links.lookup(ipr, GW_BRIDGE)
            return idx is not None and bool(ipr.get_links(idx)[0]["flags"] & links.IFF_UP)

        return ns.iproute(None, check) and nft.has_table(None, TABLE)

    def ensure(self) -> bool:
        """Bridge, address, forwarding on it, masquerade; True if this call made it."""
        if self.present():
            return False
        existed = ns.iproute(None, lambda ipr: links.lookup(ipr, GW_BRIDGE) is not None)
        try:

            def make(ipr: IPRoute) -> None:
                if links.lookup(ipr, GW_BRIDGE) is None:
                    # fixed MAC: see overlay.create_sandbox
                    ipr.link("add", ifname=GW_BRIDGE, kind="bridge", address=mac_for(self.address))
                idx = links.lookup(ipr, GW_BRIDGE)
                ipr.addr("replace", index=idx, address=self.address, prefixlen=self.subnet.prefixlen)
                ipr.link("set", index=idx, state="up")
                # per-interface forwarding (what lets task traffic leave through the host);
                # the host-wide ip_forward is never touched
                ns.sysctl_write(f"net.ipv4.conf.{GW_BRIDGE}.forwarding", "1")

            ns.iproute(None, make)
            nft.apply(None, nft.replace_table(TABLE, self.ruleset()))
        except BaseException:
            if not existed:  # never take down a bridge that other tasks' legs hang on
                self.remove()
            raise
        return not existed

    def ruleset(self) -> list[nft.Cmd]:
        net = {"prefix": {"addr": str(self.subnet.network_address), "len": self.subnet.prefixlen}}
        return [
            nft.chain(TABLE, "postrouting", hook="postrouting", prio=nft.NAT_PRIORITY_SRC),
            nft.rule(
                TABLE,
                "postrouting",
                nft.match(nft.payload("ip", "saddr"), net),
                nft.match(nft.meta("oifname"), GW_BRIDGE, op="!="),
                nft.masquerade(),
            ),
        ]

    def remove(self) -> None:
        """The bridge with every leg (their task ends go with them) and the table."""

        def drop(ipr: IPRoute) -> None:
            for _, (ifname, _) in links.owned(ipr, GW_BRIDGE).items():
                links.delete(ipr, ifname)
            links.delete(ipr, GW_BRIDGE)

        ns.iproute(None, drop)
        with contextlib.suppress(nft.NftError):
            nft.delete_table(None, TABLE)

    # ---- legs
    def legs(self) -> dict[str, tuple[str, str, list[str]]]:
        """{owner: (host-side ifname, leg IP, overlay IPs)}"""
        found = ns.iproute(None, lambda ipr: links.owned(ipr, GW_BRIDGE))
        out = {}
        for owner, (ifname, extra) in found.items():
            ip = extra[0] if extra else ""
            overlay = extra[1].split(",") if len(extra) > 1 and extra[1] else []
            out[owner] = (ifname, ip, overlay)
        return out

    def allocate(self, taken: set[str]) -> str:
        """Lowest free address after the bridge's own."""
        for host in self.subnet.hosts():
            ip = str(host)
            if ip != self.address and ip not in taken:
                return ip
        raise OSError(f"no free address left in {self.subnet}")

    def endpoint(self, owner: str, task_netns: str, ifname: str, ip: str, overlay_ips: list[str]) -> links.Endpoint:
        return links.Endpoint(
            side_netns=None,
            side_name=links.side_name(LEG_PREFIX, owner),
            bridge=GW_BRIDGE,
            alias=links.alias_for(owner, ip, ",".join(overlay_ips)),
            mtu=LEG_MTU,
            isolated=True,
            task_netns=task_netns,
            ifname=ifname,
            mac=mac_for(ip),
            address=f"{ip}/{self.subnet.prefixlen}",
        )

    def remove_leg(self, owner: str) -> bool:
        def drop(ipr: IPRoute) -> bool:
            for o, (ifname, _) in links.owned(ipr, GW_BRIDGE).items():
                if o == owner:
                    return links.delete(ipr, ifname)
            return False

        return ns.iproute(None, drop)
