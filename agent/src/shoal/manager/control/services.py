"""Service and task control calls (SwarmKit's controlapi/service.go, task.go) over the store.

Create, update (and the manual rollback), remove: name checks, version checks, network targets,
published ports and VIPs (checked now, so that a conflict is the caller's 4xx and not a stuck
task). Each returns the changes to commit; a create or update that attaches to networks carries a
precondition that they still exist, so a concurrent `network rm` makes one of the two fail.
"""

from __future__ import annotations

import secrets
from typing import Any

from shoal.errors import Conflict, InvalidArgument, SpecError
from shoal.manager.allocator.addresses import used_addresses
from shoal.manager.allocator.endpoints import resolve_targets, service_endpoint
from shoal.manager.control.filters import Filters, filter_services, filter_tasks
from shoal.manager.control.secretrefs import resolve_secret_refs
from shoal.model.ids import new_id, now_rfc3339
from shoal.model.jobs import is_job
from shoal.model.pulloptions import (
    AUTH_FROM,
    options_for_update,
    public_service,
    public_task,
    registry_auth_options,
    with_pull_options,
)
from shoal.model.resolve import no_names, resolve
from shoal.model.service import rollback_spec, service_object, service_status, updated_service, validate_service_spec
from shoal.model.validate import field
from shoal.store.changes import Change
from shoal.store.protocol import StoreReader

Obj = dict[str, Any]

ADJECTIVES = (
    "brave",
    "calm",
    "eager",
    "fancy",
    "gentle",
    "happy",
    "jolly",
    "keen",
    "lucid",
    "merry",
    "nimble",
    "quirky",
    "serene",
    "tender",
    "vibrant",
    "witty",
)
SCIENTISTS = (
    "archimedes",
    "curie",
    "darwin",
    "euler",
    "fermi",
    "gauss",
    "hopper",
    "kepler",
    "lovelace",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "turing",
    "wozniak",
    "yonath",
)


def generated_name(store: StoreReader) -> str:
    """What dockerd names an unnamed service."""
    for _ in range(100):
        name = f"{secrets.choice(ADJECTIVES)}_{secrets.choice(SCIENTISTS)}"
        if store.find_by_name("service", name) is None:
            return name
    return f"service_{new_id()[:8]}"


def resolve_service(services: list[Obj], ref: str) -> Obj:
    return resolve(services, ref, "service")


def create(store: StoreReader, body: Obj, registry_auth: str | None = None) -> tuple[Obj, list[Change]]:
    """The new service and the changes that create it. `registry_auth` is the X-Registry-Auth
    header its tasks pull with (None: not sent; "": an empty AuthConfig, no credentials)."""
    body = dict(body)
    if not field(body, "Name"):  # "name" names it too: bodies are decoded as Go does
        body = {k: v for k, v in body.items() if not (isinstance(k, str) and k.lower() == "name")}
        body["Name"] = generated_name(store)
    spec = with_pull_options(validate_service_spec(body), registry_auth_options(registry_auth or ""))
    if store.find_by_name("service", spec["Name"]) is not None:
        raise Conflict(f"service {spec['Name']} already exists (name conflicts with an existing object)")
    spec = resolve_targets(spec, store.list("network"))
    spec, refs_exist = resolve_secret_refs(store, spec)
    service = service_object(new_id(), spec, now_rfc3339())
    service["Endpoint"] = _endpoint(store, spec, None)
    return service, [*_networks_exist(spec), *refs_exist, Change(op="create", kind="service", obj=service)]


