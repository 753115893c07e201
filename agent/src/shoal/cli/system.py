"""`shoal info` and `shoal version`: docker's layouts for what GET /info and GET /version return."""

from __future__ import annotations

import argparse
import platform
import re
import sys
from collections.abc import Mapping
from typing import Any

from shoal import __version__
from shoal.cli.client import Client
from shoal.cli.errors import CLIError
from shoal.cli.output import bytes_size, compact_json, human_duration, table

# shoal-only facts in GET /info live under "Shoal" (DESIGN §4: shoal additions are namespaced);
# known keys get docker-style labels, others are shown with their name split into words.
SHOAL_LABELS = {
    "LoadBalancerBackend": "Load balancer backend",
    "TaskRuntime": "Task driver",
    "StateDir": "State Dir",
}

# docker prints Go's architecture names
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


def _words(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, (list, tuple, dict)):
        return compact_json(value)
    return "" if value is None else str(value)


def swarm_lines(swarm: Mapping[str, Any]) -> list[str]:
    """docker's printSwarmInfo (cli/command/system/info.go), field for field."""
    state = swarm.get("LocalNodeState", "")
    lines = [f" Swarm: {state}"]
    if state in ("", "inactive", "locked"):
        return lines
    lines.append(f"  NodeID: {swarm.get('NodeID', '')}")
    if swarm.get("Error"):
        lines.append(f"  Error: {swarm['Error']}")
    lines.append(f"  Is Manager: {_value(bool(swarm.get('ControlAvailable')))}")
    cluster = swarm.get("Cluster")
    if cluster and swarm.get("ControlAvailable") and not swarm.get("Error") and state != "error":
        spec = cluster.get("Spec") or {}
        raft = spec.get("Raft") or {}
        lines += [
            f"  ClusterID: {cluster.get('ID', '')}",
            f"  Managers: {swarm.get('Managers', 0)}",
            f"  Nodes: {swarm.get('Nodes', 0)}",
        ]
        if cluster.get("DefaultAddrPool"):
            lines.append("  Default Address Pool: " + "  ".join(cluster["DefaultAddrPool"]))
            lines.append(f"  SubnetSize: {cluster.get('SubnetSize', 24)}")
        if cluster.get("DataPathPort"):
            lines.append(f"  Data Path Port: {cluster['DataPathPort']}")
        lines += [
            "  Orchestration:",
            f"   Task History Retention Limit: {(spec.get('Orchestration') or {}).get('TaskHistoryRetentionLimit', 0)}",
            "  Raft:",
            f"   Snapshot Interval: {raft.get('SnapshotInterval', 0)}",
        ]
        if raft.get("KeepOldSnapshots") is not None:
            lines.append(f"   Number of Old Snapshots to Retain: {raft['KeepOldSnapshots']}")
        lines += [
            f"   Heartbeat Tick: {raft.get('HeartbeatTick', 0)}",
            f"   Election Tick: {raft.get('ElectionTick', 0)}",
            "  Dispatcher:",
            f"   Heartbeat Period: {human_duration((spec.get('Dispatcher') or {}).get('HeartbeatPeriod', 0))}",
            "  CA Configuration:",
            f"   Expiry Duration: {human_duration((spec.get('CAConfig') or {}).get('NodeCertExpiry', 0))}",
            f"   Force Rotate: {(spec.get('CAConfig') or {}).get('ForceRotate', 0)}",
            f"  Autolock Managers: {_value(bool((spec.get('EncryptionConfig') or {}).get('AutoLockManagers')))}",
            f"  Root Rotation In Progress: {_value(bool(cluster.get('RootRotationInProgress')))}",
        ]
    lines.append(f"  Node Address: {swarm.get('NodeAddr', '')}")
    # shoal's live view: Raft (managers) and the dispatcher session (workers), printed as reported
    for section in ("Raft", "Session"):
        for key, value in (swarm.get(section) or {}).items():
            lines.append(f"  {section} {_words(key)}: {_value(value)}")
    managers = sorted(str(m.get("Addr", "")) for m in swarm.get("RemoteManagers") or ())
    if managers:
        lines += ["  Manager Addresses:", *(f"   {m}" for m in managers)]
    return lines


