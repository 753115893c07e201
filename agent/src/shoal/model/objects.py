"""Constructors of Docker-shaped objects (Swarm/ClusterInfo, Node) as plain JSON-ready dicts.

They are pure: IDs, timestamps and addresses come from the caller, so that a command proposed to
Raft carries exactly what every replica stores. `Version.Index` starts at 0; the store sets it
to the Raft index of the commit.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from shoal import __version__
from shoal.errors import SpecError
from shoal.model.tlsinfo import tls_info

DATA_PATH_PORT = 4789
DEFAULT_ADDR_POOL = ("10.0.0.0/8",)
DEFAULT_SUBNET_SIZE = 24
MANAGER_PORT = 2377

# Docker's `docker swarm init` defaults except the dispatcher heartbeat: shoal's workers beat every
# second (Docker: 5s) so that failover is quick on a small cluster.
DEFAULT_HEARTBEAT_PERIOD = 1_000_000_000
DEFAULT_NODE_CERT_EXPIRY = 90 * 24 * 3600 * 1_000_000_000  # 2160h, Docker's default

NODE_ROLES = ("worker", "manager")
NODE_AVAILABILITIES = ("active", "pause", "drain")
NODE_STATES = ("unknown", "down", "ready", "disconnected")
REACHABILITIES = ("unknown", "unreachable", "reachable")


def default_swarm_spec() -> dict[str, Any]:
    """A fresh SwarmSpec with every field set, as `docker swarm inspect` shows after `init`."""
    return {
        "Name": "default",
        "Labels": {},
        "Orchestration": {"TaskHistoryRetentionLimit": 5},
        "Raft": {
            "SnapshotInterval": 10000,
            "KeepOldSnapshots": 0,
            "LogEntriesForSlowFollowers": 500,
            "ElectionTick": 10,
            "HeartbeatTick": 1,
        },
        "Dispatcher": {"HeartbeatPeriod": DEFAULT_HEARTBEAT_PERIOD},
        "CAConfig": {"NodeCertExpiry": DEFAULT_NODE_CERT_EXPIRY},
        "TaskDefaults": {},
        "EncryptionConfig": {"AutoLockManagers": False},
    }


def new_cluster(
    cluster_id: str,
    spec: Mapping[str, Any],
    ca_cert_pem: str | bytes,
    tokens: Mapping[str, str],
    now: str,
    *,
    data_path_port: int = DATA_PATH_PORT,
    default_addr_pool: Iterable[str] = DEFAULT_ADDR_POOL,
    subnet_size: int = DEFAULT_SUBNET_SIZE,
) -> dict[str, Any]:
    """The cluster object shaped like `Swarm` (GET /swarm); `cluster_info()` drops the tokens.

    `spec` should already be validated (`validate_swarm_spec`); `tokens` is {"Worker", "Manager"}.
    """
    return {
        "ID": cluster_id,
        "Version": {"Index": 0},
        "CreatedAt": now,
        "UpdatedAt": now,
        "Spec": copy.deepcopy(dict(spec)),
        "TLSInfo": tls_info(ca_cert_pem),
        "RootRotationInProgress": False,
        "DefaultAddrPool": list(default_addr_pool),
        "SubnetSize": subnet_size,
        "DataPathPort": data_path_port or DATA_PATH_PORT,  # 0 means the default, as in Docker
        "JoinTokens": {"Worker": tokens["Worker"], "Manager": tokens["Manager"]},
    }


def cluster_info(cluster: Mapping[str, Any]) -> dict[str, Any]:
    """`ClusterInfo` for GET /info: the Swarm object without its join tokens."""
    return {k: copy.deepcopy(v) for k, v in cluster.items() if k != "JoinTokens"}


def split_addr(addr: str) -> tuple[str, int | None]:
    """("10.0.0.1", 2377) from "10.0.0.1:2377", ("fd00::1", None) from "fd00::1" or "[fd00::1]"."""
    addr = addr.strip()
    if addr.startswith("["):
        host, sep, rest = addr[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise SpecError(f"invalid address {addr!r}")
        port = rest[1:] or None
    elif addr.count(":") == 1:
        host, port = addr.split(":")
    else:  # a bare IPv4 address, hostname, or an unbracketed IPv6 address
        host, port = addr, None
    if not host:
        raise SpecError(f"invalid address {addr!r}: no host")
    if port is None:
        return host, None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise SpecError(f"invalid address {addr!r}: bad port {port!r}")
    return host, int(port)


def join_addr(host: str, port: int) -> str:
    """ "host:port", with IPv6 addresses in brackets."""
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


def manager_status(addr: str, *, leader: bool = False, reachability: str = "reachable") -> dict[str, Any]:
    """`ManagerStatus`: `addr` is the advertise address; the port defaults to 2377."""
    if reachability not in REACHABILITIES:
        raise ValueError(f"bad reachability {reachability!r}")
    host, port = split_addr(addr)
    return {"Leader": leader, "Reachability": reachability, "Addr": join_addr(host, port or MANAGER_PORT)}


def new_node(
    node_id: str,
    hostname: str,
    role: str,
    addr: str,
    now: str,
    platform: Mapping[str, str] | None = None,
    resources: Mapping[str, int] | None = None,
    engine_labels: Mapping[str, str] | None = None,
    *,
    engine_version: str = __version__,
    tls: Mapping[str, str] | None = None,
    state: str = "ready",
    leader: bool = False,
    reachability: str = "reachable",
    availability: str = "active",
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A Node as GET /nodes shows it. `addr` is the node's advertise address ("ip" or "ip:port"):
    Status.Addr gets the bare IP; managers get ManagerStatus.Addr "ip:2377" (or the given port).
    `tls` is the node's `TLSInfo` (see `tls_info(ca_pem)`); omitted when unknown.
    """
    if role not in NODE_ROLES:
        raise ValueError(f"bad role {role!r}")
    if state not in NODE_STATES:
        raise ValueError(f"bad node state {state!r}")
    if availability not in NODE_AVAILABILITIES:
        raise ValueError(f"bad availability {availability!r}")
    host, _ = split_addr(addr)
    platform = platform or {}
    resources = resources or {}
    description: dict[str, Any] = {
        "Hostname": hostname,
        "Platform": {"Architecture": platform.get("Architecture", ""), "OS": platform.get("OS", "linux")},
        "Resources": {
            "NanoCPUs": int(resources.get("NanoCPUs", 0)),
            "MemoryBytes": int(resources.get("MemoryBytes", 0)),
        },
        "Engine": {"EngineVersion": engine_version, "Labels": dict(engine_labels or {})},
    }
    if tls is not None:
        description["TLSInfo"] = dict(tls)
    node: dict[str, Any] = {
        "ID": node_id,
        "Version": {"Index": 0},
        "CreatedAt": now,
        "UpdatedAt": now,
        "Spec": {"Labels": dict(labels or {}), "Role": role, "Availability": availability},
        "Description": description,
        "Status": {"State": state, "Addr": host},
    }
    if role == "manager":
        node["ManagerStatus"] = manager_status(addr, leader=leader, reachability=reachability)
    return node
