# Copyright: shoal developers
# Apache License 2.0 (see galaxy.yml)
"""swarm_service's container options in community.docker's ``docker_swarm_service`` shapes.

``mounts``, ``dns``, ``dns_search``, ``dns_options``, ``hosts``, ``sysctls``, ``ulimits``,
``cap_add``, ``cap_drop``, ``init`` and ``read_only``: their argument spec, the module's view of
what the user asked for (``desired``) and of the service in place (``current``) in the same
canonical shapes (so that an unchanged option compares equal), and how a view is written back
into a ContainerSpec (``apply``). The agent validates everything again and answers with Docker's
messages.
"""

from __future__ import annotations

import re
from typing import Any

from ansible_collections.shoal.swarm.plugins.module_utils._shoal_runner import ParamError

OPTIONS = (
    "mounts",
    "dns",
    "dns_search",
    "dns_options",
    "hosts",
    "sysctls",
    "ulimits",
    "cap_add",
    "cap_drop",
    "init",
    "read_only",
)
UNORDERED = ("cap_add", "cap_drop")
DNS_FIELDS = {"dns": "Nameservers", "dns_search": "Search", "dns_options": "Options"}
FLAG_FIELDS = {"init": "Init", "read_only": "ReadOnly", "cap_add": "CapabilityAdd", "cap_drop": "CapabilityDrop"}
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)$", re.I)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}


def argument_spec() -> dict[str, Any]:
    return {
        "mounts": {
            "type": "list",
            "elements": "dict",
            "options": {
                "source": {"type": "str"},
                "target": {"type": "str", "required": True},
                "type": {"type": "str", "choices": ["bind", "volume", "tmpfs"], "default": "bind"},
                "readonly": {"type": "bool"},
                "labels": {"type": "dict"},
                "propagation": {
                    "type": "str",
                    "choices": ["shared", "slave", "private", "rshared", "rslave", "rprivate"],
                },
                "no_copy": {"type": "bool"},
                "driver_config": {
                    "type": "dict",
                    "options": {"name": {"type": "str"}, "options": {"type": "dict"}},
                },
                "tmpfs_size": {"type": "str"},
                "tmpfs_mode": {"type": "int"},
            },
        },
        "dns": {"type": "list", "elements": "str"},
        "dns_search": {"type": "list", "elements": "str"},
        "dns_options": {"type": "list", "elements": "str"},
        "hosts": {"type": "dict"},
        "sysctls": {"type": "dict"},
        "ulimits": {"type": "list", "elements": "str"},
        "cap_add": {"type": "list", "elements": "str"},
        "cap_drop": {"type": "list", "elements": "str"},
        "init": {"type": "bool"},
        "read_only": {"type": "bool"},
    }


def _size(value: Any, name: str) -> int:
    m = _SIZE_RE.match(str(value).strip())
    if not m:
        raise ParamError(f"{name}: {value!r} is not a size (examples: 64M, 512MiB, 1G, or a number of bytes)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _mount_view(
    kind: str,
    source: str,
    target: str,
    readonly: bool,
    labels: dict[str, str],
    propagation: str | None,
    no_copy: bool,
    driver_config: dict[str, Any] | None,
    tmpfs_size: int | None,
    tmpfs_mode: int | None,
) -> dict[str, Any]:
    return {
        "type": kind,
        "source": source,
        "target": target,
        "readonly": readonly,
        "labels": labels,
        "propagation": propagation,
        "no_copy": no_copy,
        "driver_config": driver_config,
        "tmpfs_size": tmpfs_size,
        "tmpfs_mode": tmpfs_mode,
    }


def _ulimit(text: str) -> dict[str, Any]:
    """community.docker's ``type:soft[:hard]`` (hard defaults to soft)."""
    parts = str(text).split(":")
    if len(parts) not in (2, 3) or not parts[0]:
        raise ParamError(f"ulimits: {text!r} is not type:soft[:hard] (for example nofile:1024:2048)")
    try:
        soft = int(parts[1])
        hard = int(parts[2]) if len(parts) == 3 else soft
    except ValueError:
        raise ParamError(f"ulimits: {text!r}: the limits must be integers") from None
    return {"name": parts[0], "soft": soft, "hard": hard}