def info_text(info: Mapping[str, Any]) -> str:
    """The server part of `shoal info` (what the agent reports; absent fields are skipped)."""
    lines = ["Server:"]
    if info.get("ServerVersion"):
        lines.append(f" Server Version: {info['ServerVersion']}")
    lines += swarm_lines(info.get("Swarm") or {})
    for key, value in (info.get("Shoal") or {}).items():
        lines.append(f" {SHOAL_LABELS.get(key, _words(key))}: {_value(value)}")
    if info.get("Runtimes"):
        lines.append(f" Runtimes: {' '.join(sorted(info['Runtimes']))}")
    if info.get("DefaultRuntime"):
        lines.append(f" Default Runtime: {info['DefaultRuntime']}")
    for label, key in (
        ("Kernel Version", "KernelVersion"),
        ("Operating System", "OperatingSystem"),
        ("OSType", "OSType"),
        ("Architecture", "Architecture"),
        ("CPUs", "NCPU"),
    ):
        if info.get(key) not in (None, ""):
            lines.append(f" {label}: {info[key]}")
    if info.get("MemTotal"):
        lines.append(f" Total Memory: {bytes_size(float(info['MemTotal']))}")
    for label, key in (("Name", "Name"), ("ID", "ID"), ("Root Dir", "DockerRootDir")):
        if info.get(key):
            lines.append(f" {label}: {info[key]}")
    if "Debug" in info:
        lines.append(f" Debug Mode: {_value(bool(info['Debug']))}")
    if info.get("Labels"):
        lines += [" Labels:", *(f"  {label}" for label in info["Labels"])]
    return "".join(line + "\n" for line in lines)


def client_text(host: str, debug: bool) -> str:
    return f"Client:\n Version:    {__version__}\n Host:       {host}\n Debug Mode: {_value(debug)}\n\n"


def version_text(server: Mapping[str, Any] | None, host: str) -> str:
    """docker version's layout (tabwriter min width 20, padding 1); server None: client only."""
    out = "Client:\n" + table(
        [
            [" Version:", __version__],
            [" Python version:", platform.python_version()],
            [" OS/Arch:", f"{sys.platform}/{GOARCH.get(platform.machine(), platform.machine())}"],
            [" Host:", host],
        ],
        min_width=20,
        padding=1,
    )
    if server is None:
        return out
    name = (server.get("Platform") or {}).get("Name", "")
    api = server.get("ApiVersion", "")
    if server.get("MinAPIVersion"):
        api += f" (minimum version {server['MinAPIVersion']})"
    rows = [["  Version:", server.get("Version", "")], ["  API version:", api]]
    for label, key in (("Go version", "GoVersion"), ("Git commit", "GitCommit"), ("Built", "BuildTime")):
        if server.get(key):
            rows.append([f"  {label}:", str(server[key])])
    rows.append(["  OS/Arch:", f"{server.get('Os', '')}/{server.get('Arch', '')}"])
    if server.get("KernelVersion"):
        rows.append(["  Kernel Version:", server["KernelVersion"]])
    rows.append(["  Experimental:", _value(bool(server.get("Experimental")))])
    out += "\nServer:" + (f" {name}" if name else "") + "\n Engine:\n" + table(rows, min_width=20, padding=1)
    for comp in server.get("Components") or ():
        if comp.get("Name") == "Engine":
            continue  # already shown from the top-level fields
        rows = [["  Version:", str(comp.get("Version", ""))]]
        rows += [[f"  {k}:", _value(v)] for k, v in sorted((comp.get("Details") or {}).items())]
        out += f" {comp.get('Name', '')}:\n" + table(rows, min_width=20, padding=1)
    return out


def cmd_info(api: Client, args: argparse.Namespace) -> int:
    print(client_text(api.host, args.debug), end="")
    info = api.get("/info")
    print(info_text(info), end="")
    for warning in info.get("Warnings") or ():
        print(f"WARNING: {warning}", file=sys.stderr)
    return 0


def cmd_version(api: Client, args: argparse.Namespace) -> int:
    try:
        server = api.get("/version")
    except CLIError:
        print(version_text(None, api.host), end="")  # docker prints the client part, then the error
        raise
    print(version_text(server, api.host), end="")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("info", help="Display system-wide information")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("version", help="Show the shoal version information")
    p.set_defaults(func=cmd_version)
