"""`service create|update` flags for mounts, DNS, extra hosts, sysctls, ulimits and env files (pure).

docker's syntax (cli/opts/mount.go, opts/hosts.go, opts/ulimit.go, service/update.go): `--mount
type=volume,src=data,dst=/data,readonly`, `--host name:IP`, `--sysctl k=v`, `--ulimit
nofile=1024:2048`, `--dns 10.0.0.2`, `--env-file FILE`; `update` has docker's `-add`/`-rm` pairs
(`--mount-rm TARGET`, `--host-rm name[:IP]`, `--sysctl-rm KEY`, `--ulimit-rm NAME`, ...).
Malformed values are argparse type errors (usage, exit 2) raised before any call to the agent.
"""

from __future__ import annotations

import argparse
import csv
import os
from collections.abc import Iterable, Mapping
from typing import Any

from shoal.cli.errors import CLIError
from shoal.cli.service_args import memory_bytes

_BOOL_TEXT = {"": True, "true": True, "1": True, "false": False, "0": False}
_BOOL_KEYS = ("readonly", "ro", "volume-nocopy", "bind-nonrecursive", "bind-create-host-path")


def _bool(key: str, value: str) -> bool:
    if value.lower() not in _BOOL_TEXT:
        raise argparse.ArgumentTypeError(f"invalid value for {key}: {value}")
    return _BOOL_TEXT[value.lower()]


def _kv(key: str, value: str) -> tuple[str, str]:
    k, sep, v = value.partition("=")
    if not sep or not k:
        raise argparse.ArgumentTypeError(f"invalid value for {key}: {value}: expected key=value")
    return k, v


def mount(text: str) -> dict[str, Any]:
    """docker's MountOpt.Set: CSV of key=value; the type defaults to volume."""
    try:
        fields = next(csv.reader([text]))
    except (csv.Error, StopIteration):
        raise argparse.ArgumentTypeError(f"invalid mount {text!r}") from None
    m: dict[str, Any] = {"Type": "volume"}
    bind: dict[str, Any] = {}
    volume: dict[str, Any] = {}
    tmpfs: dict[str, Any] = {}
    for item in fields:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep and key not in _BOOL_KEYS:
            raise argparse.ArgumentTypeError(f"invalid field '{item}' must be a key=value pair")
        if key == "type":
            m["Type"] = value.lower()
        elif key in ("source", "src"):
            m["Source"] = value
        elif key in ("target", "dst", "destination"):
            m["Target"] = value
        elif key in ("readonly", "ro"):
            m["ReadOnly"] = _bool(key, value)
        elif key == "consistency":
            m["Consistency"] = value
        elif key == "bind-propagation":
            bind["Propagation"] = value.lower()
        elif key == "bind-nonrecursive":
            bind["NonRecursive"] = _bool(key, value)
        elif key == "bind-create-host-path":
            bind["CreateMountpoint"] = _bool(key, value)
        elif key == "volume-nocopy":
            volume["NoCopy"] = _bool(key, value)
        elif key == "volume-label":
            k, v = _kv(key, value)
            volume.setdefault("Labels", {})[k] = v
        elif key == "volume-driver":
            volume.setdefault("DriverConfig", {})["Name"] = value
        elif key == "volume-opt":
            k, v = _kv(key, value)
            volume.setdefault("DriverConfig", {}).setdefault("Options", {})[k] = v
        elif key == "tmpfs-size":
            tmpfs["SizeBytes"] = memory_bytes(value)
        elif key == "tmpfs-mode":
            try:
                tmpfs["Mode"] = int(value, 8)
            except ValueError:
                raise argparse.ArgumentTypeError(f"invalid value for {key}: {value}") from None
        else:
            raise argparse.ArgumentTypeError(f"unexpected key '{key}' in '{item}'")
    if not m.get("Target"):
        raise argparse.ArgumentTypeError("target is required")
    families = (("bind", bind, "BindOptions"), ("volume", volume, "VolumeOptions"), ("tmpfs", tmpfs, "TmpfsOptions"))
    for kind, opts, name in families:
        if opts and m["Type"] != kind:
            raise argparse.ArgumentTypeError(f"cannot mix '{kind}-*' options with mount type '{m['Type']}'")
        if opts:
            m[name] = opts
    return m


def host(text: str) -> str:
    """`--host name:IP` (or name=IP) → the API's hosts(5) line "IP name"."""
    sep = "=" if "=" in text else ":"
    name, found, ip = text.partition(sep)
    if not found or not name or not ip:
        raise argparse.ArgumentTypeError(f"bad format for add-host: {text!r}")
    return f"{ip.strip('[]')} {name}"


def sysctl(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"invalid sysctl {text!r}: expected key=value")
    return key, value


