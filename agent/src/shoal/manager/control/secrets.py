"""Secret and config control calls (SwarmKit's controlapi/secret.go and config.go) over the store.

One implementation for both kinds (`model.secret.Kind` says what differs); `configs.py` binds it
to configs. Create refuses a taken name (409); a concurrent create of the same name is refused
by the store's name index (409 too). Remove
refuses an object a service uses (400 naming the services) and holds under a concurrent service
create or update the same way (a service write carries the precondition that its references
still exist). Views never carry a secret's data.
"""

from __future__ import annotations

from typing import Any

from shoal.errors import Conflict, InvalidArgument
from shoal.manager.control.filters import Filters, check_keys, labels_match
from shoal.model.ids import new_id, now_rfc3339
from shoal.model.resolve import resolve
from shoal.model.secret import (
    Kind,
    is_kind,
    new_object,
    updated_object,
    validate_spec,
    validate_update,
    view,
)
from shoal.model.secretrefs import REF_KINDS, used_ids
from shoal.store.changes import Change
from shoal.store.protocol import StoreReader

Obj = dict[str, Any]
FILTERS = ("id", "label", "name", "names")


def _objects(store: StoreReader, kind: Kind) -> list[Obj]:
    return [o for o in store.list_shared(kind.name) if is_kind(o, kind)]


def _read_at(store: StoreReader, kind: str) -> int:
    return max((o["Version"]["Index"] for o in store.list_shared(kind)), default=0)


def find(store: StoreReader, kind: Kind, ref: str) -> Obj:
    """By full ID, name, or unique ID prefix (NotFound: 404 "secret x not found")."""
    return resolve(_objects(store, kind), ref, kind.name)


def create(store: StoreReader, kind: Kind, body: Any) -> tuple[Obj, list[Change]]:
    spec = validate_spec(kind, body)
    if any(o["Spec"]["Name"] == spec["Name"] for o in _objects(store, kind)):
        raise Conflict(f"{kind.name} {spec['Name']} already exists (name conflicts with an existing object)")
    obj = new_object(kind, new_id(), spec, now_rfc3339())
    return obj, [Change(op="create", kind=kind.name, obj=obj)]


def update(store: StoreReader, kind: Kind, ref: str, version: int, body: Any) -> list[Change]:
    current = find(store, kind, ref)
    if current["Version"]["Index"] != version:
        raise Conflict(
            f"update out of sequence: {kind.name} {current['Spec']['Name']} is at version "
            f"{current['Version']['Index']}, the update was for version {version}"
        )
    spec = validate_update(kind, current, body)
    obj = updated_object(current, spec, now_rfc3339())
    return [Change(op="update", kind=kind.name, obj=obj, obj_id=obj["ID"], expected_version=version)]


def users_of(obj_id: str, services: list[Obj]) -> list[str]:
    """Names of the services whose tasks use the secret or config."""
    return sorted(
        s["Spec"]["Name"]
        for s in services
        if any(obj_id in used_ids(s["Spec"]["TaskTemplate"].get("ContainerSpec") or {}, rk) for rk in REF_KINDS)
    )


def remove(store: StoreReader, kind: Kind, ref: str) -> list[Change]:
    obj = find(store, kind, ref)
    services = store.list_shared("service")
    users = users_of(obj["ID"], services)
    if users:
        noun = "service" if len(users) == 1 else "services"
        raise InvalidArgument(
            f"{kind.name} '{obj['Spec']['Name']}' is in use by the following {noun}: {', '.join(users)}"
        )
    return [
        Change.none_newer("service", _read_at(store, "service")),
        Change(op="delete", kind=kind.name, obj_id=obj["ID"], expected_version=obj["Version"]["Index"]),
    ]


def inspect(store: StoreReader, kind: Kind, ref: str) -> Obj:
    return view(kind, find(store, kind, ref))


def list_objects(store: StoreReader, kind: Kind, filters: Filters) -> list[Obj]:
    """Docker's filters: `names` exact, `name` and `id` prefixes, `label` (all must match)."""
    check_keys(filters, FILTERS)
    out = []
    for o in _objects(store, kind):
        name = o["Spec"]["Name"]
        if filters.get("names") and name not in filters["names"]:
            continue
        if filters.get("name") and not any(name.startswith(v) for v in filters["name"]):
            continue
        if filters.get("id") and not any(o["ID"].startswith(v) for v in filters["id"]):
            continue
        if not labels_match(o["Spec"].get("Labels"), filters.get("label", ())):
            continue
        out.append(view(kind, o))
    return sorted(out, key=lambda o: o["Spec"]["Name"])
