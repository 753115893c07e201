"""Overlay network objects (Docker's Network shape) and their subnets and VNIs (pure).

Subnets come from the cluster's default address pools (`swarm init --default-addr-pool`, Docker's
10.0.0.0/8) in subnets of its SubnetSize (/24) unless given; overlaps are refused. The ingress
network keeps its own subnet (10.255.0.0/16) whatever the pools: a pool that covers it skips it. VNIs
start at 4096, which the `ingress` network takes at init.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from shoal.errors import SpecError
from shoal.model.objects import DEFAULT_ADDR_POOL, DEFAULT_SUBNET_SIZE
from shoal.model.validate import known_fields, not_supported_yet

INGRESS_NAME = "ingress"
INGRESS_SUBNET = "10.255.0.0/16"
FIRST_VNI = 4096
VXLAN_OPTION = "com.docker.network.driver.overlay.vxlanid_list"
ENCRYPTED_OPTION = "encrypted"
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")

# a local bridge, not a swarm object: a fixed ID (64 hex characters, as docker's) names it on every node
GWBRIDGE_ID = hashlib.sha256(b"shoal_gwbridge").hexdigest()
GWBRIDGE = {
    "Name": "shoal_gwbridge",
    "Id": GWBRIDGE_ID,
    "Created": "0001-01-01T00:00:00Z",
    "Scope": "local",
    "Driver": "bridge",
    "EnableIPv4": True,
    "EnableIPv6": False,
    "IPAM": {"Driver": "default", "Options": None, "Config": [{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]},
    "Internal": False,
    "Attachable": False,
    "Ingress": False,
    "Containers": {},
    "Options": {
        "com.docker.network.bridge.enable_icc": "false",
        "com.docker.network.bridge.enable_ip_masquerade": "true",
        "com.docker.network.bridge.name": "shoal_gwbridge",
    },
    "Labels": {},
}


def is_encrypted(network: dict[str, Any]) -> bool:
    """`--opt encrypted`: Docker encrypts when the option is present, whatever its value."""
    return ENCRYPTED_OPTION in ((network.get("Spec") or {}).get("DriverConfiguration") or {}).get("Options", {})


def vni_of(network: dict[str, Any]) -> int:
    return int(network["DriverState"]["Options"][VXLAN_OPTION])


def subnet_of(network: dict[str, Any]) -> ipaddress.IPv4Network:
    return _parsed_subnet(network["IPAM"]["Configs"][0]["Subnet"])


@lru_cache(maxsize=1024)
def _parsed_subnet(text: str) -> ipaddress.IPv4Network:
    """Parsed once per subnet (networks are few; the allocator asks once per address it takes: 3,000
    parses in the pass that replaces 100 lost nodes' tasks, a fifth of it). IPv4Network is immutable."""
    return ipaddress.ip_network(text)  # type: ignore[return-value]


def gateway_of(network: dict[str, Any]) -> str:
    return network["IPAM"]["Configs"][0]["Gateway"]


def mac_of(address: str) -> str:
    """Docker's MAC for an IPv4 endpoint: 02:42 followed by the address bytes."""
    ip = address.split("/")[0]
    octets = ip.split(".")
    # the plain dotted quad without ipaddress (a manager derives 30,000 of these per snapshot);
    # anything else (leading zeros, IPv6, garbage) is ipaddress's to accept or refuse
    if len(octets) == 4 and all(o.isascii() and o.isdigit() and o == str(int(o)) and int(o) < 256 for o in octets):
        return "02:42:" + ":".join(f"{int(o):02x}" for o in octets)
    packed = ipaddress.ip_address(ip).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in packed)


def free_vni(networks: Iterable[dict[str, Any]], start: int = FIRST_VNI + 1) -> int:
    used = {vni_of(n) for n in networks}
    vni = start
    while vni in used:
        vni += 1
    return vni


def free_subnet(
    networks: Iterable[dict[str, Any]], pools: Iterable[str] = DEFAULT_ADDR_POOL, size: int = DEFAULT_SUBNET_SIZE
) -> str:
    """The first subnet of `size` in the pools, in their order, that overlaps no network's subnet."""
    taken = [subnet_of(n) for n in networks]
    pools = list(pools)
    for pool in pools:
        for candidate in ipaddress.ip_network(pool).subnets(new_prefix=size):
            if not any(candidate.overlaps(t) for t in taken):
                return str(candidate)
    # Docker's words (libnetwork ipam.ErrNoMoreSubnets)
    raise SpecError(
        f"could not find an available, non-overlapping IPv4 address pool among the defaults "
        f"to assign to the network ({', '.join(pools)} in /{size} subnets)"
    )


