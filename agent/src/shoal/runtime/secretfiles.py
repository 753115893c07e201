"""A task's secret and config files: held in memory, written only to a tmpfs made for the task.

The managers send a node the payloads its tasks use with each assignment (`Payloads`, replaced
whole by every answer, never written anywhere). When a task is prepared, a tmpfs is mounted at
RUN_DIR/secrets/<task-id> (mode 0700, sized to its files), each file is written there with the
reference's UID, GID and Mode, and bound read-only into the container at its target
(`/run/secrets/<name>` for secrets, `/<name>` for configs, as Docker does). The tmpfs is
unmounted when the task is removed: nothing of it ever reaches the node's disk, as with
Docker's per-container secrets tmpfs.
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.model.secretrefs import REF_KINDS, target_path
from shoal.runtime import linux
from shoal.runtime.base import TaskRejected

MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
MIN_TMPFS = 64 << 10


class Payloads:
    """The payloads of the node's current assignments (base64, as sent), by reference field and ID."""

    def __init__(self) -> None:
        self._by_kind: dict[str, dict[str, str]] = {}

    def replace(self, answer: Mapping[str, Any] | None) -> None:
        self._by_kind = {k: dict(v) for k, v in (answer or {}).items() if isinstance(v, Mapping)}

    def get(self, spec_field: str, obj_id: str) -> bytes | None:
        data = self._by_kind.get(spec_field, {}).get(obj_id)
        return None if data is None else base64.b64decode(data)

    def __repr__(self) -> str:  # never the data, even in a debug log or a traceback
        return f"Payloads({sum(len(v) for v in self._by_kind.values())} items)"


@dataclass(frozen=True)
class TaskFile:
    target: str  # absolute path inside the container
    data: bytes
    uid: int
    gid: int
    mode: int

    def __repr__(self) -> str:
        return f"TaskFile({self.target!r}, {len(self.data)} bytes)"


def files_for(task: Mapping[str, Any], payloads: Payloads) -> list[TaskFile]:
    """The task's files, from its ContainerSpec's references and the delivered payloads; a
    reference whose payload did not come is the task's rejection (it would run without it)."""
    container = (task.get("Spec") or {}).get("ContainerSpec") or {}
    out = []
    for rk in REF_KINDS:
        for ref in container.get(rk.spec_field) or []:
            data = payloads.get(rk.spec_field, ref[rk.id_field])
            if data is None:
                raise TaskRejected(f"{rk.kind.name} {ref[rk.name_field]} was not delivered to this node")
            f = ref["File"]
            out.append(TaskFile(target_path(rk, ref), data, int(f["UID"]), int(f["GID"]), int(f["Mode"])))
    return out


def host_path(tmpfs_dir: Path, index: int) -> Path:
    return tmpfs_dir / f"{index:03d}"


def bindings(files: list[TaskFile], tmpfs_dir: Path) -> tuple[tuple[str, str], ...]:
    """(container path, host path) per file, for the bundle's read-only binds."""
    return tuple((f.target, str(host_path(tmpfs_dir, i))) for i, f in enumerate(files))


def materialise(tmpfs_dir: Path, files: list[TaskFile]) -> None:
    """Mount the task's tmpfs and write its files (idempotent: an existing mount is reused)."""
    if not files:
        return
    tmpfs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not os.path.ismount(tmpfs_dir):
        size = max(MIN_TMPFS, 2 * sum(len(f.data) + 4096 for f in files))
        linux.mount("tmpfs", str(tmpfs_dir), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, f"mode=0700,size={size}")
    for i, f in enumerate(files):
        path = host_path(tmpfs_dir, i)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, f.data)
            os.fchown(fd, f.uid, f.gid)
            os.fchmod(fd, f.mode)
        finally:
            os.close(fd)


def release(tmpfs_dir: Path) -> None:
    """Unmount the task's tmpfs (its files go with it) and remove the mount point."""
    if os.path.ismount(tmpfs_dir):
        linux.umount(str(tmpfs_dir))
    with contextlib.suppress(FileNotFoundError, OSError):
        tmpfs_dir.rmdir()
