"""List filters, one implementation per object kind, with Docker's semantics (the server's job only).

Docker (daemon/cluster/filters.go, SwarmKit controlapi, daemon/network/filter.go): different keys
must all match, several values of one key any of them, except labels, which must all match
(`k` wants the key, `k=v` the pair). An unknown key is a 400 `invalid filter 'key'`; so is a value
outside a key's set (`invalid filter 'role=boss'`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from shoal.errors import InvalidArgument
from shoal.model.resolve import resolve
from shoal.model.task import task_dirty

Filters = Mapping[str, Sequence[str]]
Obj = dict[str, Any]

NODE_FILTERS = ("id", "label", "membership", "name", "node.label", "role")
SERVICE_FILTERS = ("id", "label", "mode", "name")
TASK_FILTERS = ("desired-state", "id", "label", "name", "node", "service", "_up-to-date")
NETWORK_FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")
IMAGE_FILTERS = ("dangling", "label", "reference")
IMAGE_PRUNE_FILTERS = ("dangling",)

SERVICE_MODES = {
    "replicated": "Replicated",
    "global": "Global",
    "replicated-job": "ReplicatedJob",
    "global-job": "GlobalJob",
}
DESIRED_STATES = ("running", "shutdown", "accepted", "remove", "ready", "complete")  # complete: job tasks
TRUE_FALSE = {"true": True, "1": True, "false": False, "0": False}


def check_keys(filters: Filters, known: Iterable[str]) -> None:
    for key in filters:
        if key not in known:
            raise InvalidArgument(f"invalid filter '{key}'")


def check_values(filters: Filters, key: str, allowed: Iterable[str], *, fold: bool = False) -> None:
    allowed = set(allowed)
    for value in filters.get(key, ()):
        if (value.lower() if fold else value) not in allowed:
            raise InvalidArgument(f"invalid filter '{key}={value}'")


def labels_match(labels: Mapping[str, str] | None, wanted: Sequence[str]) -> bool:
    labels = labels or {}
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def _keep(obj: Obj, filters: Filters, checks: Mapping[str, Callable[[Obj, str], bool]]) -> bool:
    return all(not filters.get(key) or any(check(obj, v) for v in filters[key]) for key, check in checks.items())


def _prefix(text: str, value: str) -> bool:
    return text.startswith(value)


# ---- nodes
def node_names(node: Obj) -> list[str]:
    return [n for n in ((node.get("Description") or {}).get("Hostname"), node["Spec"].get("Name")) if n]


def filter_nodes(nodes: list[Obj], filters: Filters) -> list[Obj]:
    """`name` and `id` are prefixes (of the hostname or Spec.Name); `label` the engine's labels,
    `node.label` the node's own; `role` and `membership` case-insensitive."""
    check_keys(filters, NODE_FILTERS)
    check_values(filters, "role", ("manager", "worker"), fold=True)
    check_values(filters, "membership", ("accepted", "pending"), fold=True)
    checks: dict[str, Callable[[Obj, str], bool]] = {
        "id": lambda n, v: n["ID"].startswith(v),
        "name": lambda n, v: any(name.startswith(v) for name in node_names(n)),
        "role": lambda n, v: n["Spec"].get("Role") == v.lower(),
        "membership": lambda n, v: n["Spec"].get("Membership", "accepted") == v.lower(),
    }
    out = []
    for n in nodes:
        engine = ((n.get("Description") or {}).get("Engine") or {}).get("Labels")
        if not _keep(n, filters, checks):
            continue
        if not labels_match(engine, filters.get("label", ())):
            continue
        if not labels_match(n["Spec"].get("Labels"), filters.get("node.label", ())):
            continue
        out.append(n)
    return out


# ---- services
def filter_services(services: list[Obj], filters: Filters) -> list[Obj]:
    """`id` and `name` are prefixes; `mode` replicated, global, replicated-job or global-job."""
    check_keys(filters, SERVICE_FILTERS)
    check_values(filters, "mode", SERVICE_MODES)
    checks: dict[str, Callable[[Obj, str], bool]] = {
        "id": lambda s, v: s["ID"].startswith(v),
        "name": lambda s, v: s["Spec"]["Name"].startswith(v),
        "mode": lambda s, v: SERVICE_MODES[v] in (s["Spec"].get("Mode") or {}),
    }
    wanted = filters.get("label", ())
    return [s for s in services if _keep(s, filters, checks) and labels_match(s["Spec"].get("Labels"), wanted)]


# ---- tasks
def task_name(task: Obj, service_names: Mapping[str, str]) -> str:
    """SwarmKit's naming.Task: `<service>.<slot>.<task id>` (global services: the node ID)."""
    unit = task.get("Slot") or task.get("NodeID")
    return f"{service_names.get(task['ServiceID'], task['ServiceID'])}.{unit}.{task['ID']}"