def desired(params: dict[str, Any]) -> dict[str, Any]:
    """The options the user gave, in canonical shapes; None = leave as is."""
    view: dict[str, Any] = {name: None for name in OPTIONS}
    if params.get("mounts") is not None:
        view["mounts"] = []
        for i, m in enumerate(params["mounts"]):
            dc = m.get("driver_config")
            view["mounts"].append(
                _mount_view(
                    m.get("type") or "bind",
                    m.get("source") or "",
                    m["target"],
                    bool(m.get("readonly")),
                    {str(k): str(v) for k, v in (m.get("labels") or {}).items()},
                    m.get("propagation"),
                    bool(m.get("no_copy")),
                    {"name": dc.get("name") or "", "options": dict(dc.get("options") or {})} if dc else None,
                    _size(m["tmpfs_size"], f"mounts[{i}].tmpfs_size") if m.get("tmpfs_size") is not None else None,
                    m.get("tmpfs_mode"),
                )
            )
    for name in ("dns", "dns_search", "dns_options", "cap_add", "cap_drop"):
        if params.get(name) is not None:
            view[name] = list(params[name])
    if params.get("hosts") is not None:
        view["hosts"] = {str(k): str(v) for k, v in params["hosts"].items()}
    if params.get("sysctls") is not None:
        view["sysctls"] = {str(k): str(v) for k, v in params["sysctls"].items()}
    if params.get("ulimits") is not None:
        view["ulimits"] = sorted((_ulimit(u) for u in params["ulimits"]), key=lambda u: u["name"])
    for name in ("init", "read_only"):
        if params.get(name) is not None:
            view[name] = bool(params[name])
    return view


def _hosts(entries: list[str]) -> dict[str, str]:
    """Docker's "IP name [aliases...]" lines (or the legacy "name:IP") as community.docker's name → IP."""
    out: dict[str, str] = {}
    for entry in entries:
        fields = entry.split()
        if len(fields) > 1:
            for name in fields[1:]:
                out[name] = fields[0]
        else:
            name, ip = entry.split(":", 1) if ":" in entry else (entry, "")
            out[name] = ip
    return out


def current(container: dict[str, Any]) -> dict[str, Any]:
    """The service's ContainerSpec in the same shapes as ``desired``."""
    mounts = []
    for m in container.get("Mounts") or []:
        bind, volume, tmpfs = m.get("BindOptions") or {}, m.get("VolumeOptions") or {}, m.get("TmpfsOptions") or {}
        dc = volume.get("DriverConfig")
        mounts.append(
            _mount_view(
                m.get("Type") or "bind",
                m.get("Source") or "",
                m.get("Target") or "",
                bool(m.get("ReadOnly")),
                dict(volume.get("Labels") or {}),
                bind.get("Propagation"),
                bool(volume.get("NoCopy")),
                {"name": dc.get("Name") or "", "options": dict(dc.get("Options") or {})} if dc else None,
                tmpfs.get("SizeBytes"),
                tmpfs.get("Mode"),
            )
        )
    dns = container.get("DNSConfig") or {}
    return {
        "mounts": mounts,
        **{name: list(dns.get(field) or []) for name, field in DNS_FIELDS.items()},
        "hosts": _hosts(list(container.get("Hosts") or [])),
        "sysctls": dict(container.get("Sysctls") or {}),
        "ulimits": sorted(
            ({"name": u["Name"], "soft": u["Soft"], "hard": u["Hard"]} for u in container.get("Ulimits") or []),
            key=lambda u: u["name"],
        ),
        "cap_add": list(container.get("CapabilityAdd") or []),
        "cap_drop": list(container.get("CapabilityDrop") or []),
        "init": bool(container.get("Init")),
        "read_only": bool(container.get("ReadOnly")),
    }


def _mount_spec(m: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"Type": m["type"], "Target": m["target"]}
    if m["source"]:
        out["Source"] = m["source"]
    if m["readonly"]:
        out["ReadOnly"] = True
    if m["type"] == "bind" and m["propagation"]:
        out["BindOptions"] = {"Propagation": m["propagation"]}
    if m["type"] == "volume":
        volume: dict[str, Any] = {}
        if m["no_copy"]:
            volume["NoCopy"] = True
        if m["labels"]:
            volume["Labels"] = dict(m["labels"])
        if m["driver_config"]:
            volume["DriverConfig"] = {"Name": m["driver_config"]["name"], "Options": m["driver_config"]["options"]}
        if volume:
            out["VolumeOptions"] = volume
    if m["type"] == "tmpfs":
        tmpfs = {k: v for k, v in (("SizeBytes", m["tmpfs_size"]), ("Mode", m["tmpfs_mode"])) if v}
        if tmpfs:
            out["TmpfsOptions"] = tmpfs
    return out


def apply(container: dict[str, Any], name: str, value: Any) -> None:
    """Write the option ``name`` of a view into ``container`` (a ContainerSpec), in place."""
    if name == "mounts":
        container["Mounts"] = [_mount_spec(m) for m in value]
    elif name in DNS_FIELDS:
        dns = container.get("DNSConfig") or {}
        dns[DNS_FIELDS[name]] = list(value)
        container["DNSConfig"] = dns
    elif name == "hosts":
        container["Hosts"] = [f"{ip} {host}" for host, ip in value.items()]
    elif name == "sysctls":
        container["Sysctls"] = dict(value)
    elif name == "ulimits":
        container["Ulimits"] = [{"Name": u["name"], "Soft": u["soft"], "Hard": u["hard"]} for u in value]
    elif name in FLAG_FIELDS:
        container[FLAG_FIELDS[name]] = value if isinstance(value, bool) else list(value)
