"""Which secret and config payloads a node receives with its assignments (pure).

SwarmKit's dispatcher sends a node the secrets of the tasks assigned to it and nothing else; so
does this: a payload is in a node's answer only while one of its tasks that is meant to run (not
yet terminal) references it. The worker keeps them in memory and writes them to a tmpfs per task
(`runtime/secretfiles.py`). Payloads stay in their API form (base64).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shoal.model.secret import is_kind
from shoal.model.secretrefs import REF_KINDS, used_ids
from shoal.model.task import is_terminal

Obj = dict[str, Any]
STOPPING = ("shutdown", "remove")  # a job's tasks want "complete" from creation: they need theirs


def needs_payloads(task: Mapping[str, Any]) -> bool:
    state = (task.get("Status") or {}).get("State") or "new"
    return task.get("DesiredState") not in STOPPING and not is_terminal(state)


def payloads_for(tasks: Iterable[Mapping[str, Any]], objects: Iterable[Mapping[str, Any]]) -> Obj:
    """{"Secrets": {id: base64 data}, "Configs": {...}} for the tasks' references; {} when none,
    so a node whose tasks use none gets the answer it always got."""
    wanted: dict[str, set[str]] = {rk.spec_field: set() for rk in REF_KINDS}
    for task in tasks:
        if not needs_payloads(task):
            continue
        container = (task.get("Spec") or {}).get("ContainerSpec") or {}
        for rk in REF_KINDS:
            wanted[rk.spec_field] |= used_ids(container, rk)
    if not any(wanted.values()):
        return {}
    out: Obj = {}
    objects = list(objects)
    for rk in REF_KINDS:
        ids = wanted[rk.spec_field]
        found = {o["ID"]: o["Spec"]["Data"] for o in objects if o["ID"] in ids and is_kind(o, rk.kind)}
        if found:
            out[rk.spec_field] = found
    return out
