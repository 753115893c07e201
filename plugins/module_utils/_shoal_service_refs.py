# Copyright: shoal developers
# Apache License 2.0 (see galaxy.yml)
"""swarm_service's ``secrets`` and ``configs`` options (community.docker's docker_swarm_service shape):
their argument spec, the module's view of them, and how they are written into a ContainerSpec.

The swarm resolves a reference by name (``SecretName``) and fills its ID; the module compares names,
file names, owners and modes, so that a secret replaced under the same name (possible only while no
service uses it) does not look like a change.
"""

from __future__ import annotations

from typing import Any

DEFAULT_MODE = 0o444
KINDS = (
    ("secrets", "secret", "Secrets", "SecretID", "SecretName"),
    ("configs", "config", "Configs", "ConfigID", "ConfigName"),
)


def refs_argument_spec() -> dict[str, Any]:
    out = {}
    for option, kind, _field, _id, _name in KINDS:
        out[option] = {
            "type": "list",
            "elements": "dict",
            "no_log": False,  # references (names, files), not the data: as community.docker declares them
            "options": {
                f"{kind}_id": {"type": "str"},
                f"{kind}_name": {"type": "str", "required": True},
                "filename": {"type": "str"},
                "uid": {"type": "str"},
                "gid": {"type": "str"},
                "mode": {"type": "int"},
            },
        }
    return out


def desired_refs(params: dict[str, Any]) -> dict[str, Any]:
    """{"secrets": [...], "configs": [...]} in the module's terms, each None when not given (leave as is)."""
    out: dict[str, Any] = {}
    for option, kind, _field, _id, _name in KINDS:
        given = params.get(option)
        if given is None:
            out[option] = None
            continue
        out[option] = [
            {
                f"{kind}_name": r[f"{kind}_name"],
                "filename": r.get("filename") or r[f"{kind}_name"],
                "uid": r.get("uid") or "0",
                "gid": r.get("gid") or "0",
                "mode": DEFAULT_MODE if r.get("mode") is None else r["mode"],
            }
            for r in given
        ]
    return out


def current_refs(container: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for option, kind, field, _id, name_field in KINDS:
        out[option] = [
            {
                f"{kind}_name": r.get(name_field),
                "filename": (r.get("File") or {}).get("Name"),
                "uid": (r.get("File") or {}).get("UID") or "0",
                "gid": (r.get("File") or {}).get("GID") or "0",
                "mode": (r.get("File") or {}).get("Mode", DEFAULT_MODE),
            }
            for r in container.get(field) or []
        ]
    return out


def apply_refs(container: dict[str, Any], view: dict[str, Any], names: list[str], params: dict[str, Any]) -> None:
    """Write the references of ``view`` (those among ``names``) into ``container``; IDs given by the user go along."""
    for option, kind, field, id_field, name_field in KINDS:
        if option not in names or view.get(option) is None:
            continue
        ids = {r[f"{kind}_name"]: r.get(f"{kind}_id") for r in params.get(option) or []}
        refs = []
        for r in view[option]:
            ref: dict[str, Any] = {
                name_field: r[f"{kind}_name"],
                "File": {"Name": r["filename"], "UID": r["uid"], "GID": r["gid"], "Mode": r["mode"]},
            }
            if ids.get(r[f"{kind}_name"]):
                ref[id_field] = ids[r[f"{kind}_name"]]
            refs.append(ref)
        container[field] = refs
