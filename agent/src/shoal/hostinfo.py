"""Facts about this host: advertise address resolution and the node description.

pyroute2 0.9's synchronous IPRoute runs its own event loop: call these from a thread, never the agent's loop.
"""

from __future__ import annotations

import ipaddress
import os
import platform
import socket
from typing import Any

from pyroute2 import IPRoute

from shoal import __version__
from shoal.errors import InvalidArgument
from shoal.net.links import IFF_UP


def interface_address(name: str) -> str | None:
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=name)
        if not idx:
            return None
        for addr in ipr.get_addr(index=idx[0], family=socket.AF_INET):
            return str(addr.get_attr("IFA_ADDRESS"))
    raise InvalidArgument(f"interface {name} has no IPv4 address")


# Links that carry no host address worth advertising: bridges (shoal_gwbridge, docker0), tunnels, and
# the like. Docker's Linux resolver keeps only links of type "device"; we keep veth too, because a test
# host's or a container's underlay is a veth.
VIRTUAL_LINK_KINDS = frozenset({"bridge", "vxlan", "dummy", "macvlan", "ipvlan", "tun", "wireguard", "geneve"})


def _link_kind(link: Any) -> str | None:
    info = link.get_attr("IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_KIND") if info is not None else None


def local_addresses() -> list[str]:
    """IPv4 addresses on links that are up and not virtual (see VIRTUAL_LINK_KINDS)."""
    with IPRoute() as ipr:
        usable = {
            link["index"]
            for link in ipr.get_links()
            if link["flags"] & IFF_UP and _link_kind(link) not in VIRTUAL_LINK_KINDS
        }
        return [str(a.get_attr("IFA_ADDRESS")) for a in ipr.get_addr(family=socket.AF_INET) if a["index"] in usable]


def resolve_advertise(value: str | None) -> str:
    """An IP, an interface name (`eth0`, as `--advertise-addr ens33` in the seed), or auto-detect.

    A port suffix ("10.0.0.1:2377") is accepted and dropped: the ports are the agent's own.
    """
    if value:
        host = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
        try:
            return str(ipaddress.ip_address(host))
        except ValueError:
            pass
        addr = interface_address(host)
        if addr is None:
            raise InvalidArgument(
                f"advertise address must be a non-zero IP address or network interface (got {value!r})"
            )
        return addr
    candidates = [a for a in local_addresses() if not a.startswith("127.")]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise InvalidArgument(
            "could not choose an IP address to advertise since this system has no non-loopback address"
        )
    raise InvalidArgument(
        "could not choose an IP address to advertise since this system has multiple addresses "
        f"({', '.join(candidates)}): specify one with --advertise-addr"
    )


def description() -> dict[str, Any]:
    mem = 0
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    return {
        "Hostname": socket.gethostname(),
        "Platform": {"Architecture": platform.machine(), "OS": "linux"},
        "Resources": {"NanoCPUs": (os.cpu_count() or 1) * 1_000_000_000, "MemoryBytes": mem},
        "Engine": {"EngineVersion": __version__, "Labels": {}},
        "Dataplane": dataplane(),
    }


def dataplane() -> dict[str, Any]:
    """Whether this kernel can encrypt overlays (probed once, in a scratch namespace: net/xfrm.py)."""
    from shoal.net import xfrm

    ok, reason = xfrm.esp_support()
    return {"EncryptedOverlay": ok, "Reason": reason}
