"""ContainerSpec's DNSConfig, Hosts, Sysctls, Ulimits and Mounts, validated into Docker's shapes.

`container_options` returns only the fields that are set (Docker's `service inspect` leaves the
zero values out), so `model/service.py` merges it into the ContainerSpec it builds. The rules and
messages are the docker CLI's (opts/hosts.go, opts/opts.go ValidateSysctl, go-units ulimit).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from shoal.errors import SpecError
from shoal.model.mounts import validate_mounts
from shoal.model.validate import _int, _object, _str, known_fields

# docker's opts.ValidateSysctl: the IPC namespace's kernel.* keys, fs.mqueue.* and net.* (the task
# has its own IPC and network namespaces, so these change the task's, not the node's)
IPC_SYSCTLS = frozenset(
    {
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    }
)
SYSCTL_PREFIXES = ("net.", "fs.mqueue.")
# go-units' ulimit names → the kernel's RLIMIT_* (what the OCI config's process.rlimits says)
ULIMITS = {
    "as": "RLIMIT_AS",
    "core": "RLIMIT_CORE",
    "cpu": "RLIMIT_CPU",
    "data": "RLIMIT_DATA",
    "fsize": "RLIMIT_FSIZE",
    "locks": "RLIMIT_LOCKS",
    "memlock": "RLIMIT_MEMLOCK",
    "msgqueue": "RLIMIT_MSGQUEUE",
    "nice": "RLIMIT_NICE",
    "nofile": "RLIMIT_NOFILE",
    "nproc": "RLIMIT_NPROC",
    "rss": "RLIMIT_RSS",
    "rtprio": "RLIMIT_RTPRIO",
    "rttime": "RLIMIT_RTTIME",
    "sigpending": "RLIMIT_SIGPENDING",
    "stack": "RLIMIT_STACK",
}
_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")


def _strings(where: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{where} must be a list of strings, not {value!r}")
    return list(value)


def _ip(text: str, message: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        raise SpecError(message) from None


def parse_host_entry(entry: str) -> tuple[str, list[str]]:
    """(IP, names) of a Hosts entry: hosts(5)'s "IP name [aliases...]", or the legacy "name:IP"
    that Docker's swarm executor still reads."""
    fields = entry.split()
    if len(fields) > 1:
        ip, names = fields[0], fields[1:]
    else:
        name, sep, ip = entry.partition(":")
        if not sep or not name or not ip:
            raise SpecError(f'bad format for add-host: "{entry}"')
        names = [name]
    ip = _ip(ip, f'invalid IP address in add-host: "{ip}"')
    for name in names:
        if not _HOSTNAME_RE.match(name):
            raise SpecError(f'invalid hostname in add-host: "{name}"')
    return ip, names


def validate_hosts(where: str, value: Any) -> list[str]:
    entries = _strings(where, value)
    for entry in entries:
        parse_host_entry(entry)
    return entries


def validate_dns_config(where: str, value: Any) -> dict[str, list[str]]:
    if value is None:
        return {}
    d = known_fields(where, _object(where, value), ("Nameservers", "Search", "Options"))
    out: dict[str, list[str]] = {}
    servers = _strings(f"{where}.Nameservers", d.get("Nameservers"))
    for s in servers:
        _ip(s, f"{s} is not an ip address")
    search = _strings(f"{where}.Search", d.get("Search"))
    for domain in search:
        if domain != "." and (not domain or domain.startswith(".") or domain.endswith(".") or " " in domain):
            raise SpecError(f"{domain} is not a valid domain")
    options = _strings(f"{where}.Options", d.get("Options"))
    for opt in options:
        if not opt or any(c.isspace() for c in opt):
            raise SpecError(f"{where}.Options: invalid resolver option {opt!r}")
    for key, items in (("Nameservers", servers), ("Search", search), ("Options", options)):
        if items:
            out[key] = items
    return out


def validate_sysctls(where: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    out: dict[str, str] = {}
    for key, val in _object(where, value).items():
        if not isinstance(key, str) or not isinstance(val, str):
            raise SpecError(f"{where}: keys and values must be strings, not {key!r}: {val!r}")
        if key not in IPC_SYSCTLS and not key.startswith(SYSCTL_PREFIXES):
            raise SpecError(f"{where}: sysctl '{key}={val}' is not allowed")
        out[key] = val
    return out


def validate_ulimits(where: str, value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError(f"{where} must be a list")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        u = known_fields(f"{where}[{i}]", _object(f"{where}[{i}]", item), ("Name", "Soft", "Hard"))
        name = _str(f"{where}[{i}].Name", u.get("Name") or "")
        if name not in ULIMITS:
            raise SpecError(f"invalid ulimit type: {name}")
        if name in seen:
            raise SpecError(f"{where}: ulimit {name!r} is given more than once")
        seen.add(name)
        soft = _int(f"{where}[{i}].Soft", u.get("Soft") or 0, minimum=-1)
        hard = _int(f"{where}[{i}].Hard", u.get("Hard") or 0, minimum=-1)
        if soft != -1 and hard != -1 and soft > hard:
            raise SpecError(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
        out.append({"Name": name, "Soft": soft, "Hard": hard})
    return out


def container_options(where: str, c: Mapping[str, Any]) -> dict[str, Any]:
    """The ContainerSpec fields this module owns, validated; only those that are set."""
    values = {
        "Mounts": validate_mounts(f"{where}.Mounts", c.get("Mounts")),
        "DNSConfig": validate_dns_config(f"{where}.DNSConfig", c.get("DNSConfig")),
        "Hosts": validate_hosts(f"{where}.Hosts", c.get("Hosts")),
        "Sysctls": validate_sysctls(f"{where}.Sysctls", c.get("Sysctls")),
        "Ulimits": validate_ulimits(f"{where}.Ulimits", c.get("Ulimits")),
    }
    return {k: v for k, v in values.items() if v}


OWNED_FIELDS = ("Mounts", "DNSConfig", "Hosts", "Sysctls", "Ulimits")