def ulimit(text: str) -> dict[str, Any]:
    """go-units ParseUlimit: `name=soft[:hard]` (hard defaults to soft)."""
    name, sep, limits = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"invalid ulimit argument: {text}")
    soft_text, _, hard_text = limits.partition(":")
    try:
        soft = int(soft_text)
        hard = int(hard_text) if hard_text else soft
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid ulimit argument: {text}") from None
    return {"Name": name, "Soft": soft, "Hard": hard}


def read_env_file(path: str) -> list[str]:
    """docker's ParseEnvFile: KEY=VALUE lines; `#` comments and blank lines skipped; a bare KEY
    takes its value from this environment (left bare, i.e. unset, when it has none)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise CLIError(f"open {path}: {e.strerror if isinstance(e, OSError) else e}") from None
    out = []
    for n, raw in enumerate(lines, 1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, _ = line.partition("=")
        if not key or any(c.isspace() for c in key):
            raise CLIError(f"{path}:{n}: variable '{key}' contains whitespaces")
        if sep:
            out.append(line)
        else:
            out.append(f"{key}={os.environ[key]}" if key in os.environ else key)
    return out


def add_create_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mount", type=mount, action="append", metavar="MOUNT", help="attach a filesystem mount")
    p.add_argument("--dns", action="append", metavar="IP", help="set custom DNS servers")
    p.add_argument("--dns-search", action="append", metavar="DOMAIN", help="set custom DNS search domains")
    p.add_argument("--dns-option", action="append", metavar="OPT", help="set DNS options")
    # dest: `shoal -H/--host` (the agent's socket) already owns args.host
    p.add_argument(
        "--host", dest="extra_hosts", type=host, action="append", metavar="NAME:IP", help="add a host-to-IP mapping"
    )
    p.add_argument("--sysctl", type=sysctl, action="append", metavar="K=V", help="sysctl options")
    p.add_argument("--ulimit", type=ulimit, action="append", metavar="NAME=SOFT[:HARD]", help="ulimit options")
    p.add_argument("--env-file", action="append", metavar="FILE", help="read in a file of environment variables")


def add_update_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mount-add", type=mount, action="append", metavar="MOUNT", help="add or update a mount")
    p.add_argument("--mount-rm", action="append", metavar="TARGET", help="remove a mount by its target path")
    for flag, what in (("dns", "DNS server"), ("dns-search", "DNS search domain"), ("dns-option", "DNS option")):
        p.add_argument(f"--{flag}-add", action="append", metavar="VALUE", help=f"add or update a {what}")
        p.add_argument(f"--{flag}-rm", action="append", metavar="VALUE", help=f"remove a {what}")
    p.add_argument("--host-add", type=host, action="append", metavar="NAME:IP", help="add a custom host-to-IP mapping")
    p.add_argument("--host-rm", action="append", metavar="NAME[:IP]", help="remove a custom host-to-IP mapping")
    p.add_argument("--sysctl-add", type=sysctl, action="append", metavar="K=V", help="add or update a sysctl")
    p.add_argument("--sysctl-rm", action="append", metavar="KEY", help="remove a sysctl")
    p.add_argument("--ulimit-add", type=ulimit, action="append", metavar="NAME=SOFT[:HARD]", help="add/update a ulimit")
    p.add_argument("--ulimit-rm", action="append", metavar="NAME", help="remove a ulimit")


def _dns(container: dict[str, Any]) -> dict[str, Any]:
    dns = container.get("DNSConfig")
    if not isinstance(dns, dict):
        dns = container["DNSConfig"] = {}
    return dns


def apply_create(container: dict[str, Any], args: argparse.Namespace) -> None:
    """Write the create flags that were given into the ContainerSpec (in place)."""
    if args.env_file:
        env_files = [e for path in args.env_file for e in read_env_file(path)]
        container["Env"] = env_files + list(container.get("Env") or [])  # --env wins over the files
    if args.mount:
        container["Mounts"] = list(args.mount)
    for flag, key in (("dns", "Nameservers"), ("dns_search", "Search"), ("dns_option", "Options")):
        if getattr(args, flag):
            _dns(container)[key] = list(getattr(args, flag))
    if args.extra_hosts:
        container["Hosts"] = list(args.extra_hosts)
    if args.sysctl:
        container["Sysctls"] = dict(args.sysctl)
    if args.ulimit:
        container["Ulimits"] = _merge_ulimits([], args.ulimit, ())
    for flag, key in (("cap_add", "CapabilityAdd"), ("cap_drop", "CapabilityDrop")):
        if getattr(args, flag, None) is not None:  # service_args.add_common_flags owns --cap-add/--cap-drop
            container[key] = list(getattr(args, flag))


def _capability(name: str) -> str:
    """docker's opts.NormalizeCapability: upper case, CAP_ prefix, "ALL" as is (the API checks the names)."""
    cap = name.strip().upper()
    return cap if cap == "ALL" or cap.startswith("CAP_") else "CAP_" + cap


