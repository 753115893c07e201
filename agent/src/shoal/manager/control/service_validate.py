"""Validate a service spec as create or update would, without writing (`stack deploy`'s check).

A stack is validated whole before its first write: each service's spec goes through the same
`validate_service_spec`, network resolution and endpoint allocation (published ports in use, VIP
room) as `services.create`/`update`, against the service of that name if it exists, and its
secret and config references are matched to the store as create does (`resolve_refs`).
Networks, secrets and configs the stack is about to create (`NewNetworks`, `NewSecrets`,
`NewConfigs`) count as present: they resolve by name, to their name as a stand-in ID. The
answer is the spec as the store would keep it (targets as network IDs, no credentials), so the
caller can tell an unchanged service from a changed one.
"""

from __future__ import annotations

import copy
from typing import Any

from shoal.errors import InvalidArgument
from shoal.manager.allocator.endpoints import resolve_targets
from shoal.manager.control.secretrefs import stored_objects
from shoal.manager.control.services import _endpoint
from shoal.model.pulloptions import public_service
from shoal.model.secret import CONFIG, SECRET, Kind
from shoal.model.secretrefs import resolve_refs
from shoal.model.service import validate_service_spec
from shoal.model.validate import field
from shoal.store.protocol import StoreReader

Obj = dict[str, Any]


def _pending(names: Any, networks: list[Obj]) -> list[Obj]:
    """Stand-ins for networks not created yet: they resolve by name, to their name."""
    if names is None:
        return []
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise InvalidArgument("NewNetworks must be a list of network names")
    have = {n["Spec"]["Name"] for n in networks}
    return [{"ID": n, "Spec": {"Name": n}} for n in names if n not in have]


def _names(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(n, str) and n for n in value):
        raise InvalidArgument(f"{what} must be a list of names")
    return value


def _pending_objects(store: StoreReader, kind: Kind, names: list[str]) -> list[Obj]:
    """Stand-ins for the secrets or configs the stack creates first (names not taken yet)."""
    have = {o["Spec"]["Name"] for o in store.list_shared(kind.name)}
    return [{"ID": n, "Kind": kind.name, "Spec": {"Name": n}} for n in names if n not in have]


def validate(store: StoreReader, body: Any) -> Obj:
    """`{"Spec": ServiceSpec, "NewNetworks": [...], "NewSecrets": [...], "NewConfigs": [...]}` →
    `{"Spec": the spec as stored}`. NewSecrets/NewConfigs name the objects the stack creates first:
    a reference to one of them resolves (its ID is its name until it exists); any other reference
    must name a stored object ("secret not found: x", as create says)."""
    if not isinstance(body, dict):
        raise InvalidArgument("request body must be an object with Spec")
    spec_body = field(body, "Spec")
    if not isinstance(spec_body, dict) or not field(spec_body, "Name"):
        raise InvalidArgument("Spec must be a service spec with a Name")
    networks = store.list("network")
    pending = _pending(field(body, "NewNetworks"), networks)
    new_objects = _pending_objects(store, SECRET, _names(field(body, "NewSecrets"), "NewSecrets"))
    new_objects += _pending_objects(store, CONFIG, _names(field(body, "NewConfigs"), "NewConfigs"))
    current = store.find_by_name("service", field(spec_body, "Name"))
    spec = validate_service_spec(spec_body, current["Spec"] if current else None)
    spec = resolve_targets(spec, networks + pending)
    container = spec["TaskTemplate"].get("ContainerSpec") or {}
    if container.get("Secrets") or container.get("Configs"):
        container, _used = resolve_refs(container, [*stored_objects(store), *new_objects])
        spec = {**spec, "TaskTemplate": {**spec["TaskTemplate"], "ContainerSpec": container}}
    pending_ids = {n["ID"] for n in pending}
    # ports and VIPs on the networks that exist (new ones have every address free)
    existing_only = copy.deepcopy(spec)
    existing_only["TaskTemplate"]["Networks"] = [
        a for a in spec["TaskTemplate"].get("Networks") or [] if a["Target"] not in pending_ids
    ]
    _endpoint(store, existing_only, current)
    return {"Spec": public_service({"Spec": spec})["Spec"]}