def update(
    store: StoreReader,
    ref: str,
    version: int,
    body: Obj | None,
    registry_auth: str | None = None,
    auth_from: str = "",
) -> list[Change]:
    """`body` is the new spec; None asks for the manual rollback (`rollback=previous`), which
    returns to the previous spec with the credentials it had. `registry_auth` and `auth_from`
    (registryAuthFrom) choose the credentials of the new spec: `options_for_update`."""
    current = resolve_service(store.list("service"), ref)
    if current["Version"]["Index"] != version:
        raise Conflict(
            f"update out of sequence: service {current['Spec']['Name']} is at version "
            f"{current['Version']['Index']}, the update was for version {version}"
        )
    if auth_from not in AUTH_FROM:
        raise InvalidArgument(f"unsupported registryAuthFrom value {auth_from!r} (must be spec or previous-spec)")
    if body is None:
        if registry_auth is not None:
            raise InvalidArgument(
                "X-Registry-Auth cannot be sent with rollback=previous: a rollback keeps its credentials"
            )
        spec = rollback_spec(current)
    else:
        spec = options_for_update(validate_service_spec(body, current["Spec"]), current, registry_auth, auth_from)
    if spec["Name"] != current["Spec"]["Name"]:
        raise InvalidArgument("renaming services is not supported")
    spec = resolve_targets(spec, store.list("network"))
    spec, refs_exist = resolve_secret_refs(store, spec)
    updated = updated_service(current, spec, now_rfc3339())
    updated["Endpoint"] = _endpoint(store, spec, current)
    if body is None and not is_job(spec):  # a job is never rolled out: going back just runs it again
        updated["UpdateStatus"] = {
            "State": "rollback_started",
            "StartedAt": updated["UpdatedAt"],
            "Message": "manually requested rollback",
        }
    change = Change(op="update", kind="service", obj=updated, obj_id=current["ID"], expected_version=version)
    return [*_networks_exist(spec), *refs_exist, change]


def remove(store: StoreReader, ref: str) -> list[Change]:
    service = resolve_service(store.list("service"), ref)
    return [Change(op="delete", kind="service", obj_id=service["ID"])]


def _networks_exist(spec: Obj) -> list[Change]:
    targets = sorted({a["Target"] for a in spec["TaskTemplate"].get("Networks") or []})
    return [Change.exists("network", target) for target in targets]


def _endpoint(store: StoreReader, spec: Obj, current: Obj | None) -> Obj:
    """Published ports and VIPs, allocated now: a port in use is a 409, a bad spec a 400."""
    services = store.list("service")
    # read-only: a copy of every task per service write cost a second at 30,000 tasks
    used = used_addresses(store.list_shared("task"), services, store.list_shared("node"))
    try:
        return service_endpoint(
            spec,
            current["ID"] if current else None,
            services,
            store.list("network"),
            used,
            (current or {}).get("Endpoint"),
        )
    except SpecError as exc:
        raise Conflict(exc.message) if "in use" in exc.message else InvalidArgument(exc.message) from exc


# What clients read (services, tasks) leaves out the registry credentials: `public_service`. Reads
# share the stored objects (`list_shared`): these views are serialized, never modified.


def inspect_service(store: StoreReader, ref: str) -> Obj:
    return public_service(resolve_service(store.list_shared("service"), ref))


def list_services(store: StoreReader, filters: Filters, with_status: bool) -> list[Obj]:
    services = filter_services(store.list_shared("service"), filters)
    services.sort(key=lambda s: s["Spec"]["Name"])
    if with_status:
        by_service: dict[str, list[Obj]] = {}
        for t in store.list_shared("task"):  # one pass, not one per service (30 x 30,000 at scale)
            by_service.setdefault(t["ServiceID"], []).append(t)
        services = [{**s, "ServiceStatus": service_status(s, by_service.get(s["ID"], []))} for s in services]
    return [public_service(s) for s in services]


def list_tasks(store: StoreReader, filters: Filters) -> list[Obj]:
    tasks = filter_tasks(store.list_shared("task"), filters, store.list_shared("service"), store.list_shared("node"))
    tasks.sort(key=lambda t: (t["ServiceID"], t.get("Slot") or 0, t.get("NodeID") or "", t["CreatedAt"]))
    return [public_task(t) for t in tasks]


def inspect_task(store: StoreReader, ref: str) -> Obj:
    return public_task(resolve(store.list_shared("task"), ref, "task", no_names))


# ---- `service logs`: which tasks to ask for logs (the fan-out to their nodes is the API's transport)
NOT_STARTED = ("new", "pending", "assigned", "rejected")  # no process has run: nothing was logged


def log_tasks(store: StoreReader, ref: str) -> tuple[Obj, list[Obj]]:
    """The service `ref` names (NotFound once it is gone: a follow stops there) and those of its
    tasks that have a log on some node: placed and started, running or ended since. Shared reads:
    the caller only reads them."""
    service = resolve_service(store.list_shared("service"), ref)
    tasks = [
        t
        for t in store.list_shared("task")
        if t["ServiceID"] == service["ID"] and t.get("NodeID") and t["Status"]["State"] not in NOT_STARTED
    ]
    return service, tasks
