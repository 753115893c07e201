"""`shoal service inspect --pretty`: docker's serviceInspectPrettyTemplate, section for section.

docker separates labels from values with tabs that a terminal expands to 8-column stops (values
at column 16); shoal writes the same tabs and expands them, so that the text looks the same and
greps the same on a terminal and in a file. Trailing blanks of docker's template are dropped.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from shoal.cli.output import bytes_size, human_duration
from shoal.cli.service_container import pretty_mounts
from shoal.model.ids import format_duration, parse_rfc3339


def go_float(value: Any) -> str:
    """A number as Go's %v prints a float: 0.5, 2, 0.25."""
    f = float(value or 0)
    return str(int(f)) if f.is_integer() else repr(f)


def _ago(rfc3339: str, now_ns: int) -> str:
    try:
        return human_duration(now_ns - parse_rfc3339(rfc3339)) + " ago"
    except ValueError:
        return str(rfc3339)


def _go_list(items: Sequence[Any]) -> str:
    """Go's %v of a []string: [a b]."""
    return "[" + " ".join(str(i) for i in items) + "]"


def _rollout(title: str, cfg: Mapping[str, Any], order_label: str) -> list[str]:
    lines = [title, f" Parallelism:\t{cfg.get('Parallelism', 0)}"]
    if cfg.get("Delay"):
        lines.append(f" Delay:\t\t{format_duration(int(cfg['Delay']))}")
    lines.append(f" On failure:\t{cfg.get('FailureAction', '')}")
    if cfg.get("Monitor"):
        lines.append(f" Monitoring Period: {format_duration(int(cfg['Monitor']))}")
    lines += [
        f" Max failure ratio: {go_float(cfg.get('MaxFailureRatio'))}",
        f" {order_label}{cfg.get('Order', '')}",
    ]
    return lines


def _resources(resources: Mapping[str, Any]) -> list[str]:
    lines = ["Resources:"]
    for title, key in ((" Reservations:", "Reservations"), (" Limits:", "Limits")):
        part = resources.get(key) or {}
        cpus, memory = int(part.get("NanoCPUs") or 0), int(part.get("MemoryBytes") or 0)
        if cpus > 0 or memory > 0:
            lines.append(title)
            if cpus > 0:
                lines.append(f"  CPU:\t\t{go_float(cpus / 1e9)}")
            if memory > 0:
                lines.append(f"  Memory:\t{bytes_size(memory)}")
    return lines


def pretty_service(
    service: Mapping[str, Any], network_names: Mapping[str, str] | None = None, now_ns: int | None = None
) -> str:
    """One service as docker prints it (the text starts with an empty line, as docker's does)."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    spec = service.get("Spec") or {}
    template = spec.get("TaskTemplate") or {}
    container = template.get("ContainerSpec") or {}
    placement = template.get("Placement") or {}
    mode = spec.get("Mode") or {}
    lines = ["", f"ID:\t\t{service.get('ID', '')}", f"Name:\t\t{spec.get('Name', '')}"]
    if spec.get("Labels"):
        lines += ["Labels:", *(f" {k}={v}" if v else f" {k}" for k, v in sorted(spec["Labels"].items()))]
    if "Global" in mode:
        lines.append("Service Mode:\tGlobal")
    elif "Replicated" in mode:
        lines.append("Service Mode:\tReplicated")
        if (mode.get("Replicated") or {}).get("Replicas") is not None:
            lines.append(f" Replicas:\t{mode['Replicated']['Replicas']}")
    else:
        lines.append("Service Mode:")
    status = service.get("UpdateStatus") or {}
    if status.get("State"):
        lines += ["UpdateStatus:", f" State:\t\t{status['State']}"]
        if status.get("StartedAt"):
            lines.append(f" Started:\t{_ago(status['StartedAt'], now_ns)}")
        if status["State"] == "completed" and status.get("CompletedAt"):
            lines.append(f" Completed:\t{_ago(status['CompletedAt'], now_ns)}")
        lines.append(f" Message:\t{status.get('Message', '')}")
    lines.append("Placement:")
    if placement.get("Constraints"):
        lines.append(f" Constraints:\t{_go_list(placement['Constraints'])}")
    prefs = [p for p in placement.get("Preferences") or () if p.get("Spread")]
    if prefs:
        lines.append(
            f" Preferences:   {_go_list(['spread=' + p['Spread'].get('SpreadDescriptor', '') for p in prefs])}"
        )
    if placement.get("MaxReplicas"):
        lines.append(f" Max Replicas Per Node:   {placement['MaxReplicas']}")
    if spec.get("UpdateConfig") is not None:
        lines += _rollout("UpdateConfig:", spec["UpdateConfig"], "Update order:      ")
    if spec.get("RollbackConfig") is not None:
        lines += _rollout("RollbackConfig:", spec["RollbackConfig"], "Rollback order:    ")
    lines += ["ContainerSpec:", f" Image:\t\t{container.get('Image', '')}"]
    if container.get("Args"):
        lines.append(" Args:\t\t" + " ".join(str(a) for a in container["Args"]))
    if container.get("Env"):
        lines.append(" Env:\t\t" + " ".join(str(e) for e in container["Env"]))
    if container.get("Dir"):
        lines.append(f" Dir:\t\t{container['Dir']}")
    if container.get("User"):
        lines.append(f" User: {container['User']}")
    lines += pretty_mounts(container)
    if template.get("Resources") is not None:
        lines += _resources(template["Resources"])
    networks = [str(n.get("Target", "")) for n in template.get("Networks") or ()]
    if networks:
        lines.append("Networks: " + " ".join((network_names or {}).get(n, n) for n in networks))
    lines.append(f"Endpoint Mode:\t{(spec.get('EndpointSpec') or {}).get('Mode', '')}")
    endpoint = service.get("Endpoint") or {}
    ports = endpoint.get("Ports") if "Ports" in endpoint else (spec.get("EndpointSpec") or {}).get("Ports")
    if ports:
        lines.append("Ports:")
        for p in ports:
            lines += [
                f" PublishedPort = {p.get('PublishedPort', 0)}",
                f"  Protocol = {p.get('Protocol', 'tcp')}",
                f"  TargetPort = {p.get('TargetPort', 0)}",
                f"  PublishMode = {p.get('PublishMode', 'ingress')}",
            ]
    return "".join(line.expandtabs(8).rstrip() + "\n" for line in lines)
