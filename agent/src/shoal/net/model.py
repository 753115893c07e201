"""What the agent hands the dataplane: plain values, no kernel access (DESIGN.md §5)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal

UNDERLAY_MTU = 1500  # libnetwork's default when the network has no com.docker.network.driver.mtu
VXLAN_OVERHEAD = 50  # outer IPv4 20 + UDP 8 + VXLAN 8 + the inner Ethernet header 14
# set explicitly: vxlan without a parent device would take 1500 (notes/dataplane.md #4)
MTU = UNDERLAY_MTU - VXLAN_OVERHEAD
# ESP in transport mode with rfc4106(gcm(aes)) (net/xfrm.py): SPI 4 + sequence 4 + IV 8 + pad length 1
# + next header 1 + ICV. Docker's pktExpansion is 26 because its ICV is 8 bytes; shoal's is 16.
ESP_ICV_BYTES = 16
ESP_OVERHEAD = 4 + 4 + 8 + 1 + 1 + ESP_ICV_BYTES
VXLAN_PORT = 4789
GW_BRIDGE = "shoal_gwbridge"
INGRESS_SBOX = "ingress_sbox"
SANDBOX_PREFIX = "1-"
ZERO_MAC = "00:00:00:00:00:00"


class DataplaneError(RuntimeError):
    """A dataplane call failed; whatever that call had created was removed again."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def mac_for(ip: str) -> str:
    """Docker's MAC for an IPv4 address: 02:42 and the four address bytes."""
    packed = ipaddress.IPv4Address(ip.split("/", 1)[0]).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in packed)


def overlay_mtu(encrypted: bool) -> int:
    """The MTU of an overlay's task interfaces, bridge and VXLAN device, as libnetwork's
    network.maxMTU: an encrypted network leaves room for ESP and for the padding that aligns
    ESP's trailer to 4 bytes, so that an encrypted packet is never fragmented on the underlay."""
    mtu = MTU
    if encrypted:
        mtu -= ESP_OVERHEAD
        mtu -= mtu % 4
    return mtu


def sandbox_name(network_id: str) -> str:
    """The network's namespace on a node, named as libnetwork names it."""
    return SANDBOX_PREFIX + network_id[:10]


@dataclass(frozen=True)
class NetAttachment:
    """One task interface on an overlay network."""

    network_id: str
    vni: int
    subnet: str  # "10.0.1.0/24"
    gateway: str  # "10.0.1.1"
    address: str  # "10.0.1.5/24"
    mac: str = ""  # derived from the address when empty
    internal: bool = False
    ingress: bool = False
    encrypted: bool = False  # `--opt encrypted`: ESP between nodes, so a smaller MTU

    def __post_init__(self) -> None:
        iface = ipaddress.IPv4Interface(self.address)
        net = ipaddress.IPv4Network(self.subnet)
        if iface.network != net:
            raise ValueError(f"address {self.address} is not in subnet {self.subnet}")
        if ipaddress.IPv4Address(self.gateway) not in net:
            raise ValueError(f"gateway {self.gateway} is not in subnet {self.subnet}")
        if not 1 <= self.vni < 1 << 24:
            raise ValueError(f"bad VXLAN id {self.vni}")
        if not self.mac:
            object.__setattr__(self, "mac", mac_for(self.address))

    @property
    def ip(self) -> str:
        return self.address.split("/", 1)[0]

    @property
    def prefixlen(self) -> int:
        return ipaddress.IPv4Network(self.subnet).prefixlen

    @property
    def mtu(self) -> int:
        return overlay_mtu(self.encrypted)


@dataclass(frozen=True)
class Peer:
    """An endpoint of `network_id` on another node (a task, or a node's ingress sandbox)."""

    network_id: str
    ip: str
    mac: str
    node_ip: str


@dataclass(frozen=True)
class ServiceLB:
    """A service's VIP on one network as seen from a client task."""

    service_id: str
    network_id: str
    vip: str | None
    ports: list[tuple[int, str]] = field(default_factory=list)  # (target port, "tcp"|"udp")
    backends: list[str] = field(default_factory=list)  # running tasks' IPs on that network
    mode: Literal["vip", "dnsrr"] = "vip"


@dataclass(frozen=True)
class Published:
    """A published port of a service on this node."""

    published_port: int
    protocol: str  # "tcp" | "udp"
    target_port: int
    mode: Literal["ingress", "host"] = "ingress"
    backends: list[str] = field(default_factory=list)