def validate_create(
    body: dict[str, Any],
    networks: list[dict[str, Any]],
    pools: Iterable[str] = DEFAULT_ADDR_POOL,
    subnet_size: int = DEFAULT_SUBNET_SIZE,
) -> dict[str, Any]:
    """The normalized request: Name, Driver, Subnet, Gateway, Internal, Attachable, Labels, Options.
    A network without a subnet gets one from `pools` (the cluster's DefaultAddrPool/SubnetSize)."""
    known = {
        "Name",
        "Driver",
        "Internal",
        "Attachable",
        "Ingress",
        "IPAM",
        "Options",
        "Labels",
        "CheckDuplicate",
        "EnableIPv6",
        "Scope",
        "ConfigOnly",
        "ConfigFrom",
        "EnableIPv4",
    }
    body = known_fields("network create request", body, known)
    name = body.get("Name")
    if not isinstance(name, str) or not name or not NAME_RE.match(name) or len(name) > 63:
        raise SpecError(f"invalid network name {name!r}")
    if any(n["Spec"]["Name"] == name for n in networks):
        raise SpecError(f"network with name {name} already exists")
    driver = body.get("Driver") or "overlay"
    if driver != "overlay":
        raise SpecError(f"only the overlay driver can create swarm-scoped networks, not {driver!r}")
    if body.get("Ingress"):
        raise SpecError("an ingress network already exists: there can be only one")
    if body.get("EnableIPv6"):
        raise SpecError("IPv6 overlay networks are not supported")
    ipam = known_fields("IPAM", body.get("IPAM") or {}, ("Driver", "Config", "Options"))
    configs = ipam.get("Config") or []
    if not isinstance(configs, list) or len(configs) > 1:
        raise SpecError("exactly one IPAM config (one IPv4 subnet) is supported")
    config = configs[0] if configs else {}
    if not isinstance(config, dict):
        raise SpecError("invalid IPAM config")
    config = known_fields("IPAM.Config", config, ("Subnet", "IPRange", "Gateway", "AuxiliaryAddresses"))
    for where, value, in_effect in (
        ("IPAM.Driver", ipam.get("Driver") or "default", "default"),
        ("IPAM.Options", ipam.get("Options") or {}, {}),
        ("IPAM.Config.IPRange", config.get("IPRange") or "", ""),
        ("IPAM.Config.AuxiliaryAddresses", config.get("AuxiliaryAddresses") or {}, {}),
        ("Scope", body.get("Scope") or "swarm", "swarm"),
        ("ConfigOnly", bool(body.get("ConfigOnly")), False),
        ("ConfigFrom", (body.get("ConfigFrom") or {}).get("Network") or "", ""),
        ("EnableIPv4", body.get("EnableIPv4") is not False, True),
    ):
        if value != in_effect:
            raise not_supported_yet(where, value, in_effect)
    subnet = config.get("Subnet")
    if subnet:
        try:
            net = ipaddress.ip_network(subnet, strict=True)
        except ValueError as exc:
            raise SpecError(f"invalid subnet {subnet!r}: {exc}") from exc
        if net.version != 4 or net.prefixlen > 29:
            raise SpecError(f"invalid subnet {subnet}: an IPv4 subnet of /29 or larger is needed")
        for other in networks:
            if subnet_of(other).overlaps(net):
                raise SpecError(
                    f"subnet {subnet} overlaps with the subnet of network {other['Spec']['Name']} ({subnet_of(other)})"
                )
    else:
        net = ipaddress.ip_network(free_subnet(networks, pools, subnet_size))
    gateway = config.get("Gateway")
    if gateway:
        try:
            gw = ipaddress.ip_address(gateway)
        except ValueError as exc:
            raise SpecError(f"invalid gateway {gateway!r}") from exc
        if gw not in net or gw in (net.network_address, net.broadcast_address):
            raise SpecError(f"gateway {gateway} is not a usable address of subnet {net}")
    else:
        gateway = str(net.network_address + 1)
    labels = body.get("Labels") or {}
    options = body.get("Options") or {}
    for what, value in (("Labels", labels), ("Options", options)):
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise SpecError(f"{what} must be a map of strings")
    return {
        "Name": name,
        "Subnet": str(net),
        "Gateway": gateway,
        "Internal": bool(body.get("Internal")),
        "Attachable": bool(body.get("Attachable")),
        "Labels": labels,
        "Options": options,
    }


def network_object(network_id: str, req: dict[str, Any], vni: int, now: str, ingress: bool = False) -> dict[str, Any]:
    """SwarmKit's stored network (Spec + DriverState + IPAM); `docker_view` turns it into the API shape."""
    ipam = {"Driver": {"Name": "default"}, "Configs": [{"Subnet": req["Subnet"], "Gateway": req["Gateway"]}]}
    return {
        "ID": network_id,
        "Version": {"Index": 0},
        "CreatedAt": now,
        "UpdatedAt": now,
        "Spec": {
            "Name": req["Name"],
            "Labels": req.get("Labels", {}),
            "DriverConfiguration": {"Name": "overlay", "Options": req.get("Options", {})},
            "IPAMOptions": ipam,
            "Internal": req.get("Internal", False),
            "Attachable": req.get("Attachable", False),
            "Ingress": ingress,
        },
        "DriverState": {"Name": "overlay", "Options": {VXLAN_OPTION: str(vni)}},
        "IPAM": ipam,
    }


def ingress_object(network_id: str, now: str) -> dict[str, Any]:
    req = {"Name": INGRESS_NAME, "Subnet": INGRESS_SUBNET, "Gateway": "10.255.0.1", "Labels": {}, "Options": {}}
    return network_object(network_id, req, FIRST_VNI, now, ingress=True)


def docker_view(network: dict[str, Any], peers: list[dict[str, str]], containers: dict[str, Any]) -> dict[str, Any]:
    """GET /networks shape (the one `docker network inspect` prints)."""
    spec = network["Spec"]
    options = dict(network["DriverState"]["Options"])
    if is_encrypted(network):  # as Docker shows it: the option with the value it was given
        options[ENCRYPTED_OPTION] = spec["DriverConfiguration"]["Options"][ENCRYPTED_OPTION]
    return {
        "Name": spec["Name"],
        "Id": network["ID"],
        "Created": network["CreatedAt"],
        "Scope": "swarm",
        "Driver": "overlay",
        "EnableIPv4": True,
        "EnableIPv6": False,
        "IPAM": {
            "Driver": "default",
            "Options": None,
            "Config": [{"Subnet": c["Subnet"], "Gateway": c["Gateway"]} for c in network["IPAM"]["Configs"]],
        },
        "Internal": spec["Internal"],
        "Attachable": spec["Attachable"],
        "Ingress": spec["Ingress"],
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": containers,
        "Options": options,
        "Labels": spec["Labels"],
        "Peers": peers,
    }
