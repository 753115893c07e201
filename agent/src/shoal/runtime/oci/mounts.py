"""A task's ContainerSpec.Mounts as OCI mounts, and what the node must do first.

Shaped after moby (daemon/volumes_unix.go, oci_linux.go WithMounts): a bind's source must exist
on the node (else the task is rejected with Docker's message); a volume comes from this node's
`local` driver (runtime/volumes.py), created on first use, and gets the image's content at its
target copied in when it is empty, unless NoCopy; an anonymous volume (no Source) gets a name
derived from the task and target, so a retried prepare finds the same one; a tmpfs gets Docker's
`noexec,nosuid,nodev` plus its size and mode.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.errors import InvalidArgument
from shoal.runtime import templates
from shoal.runtime.base import RuntimeDriverError, TaskRejected
from shoal.runtime.volumes import ANONYMOUS_LABEL, VolumeMountError, VolumeStore

TMPFS_DEFAULTS = ("noexec", "nosuid", "nodev")
COPY_TIMEOUT = 300.0  # seconds for the first-use copy of an image directory into a volume


@dataclass(frozen=True)
class TaskVolume:
    name: str
    anonymous: bool
    labels: Mapping[str, str]
    no_copy: bool
    target: str
    options: Mapping[str, str]  # the local driver's (DriverConfig.Options): used when the volume is created


def _mounts(task: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The task's mounts, their sources' Go templates rendered for this node (every reader of a
    task's mounts goes through here: prepare, the volumes in use, the anonymous ones to remove)."""
    cspec = ((task.get("Spec") or {}).get("ContainerSpec")) or {}
    return templates.expanded_mounts(task, list(cspec.get("Mounts") or []))


def anonymous_name(task_id: str, target: str) -> str:
    """64 hex characters, as Docker's anonymous volume names; stable for one task's target."""
    return hashlib.sha256(f"{task_id}\0{target}".encode()).hexdigest()


def task_volumes(task: Mapping[str, Any]) -> list[TaskVolume]:
    out = []
    for m in _mounts(task):
        if m.get("Type") != "volume":
            continue
        opts = m.get("VolumeOptions") or {}
        source = str(m.get("Source") or "")
        out.append(
            TaskVolume(
                name=source or anonymous_name(str(task["ID"]), str(m["Target"])),
                anonymous=not source,
                labels=dict(opts.get("Labels") or {}),
                no_copy=bool(opts.get("NoCopy")),
                target=str(m["Target"]),
                options=dict((opts.get("DriverConfig") or {}).get("Options") or {}),
            )
        )
    return out


def volume_users(state_dir: Path) -> dict[str, list[str]]:
    """Volume name → IDs of the tasks whose bundle on this node names it (running or not: a
    task's bundle lives until the task is removed, as a Docker container does)."""
    users: dict[str, list[str]] = {}
    try:
        entries = list(os.scandir(state_dir))
    except FileNotFoundError:
        return users
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        try:
            task = json.loads(Path(entry.path, "task.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(task, dict) and task.get("ID"):
            try:
                vols = task_volumes(task)
            except TaskRejected:  # a source that never rendered: that task never made its volume
                continue
            for vol in vols:
                users.setdefault(vol.name, []).append(str(task["ID"]))
    return users


def _inside(root: Path, target: str) -> Path | None:
    """`target` under `root` without following a symlink anywhere on the way (an image's symlink
    must never send the copy to the node's own files); None if it is not a plain directory."""
    path = root
    for part in Path(target).parts[1:]:
        path = path / part
        if path.is_symlink():
            return None
    return path if path.is_dir() else None


def copy_up(image_root: Path | None, target: str, data_dir: Path) -> None:
    """Docker's copyExistingContents: an empty volume gets what the image has at the target."""
    if image_root is None or any(data_dir.iterdir()):
        return
    source = _inside(image_root, target)
    if source is None:
        return
    res = subprocess.run(
        ["cp", "-a", "--", f"{source}/.", f"{data_dir}/"],
        capture_output=True,
        timeout=COPY_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    if res.returncode != 0:
        raise RuntimeDriverError(f"copying the image's {target} into its volume: {res.stderr.decode(errors='replace')}")


def _bind(target: str, source: str, recursive: bool, propagation: str, readonly: bool) -> dict[str, Any]:
    options = ["rbind" if recursive else "bind", propagation or "rprivate"]
    if readonly:
        options.append("ro")
    return {"destination": target, "type": "bind", "source": source, "options": options}


def _tmpfs(target: str, m: Mapping[str, Any]) -> dict[str, Any]:
    opts = m.get("TmpfsOptions") or {}
    options = [*TMPFS_DEFAULTS, "rprivate"]
    if opts.get("SizeBytes"):
        options.append(f"size={int(opts['SizeBytes'])}")
    if opts.get("Mode"):
        options.append(f"mode={int(opts['Mode']):o}")
    if m.get("ReadOnly"):
        options.append("ro")
    return {"destination": target, "type": "tmpfs", "source": "tmpfs", "options": options}


def check_binds(task: Mapping[str, Any]) -> None:
    """A bind whose source is missing on this node rejects the task (moby's message), unless
    BindOptions.CreateMountpoint asks for it to be made."""
    for m in _mounts(task):
        if m.get("Type") != "bind":
            continue
        source = str(m["Source"])
        if (m.get("BindOptions") or {}).get("CreateMountpoint"):
            continue
        if not os.path.exists(source):
            raise TaskRejected(f'invalid mount config for type "bind": bind source path does not exist: {source}')


def prepare(task: Mapping[str, Any], image_root: Path | None, volumes: VolumeStore) -> list[dict[str, Any]]:
    """Make what the task's mounts need on this node and return them as OCI mounts, in the
    spec's order (runc mounts in order, so a mount inside another's target lands on it)."""
    check_binds(task)
    by_target = {v.target: v for v in task_volumes(task)}
    out: list[dict[str, Any]] = []
    for m in _mounts(task):
        target, readonly = str(m["Target"]), bool(m.get("ReadOnly"))
        kind = m.get("Type")
        if kind == "bind":
            bind = m.get("BindOptions") or {}
            if bind.get("CreateMountpoint"):
                os.makedirs(str(m["Source"]), exist_ok=True)
            recursive, propagation = not bind.get("NonRecursive"), str(bind.get("Propagation") or "")
            out.append(_bind(target, str(m["Source"]), recursive, propagation, readonly))
        elif kind == "volume":
            vol = by_target[target]
            labels = {**vol.labels, **({ANONYMOUS_LABEL: ""} if vol.anonymous else {})}
            try:
                volume, _created = volumes.create(vol.name, labels=labels, driver_opts=vol.options)
                volumes.mount(volume)  # the local driver's type/device/o, on first use
            except (InvalidArgument, VolumeMountError) as e:
                raise TaskRejected(str(e)) from None
            data = Path(volume.mountpoint)
            if not vol.no_copy:
                copy_up(image_root, target, data)
            out.append(_bind(target, str(data), True, "rprivate", readonly))
        elif kind == "tmpfs":
            out.append(_tmpfs(target, m))
        else:
            raise TaskRejected(f"mount type {kind!r} is not supported by shoal")
    return out


def anonymous_volumes(task: Mapping[str, Any]) -> Sequence[str]:
    return [v.name for v in task_volumes(task) if v.anonymous]