def _capability_list(caps: Iterable[str]) -> list[str]:
    """docker's opts.CapabilitiesList: sorted, no duplicates, and "ALL" alone when it is there."""
    caps = set(caps)
    return ["ALL"] if "ALL" in caps else sorted(caps)


def merge_capabilities(
    cap_add: Iterable[str], cap_drop: Iterable[str], to_add: Iterable[str] | None, to_drop: Iterable[str] | None
) -> tuple[list[str], list[str]]:
    """docker's `service update --cap-add/--cap-drop` (cli/command/service/update.go updateCapabilities):
    a tri-state per capability. Dropping one the service adds takes it out of CapabilityAdd (and does not
    drop it); dropping another adds it to CapabilityDrop. Adding works the same way the other round. A
    capability both added and dropped in one update is added (adding wins)."""
    adds = {_capability(c) for c in cap_add}
    drops = {_capability(c) for c in cap_drop}
    adding = {_capability(c) for c in to_add or ()}
    dropping = {_capability(c) for c in to_drop or ()}
    for cap in dropping - adding:
        if cap in adds:
            adds.discard(cap)
        else:
            drops.add(cap)
    for cap in adding:
        if cap in drops:
            drops.discard(cap)
        else:
            adds.add(cap)
    return _capability_list(adds), _capability_list(drops)


def _merge_list(current: Iterable[str], add: Iterable[str] | None, rm: Iterable[str] | None) -> list[str]:
    gone = set(rm or ())
    out = [v for v in current if v not in gone]
    return out + [v for v in add or () if v not in out]


def _host_removed(entry: str, removals: Iterable[str]) -> bool:
    fields = entry.split()
    ip, names = (fields[0], fields[1:]) if len(fields) > 1 else (entry.rpartition(":")[2], [entry.partition(":")[0]])
    for item in removals:
        name, _, want_ip = item.partition(":")
        if name in names and (not want_ip or want_ip.strip("[]") == ip):
            return True
    return False


def _merge_ulimits(current: Iterable[Mapping[str, Any]], add: Iterable[Mapping[str, Any]], rm: Iterable[str]) -> list:
    out = {str(u["Name"]): dict(u) for u in current if u.get("Name") not in set(rm)}
    for u in add:
        out[str(u["Name"])] = dict(u)
    return sorted(out.values(), key=lambda u: u["Name"])


def apply_update(container: dict[str, Any], args: argparse.Namespace) -> None:
    """docker's update: removals first, then additions; a mount added at a target replaces it."""
    if args.mount_add or args.mount_rm:
        added = {m["Target"] for m in args.mount_add or ()}
        gone = set(args.mount_rm or ()) | added
        kept = [m for m in container.get("Mounts") or [] if m.get("Target") not in gone]
        container["Mounts"] = kept + list(args.mount_add or ())
    for flag, key in (("dns", "Nameservers"), ("dns_search", "Search"), ("dns_option", "Options")):
        add, rm = getattr(args, f"{flag}_add"), getattr(args, f"{flag}_rm")
        if add or rm:
            dns = _dns(container)
            dns[key] = _merge_list(dns.get(key) or [], add, rm)
    if args.host_add or args.host_rm:
        kept = [h for h in container.get("Hosts") or [] if not _host_removed(h, args.host_rm or ())]
        container["Hosts"] = _merge_list(kept, args.host_add, ())
    if args.sysctl_add or args.sysctl_rm:
        sysctls = {k: v for k, v in (container.get("Sysctls") or {}).items() if k not in set(args.sysctl_rm or ())}
        sysctls.update(dict(args.sysctl_add or ()))
        container["Sysctls"] = sysctls
    if args.ulimit_add or args.ulimit_rm:
        current = container.get("Ulimits") or []
        container["Ulimits"] = _merge_ulimits(current, args.ulimit_add or (), args.ulimit_rm or ())
    to_add, to_drop = getattr(args, "cap_add", None), getattr(args, "cap_drop", None)
    if to_add is not None or to_drop is not None:
        adds, drops = container.get("CapabilityAdd") or [], container.get("CapabilityDrop") or []
        merged = merge_capabilities(adds, drops, to_add, to_drop)
        for key, caps in zip(("CapabilityAdd", "CapabilityDrop"), merged, strict=True):
            if caps or key in container:
                container[key] = caps


def pretty_mounts(container: Mapping[str, Any]) -> list[str]:
    """The `Mounts:` part of `service inspect --pretty`, as docker's formatter prints it."""
    lines = ["Mounts:"] if container.get("Mounts") else []
    for m in container.get("Mounts") or ():
        lines += [
            f" Target:\t{m.get('Target', '')}",
            f"  Source:\t{m.get('Source', '')}",
            f"  ReadOnly:\t{'true' if m.get('ReadOnly') else 'false'}",
            f"  Type:\t{m.get('Type', '')}",
        ]
    return lines
