"""This node's volumes as Docker's `/volumes` calls answer them: filters, create, remove, prune.

Volumes are node-local (Docker's `local` driver), so these work on the node's own VolumeStore
(runtime/volumes.py) and never touch the replicated store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shoal.errors import InvalidArgument
from shoal.manager.control.filters import TRUE_FALSE, Filters, check_keys, check_values, docker_match, labels_match
from shoal.model.validate import _object, _str, known_fields, validate_labels
from shoal.runtime.volumes import Volume, VolumeStore, volume_size

VOLUME_FILTERS = ("dangling", "driver", "label", "name")
PRUNE_FILTERS = ("label", "label!", "all")
CREATE_FIELDS = ("Name", "Driver", "DriverOpts", "Labels", "ClusterVolumeSpec")


def list_volumes(store: VolumeStore, filters: Filters) -> dict[str, Any]:
    """`GET /volumes`: `name` (substring, as Docker's), `label`, `driver`, `dangling` (unused)."""
    check_keys(filters, VOLUME_FILTERS)
    check_values(filters, "dangling", TRUE_FALSE)
    users = store.users()
    out = []
    for volume in store.list():
        if filters.get("name") and not any(docker_match(n, volume.name) for n in filters["name"]):
            continue
        if filters.get("driver") and volume.driver not in filters["driver"]:
            continue
        if filters.get("label") and not labels_match(volume.labels, filters["label"]):
            continue
        if filters.get("dangling") and TRUE_FALSE[filters["dangling"][-1]] != (not users.get(volume.name)):
            continue
        out.append(volume.inspect())
    return {"Volumes": out, "Warnings": None}


def create_volume(store: VolumeStore, body: Any) -> dict[str, Any]:
    """`POST /volumes/create` (Docker's VolumeCreateOptions); an existing name is returned as it is."""
    req = known_fields("volume create", _object("volume create", body), CREATE_FIELDS)
    if req.get("ClusterVolumeSpec"):
        raise InvalidArgument("cluster volumes (ClusterVolumeSpec) are not supported by shoal")
    volume, _created = store.create(
        name=_str("Name", req.get("Name") or ""),
        labels=validate_labels("Labels", req.get("Labels")),
        driver=_str("Driver", req.get("Driver") or ""),
        driver_opts=validate_labels("DriverOpts", req.get("DriverOpts")),
    )
    return volume.inspect()


def volumes_usage(store: VolumeStore) -> list[dict[str, Any]]:
    """The Volumes of `GET /system/df`: the only place Docker fills UsageData, with Size (bytes under
    the volume's data, as Docker's local driver measures it) and RefCount (tasks on this node using it)."""
    users = store.users()
    out = []
    for volume in store.list():
        item = volume.inspect(users.get(volume.name) or [])
        item["UsageData"]["Size"] = volume_size(volume)
        out.append(item)
    return out


def _prune_match(filters: Filters) -> Any:
    def keep(volume: Volume) -> bool:
        if filters.get("label") and not labels_match(volume.labels, filters["label"]):
            return False
        return not (filters.get("label!") and labels_match(volume.labels, filters["label!"]))

    return keep


def prune_volumes(store: VolumeStore, filters: Filters) -> Mapping[str, Any]:
    """`POST /volumes/prune`: unused anonymous volumes, every unused one with `all=true`."""
    check_keys(filters, PRUNE_FILTERS)
    check_values(filters, "all", TRUE_FALSE)
    all_volumes = TRUE_FALSE[(filters.get("all") or ["false"])[-1]]
    deleted, reclaimed = store.prune(all_volumes=all_volumes, labels=_prune_match(filters))
    return {"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed}
