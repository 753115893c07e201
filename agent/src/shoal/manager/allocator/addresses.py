"""Addresses on overlays: task attachments, service VIPs, each node's ingress sandbox, published ports.

Nothing is "released": the addresses in use are read from the objects that hold them, so a deleted
task or service frees its addresses with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shoal.errors import SpecError
from shoal.model.network import gateway_of, subnet_of

PUBLISHED_RANGE = (30000, 32767)


class UsedAddresses(dict[str, set[str]]):
    """Network ID -> addresses in use, and per network the lowest address that may still be free.

    Within one allocation pass addresses are only taken, never freed, so every address below the
    cursor is known taken and the next lowest free one is searched from there: searching from the
    subnet's start each time made allocating N addresses O(N^2) (5,000 tasks: 20 s of the
    leader's event loop)."""

    def __init__(self) -> None:
        super().__init__()
        self.cursor: dict[str, int] = {}


def used_addresses(
    tasks: Iterable[dict[str, Any]], services: Iterable[dict[str, Any]], nodes: Iterable[dict[str, Any]]
) -> UsedAddresses:
    used = UsedAddresses()
    for t in tasks:
        for att in t.get("NetworksAttachments") or []:
            for addr in att.get("Addresses") or []:
                used.setdefault(att["Network"]["ID"], set()).add(addr.split("/")[0])
    for s in services:
        for vip in (s.get("Endpoint") or {}).get("VirtualIPs") or []:
            used.setdefault(vip["NetworkID"], set()).add(vip["Addr"].split("/")[0])
    for n in nodes:
        for att in n.get("Attachments") or []:
            for addr in att.get("Addresses") or []:
                used.setdefault(att["Network"]["ID"], set()).add(addr.split("/")[0])
    return used


def _dotted(value: int) -> str:
    """str(IPv4Address(value)) at a tenth of its cost: the first take of a pass walks past every
    address in use (30,000 at scale, 0.15 s of a pass through ipaddress)."""
    return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


def take_address(network: dict[str, Any], used: dict[str, set[str]]) -> str:
    """The lowest free host address ("ip/prefix"), marking it used."""
    net = subnet_of(network)
    taken = used.setdefault(network["ID"], set())
    gateway = gateway_of(network)
    cursor = used.cursor if isinstance(used, UsedAddresses) else {}
    first = int(net.network_address) + (1 if net.num_addresses > 2 else 0)  # /31, /32: every address
    last = int(net.broadcast_address) - (1 if net.num_addresses > 2 else 0)
    for value in range(cursor.get(network["ID"], first), last + 1):
        ip = _dotted(value)
        if ip != gateway and ip not in taken:
            taken.add(ip)
            cursor[network["ID"]] = value + 1
            return f"{ip}/{net.prefixlen}"
    raise SpecError(f"no address left on network {network['Spec']['Name']} ({net})")


def published_in_use(services: Iterable[dict[str, Any]], skip_service: str | None = None) -> dict[tuple[int, str], str]:
    out = {}
    for s in services:
        if s["ID"] == skip_service:
            continue
        for p in (s.get("Endpoint") or {}).get("Ports") or []:
            if p.get("PublishedPort"):
                out[(int(p["PublishedPort"]), p.get("Protocol", "tcp"))] = s["Spec"]["Name"]
    return out


def allocate_ports(
    spec_ports: list[dict[str, Any]],
    services: Iterable[dict[str, Any]],
    service_id: str | None,
    current: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Endpoint.Ports: published ports auto-assigned from 30000-32767 when 0 (kept across updates); a
    port another service publishes is refused."""
    in_use = published_in_use(services, skip_service=service_id)
    previous = {
        (p["TargetPort"], p.get("Protocol", "tcp"), p.get("PublishMode", "ingress")): p["PublishedPort"]
        for p in current or []
        if p.get("PublishedPort")
    }
    out = []
    for p in spec_ports:
        proto = p.get("Protocol", "tcp")
        port = dict(p, Protocol=proto, PublishMode=p.get("PublishMode", "ingress"))
        if not port.get("Name"):
            port.pop("Name", None)  # as Docker shows it: no empty name
        published = int(p.get("PublishedPort") or 0)
        if published:
            owner = in_use.get((published, proto))
            if owner is not None:
                raise SpecError(f"port '{published}' is already in use by service '{owner}' as an ingress port")
        else:
            published = previous.get((p["TargetPort"], proto, port["PublishMode"]), 0)
            if not published:
                taken = {k[0] for k in in_use if k[1] == proto} | {q.get("PublishedPort") for q in out}
                published = next((n for n in range(PUBLISHED_RANGE[0], PUBLISHED_RANGE[1] + 1) if n not in taken), 0)
                if not published:
                    raise SpecError("no published port left in 30000-32767")
        port["PublishedPort"] = published
        in_use[(published, proto)] = "this service"
        out.append(port)
    return out
