"""ContainerSpec's DNSConfig, Hosts, Sysctls and Ulimits as the task sees them (pure).

resolv.conf keeps the agent's embedded DNS (127.0.0.11) first, as Docker's does on swarm
networks, so service names still resolve, and the embedded DNS asks the spec's nameservers (not
the node's) for every other name (Docker's ExtDNS; `task_nameservers`, worker/netagent.py). The
nameservers are listed after it too: glibc asks them when 127.0.0.11 fails, and a task without
networks has no embedded DNS. Then the search domains and options (Docker's `ndots:0` unless the
spec sets ndots). Hosts entries are appended to /etc/hosts as hosts(5) lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shoal.model.container_opts import ULIMITS, parse_host_entry

DNS_ADDR = "127.0.0.11"
RLIM_INFINITY = 2**64 - 1  # the OCI config's rlimits are uint64; Docker's -1 means unlimited


def resolv_conf(cspec: Mapping[str, Any]) -> str:
    dns = cspec.get("DNSConfig") or {}
    servers = [s for s in dns.get("Nameservers") or [] if s != DNS_ADDR]
    options = list(dns.get("Options") or [])
    if not any(o.startswith("ndots:") for o in options):
        options.insert(0, "ndots:0")
    lines = [f"nameserver {DNS_ADDR}", *(f"nameserver {s}" for s in servers)]
    if dns.get("Search"):
        lines.append("search " + " ".join(dns["Search"]))
    lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def task_nameservers(task: Mapping[str, Any]) -> list[str]:
    """The resolvers the embedded DNS asks for this task's non-swarm names (none: the node's)."""
    cspec = ((task.get("Spec") or {}).get("ContainerSpec")) or {}
    return [str(s) for s in (cspec.get("DNSConfig") or {}).get("Nameservers") or [] if s != DNS_ADDR]


def extra_hosts(cspec: Mapping[str, Any]) -> str:
    """Docker's swarm executor accepts "IP name [aliases...]" and the legacy "name:IP"."""
    lines = []
    for entry in cspec.get("Hosts") or []:
        ip, names = parse_host_entry(str(entry))
        lines.append(f"{ip}\t{' '.join(names)}")
    return "".join(line + "\n" for line in lines)


def sysctl(cspec: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (cspec.get("Sysctls") or {}).items()}


def _limit(value: int) -> int:
    return RLIM_INFINITY if value < 0 else value


def rlimits(cspec: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {"type": ULIMITS[u["Name"]], "hard": _limit(int(u["Hard"])), "soft": _limit(int(u["Soft"]))}
        for u in cspec.get("Ulimits") or []
    ]