def filter_tasks(tasks: list[Obj], filters: Filters, services: list[Obj], nodes: list[Obj]) -> list[Obj]:
    """`service` and `node` by ID, name or unique ID prefix (an unknown one is a 404, as Docker's);
    `name` a prefix of the task's name (`web.1` matches web.1's tasks); `id` a prefix; `label` the
    service's labels; `_up-to-date` (what `service create` polls) tasks that run the current spec."""
    check_keys(filters, TASK_FILTERS)
    check_values(filters, "desired-state", DESIRED_STATES, fold=True)
    by_id = {s["ID"]: s for s in services}
    names = {s["ID"]: s["Spec"]["Name"] for s in services}
    wanted_services = {resolve(services, ref, "service")["ID"] for ref in filters.get("service", ())}
    wanted_nodes = {resolve(nodes, ref, "node", node_names)["ID"] for ref in filters.get("node", ())}
    up_to_date = any(v in ("1", "true", "True") for v in filters.get("_up-to-date", ()))
    checks: dict[str, Callable[[Obj, str], bool]] = {
        "id": lambda t, v: t["ID"].startswith(v),
        "name": lambda t, v: task_name(t, names).startswith(v),
        "desired-state": lambda t, v: t["DesiredState"] == v.lower(),
    }
    out = []
    for t in tasks:
        if wanted_services and t["ServiceID"] not in wanted_services:
            continue
        if wanted_nodes and t.get("NodeID") not in wanted_nodes:
            continue
        if not _keep(t, filters, checks):
            continue
        service = by_id.get(t["ServiceID"])
        if filters.get("label") and not labels_match((service or {"Spec": {}})["Spec"].get("Labels"), filters["label"]):
            continue
        if up_to_date and (service is None or task_dirty(service, t)):
            continue
        out.append(t)
    return out


# ---- networks (Docker's view: Name, Id, Driver, Scope, Labels)
def docker_match(pattern: str, text: str) -> bool:
    """docker's filters.Args.Match: equal, or the value as a regular expression found in the text."""
    if pattern == text:
        return True
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def builtin_network(view: Obj) -> bool:
    """Networks shoal makes itself (Docker's "predefined"): the ingress and the local gateway bridge."""
    return bool(view.get("Ingress")) or view.get("Scope") == "local"


def filter_networks(views: list[Obj], filters: Filters, in_use: set[str]) -> list[Obj]:
    """`name` and `id` equal or a regular expression found in them (Docker's Match); `driver` and
    `scope` exact; `type` builtin or custom; `dangling=true` custom networks no service uses."""
    check_keys(filters, NETWORK_FILTERS)
    check_values(filters, "scope", ("swarm", "global", "local"))
    check_values(filters, "type", ("builtin", "custom"))
    check_values(filters, "dangling", TRUE_FALSE)
    checks: dict[str, Callable[[Obj, str], bool]] = {
        "name": lambda n, v: docker_match(v, n["Name"]),
        "id": lambda n, v: docker_match(v, n["Id"]),
        "driver": lambda n, v: n["Driver"] == v,
        "scope": lambda n, v: n["Scope"] == v,
        "type": lambda n, v: builtin_network(n) == (v == "builtin"),
        "dangling": lambda n, v: (not builtin_network(n) and n["Id"] not in in_use) == TRUE_FALSE[v],
    }
    wanted = filters.get("label", ())
    return [n for n in views if _keep(n, filters, checks) and labels_match(n.get("Labels"), wanted)]


# ---- images (this node's: `GET /images/json`, `POST /images/prune`)
class ImageLike(Protocol):
    """What the image filters read of a stored image (`runtime.images.Image`)."""

    @property
    def repo_tags(self) -> list[str]: ...

    @property
    def labels(self) -> Mapping[str, str] | None: ...


def _reference_match(image: ImageLike, wanted: Sequence[str]) -> bool:
    return any(t == r or t.split(":")[0] == r for t in image.repo_tags for r in wanted)


Image = TypeVar("Image", bound=ImageLike)


def filter_images(images: Iterable[Image], filters: Filters) -> list[Image]:
    """`reference` a name:tag or a name (any of its tags); `dangling` true for untagged images only,
    false for tagged ones (the last value given counts); `label` the image's labels. A key given
    with no values filters nothing, as for the other kinds."""
    check_keys(filters, IMAGE_FILTERS)
    check_values(filters, "dangling", TRUE_FALSE)
    out = []
    for image in images:
        if filters.get("dangling") and TRUE_FALSE[filters["dangling"][-1]] != (not image.repo_tags):
            continue
        if filters.get("reference") and not _reference_match(image, filters["reference"]):
            continue
        if filters.get("label") and not labels_match(image.labels, filters["label"]):
            continue
        out.append(image)
    return out


def prune_dangling_only(filters: Filters) -> bool:
    """`POST /images/prune`: `dangling=true` (the default) prunes untagged images only, `false` every
    unused image (the last value given counts)."""
    check_keys(filters, IMAGE_PRUNE_FILTERS)
    check_values(filters, "dangling", TRUE_FALSE)
    return TRUE_FALSE[(filters.get("dangling") or ["true"])[-1]]
