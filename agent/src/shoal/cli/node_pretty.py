"""`shoal node inspect --pretty`: docker's nodeInspectPrettyTemplate, line for line.

docker separates labels from values with tabs that a terminal expands to column 24; shoal pads
with spaces to the same column, so that the output looks the same and greps the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shoal.cli.output import bytes_size, capitalize, field, go_time


def _kv_lines(labels: Mapping[str, str]) -> list[str]:
    return [f" - {k}={v}" if v else f" - {k}" for k, v in sorted(labels.items())]


def _plugins(plugins: list[Mapping[str, str]]) -> list[str]:
    by_type: dict[str, list[str]] = {}
    for p in plugins:
        by_type.setdefault(str(p.get("Type", "")), []).append(str(p.get("Name", "")))
    return [field(f"  {t}:", ", ".join(sorted(names))) for t, names in sorted(by_type.items())]


def pretty_node(node: Mapping[str, Any]) -> str:
    spec = node.get("Spec") or {}
    desc = node.get("Description") or {}
    status = node.get("Status") or {}
    engine = desc.get("Engine") or {}
    platform = desc.get("Platform") or {}
    resources = desc.get("Resources") or {}
    lines = [field("ID:", node.get("ID", ""))]
    if spec.get("Name"):
        lines.append(field("Name:", spec["Name"]))
    if spec.get("Labels"):
        lines += ["Labels:", *_kv_lines(spec["Labels"])]
    lines += [
        field("Hostname:", desc.get("Hostname", "")),
        field("Joined at:", go_time(node.get("CreatedAt", ""))),
        "Status:",
        field(" State:", capitalize(status.get("State", ""))),
    ]
    if status.get("Message"):
        lines.append(field(" Message:", status["Message"]))
    lines.append(field(" Availability:", capitalize(spec.get("Availability", ""))))
    if status.get("Addr"):
        lines.append(field(" Address:", status["Addr"]))
    ms = node.get("ManagerStatus")
    if ms:
        lines += [
            "Manager Status:",
            field(" Address:", ms.get("Addr", "")),
            field(" Raft Status:", capitalize(ms.get("Reachability", ""))),
            field(" Leader:", "Yes" if ms.get("Leader") else "No"),
        ]
    lines += [
        "Platform:",
        field(" Operating System:", platform.get("OS", "")),
        field(" Architecture:", platform.get("Architecture", "")),
        "Resources:",
        field(" CPUs:", int(resources.get("NanoCPUs") or 0) // 1_000_000_000),
        field(" Memory:", bytes_size(float(resources.get("MemoryBytes") or 0))),
    ]
    if engine.get("Plugins"):
        lines += ["Plugins:", *_plugins(engine["Plugins"])]
    lines.append(field("Engine Version:", engine.get("EngineVersion", "")))
    if engine.get("Labels"):
        lines += ["Engine Labels:", *_kv_lines(engine["Labels"])]
    tls = desc.get("TLSInfo") or {}
    if any(tls.values()):
        lines += [
            "TLS Info:",
            " TrustRoot:",
            str(tls.get("TrustRoot", "")).rstrip("\n"),
            field(" Issuer Subject:", tls.get("CertIssuerSubject", "")),
            field(" Issuer Public Key:", tls.get("CertIssuerPublicKey", "")),
        ]
    return "".join(line + "\n" for line in lines)
