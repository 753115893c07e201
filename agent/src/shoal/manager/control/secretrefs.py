"""A service spec's secret and config references checked against the store (control side).

The spec's shape was checked by `model/secretrefs.py`; here each reference is matched to a stored
object ("secret not found: x" otherwise, SwarmKit's message) and the service's write gets the
precondition that those objects still exist, so a concurrent `secret rm` and this write cannot
both succeed.
"""

from __future__ import annotations

from typing import Any

from shoal.model.secret import STORE_KIND
from shoal.model.secretrefs import resolve_refs
from shoal.store.changes import Change
from shoal.store.protocol import StoreReader

Obj = dict[str, Any]


def resolve_secret_refs(store: StoreReader, spec: Obj) -> tuple[Obj, list[Change]]:
    template = spec["TaskTemplate"]
    container = template.get("ContainerSpec") or {}
    if not container.get("Secrets") and not container.get("Configs"):
        return spec, []
    container, used = resolve_refs(container, store.list_shared(STORE_KIND))
    spec = {**spec, "TaskTemplate": {**template, "ContainerSpec": container}}
    return spec, [Change.exists(STORE_KIND, obj_id) for obj_id in used]
