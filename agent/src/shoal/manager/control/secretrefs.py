"""A service spec's secret and config references checked against the store (control side).

The spec's shape was checked by `model/secretrefs.py`; here each reference is matched to a stored
object ("secret not found: x" otherwise, SwarmKit's message) and the service's write gets the
precondition that those objects still exist, so a concurrent `secret rm` and this write cannot
both succeed.
"""

from __future__ import annotations

from typing import Any

from shoal.model.secret import STORE_KINDS
from shoal.model.secretrefs import resolve_refs
from shoal.store.changes import Change
from shoal.store.protocol import StoreReader

Obj = dict[str, Any]


def resolve_secret_refs(store: StoreReader, spec: Obj) -> tuple[Obj, list[Change]]:
    template = spec["TaskTemplate"]
    container = template.get("ContainerSpec") or {}
    if not container.get("Secrets") and not container.get("Configs"):
        return spec, []
    objects = stored_objects(store)
    container, used = resolve_refs(container, objects)
    spec = {**spec, "TaskTemplate": {**template, "ContainerSpec": container}}
    kind_of = {o["ID"]: o["Kind"] for o in objects}
    return spec, [Change.exists(kind_of[obj_id], obj_id) for obj_id in used]


def stored_objects(store: StoreReader) -> list[Obj]:
    """Every secret and config (each carries its `Kind` marker)."""
    return [o for kind in STORE_KINDS for o in store.list_shared(kind)]
