"""Where this node is reached: one resolver for `swarm init` and `swarm join` (Docker's rules)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from shoal import hostinfo
from shoal.config import Config
from shoal.model.objects import split_addr


@dataclass(frozen=True)
class NodeAddresses:
    advertise_ip: str  # what other nodes dial (an IP, or resolved from an interface name)
    listen_addr: str  # what the cluster port binds
    cluster_port: int  # the listen address's port, else the configured one


async def resolve_addresses(body: dict[str, Any], cfg: Config) -> NodeAddresses:
    """AdvertiseAddr / ListenAddr of an init or join request, defaulting to the node's config."""
    advertise_ip = await asyncio.to_thread(hostinfo.resolve_advertise, body.get("AdvertiseAddr") or cfg.advertise_addr)
    listen_addr = body.get("ListenAddr") or cfg.listen_addr
    _, listen_port = split_addr(listen_addr)
    return NodeAddresses(advertise_ip, listen_addr, listen_port or cfg.cluster_port)
