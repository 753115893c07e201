"""This node's volumes: Docker's `local` driver (moby volume/local), node-local like Docker's.

A volume is a directory, ROOT/<name>/_data, with its metadata beside it in ROOT/<name>/volume.json
(driver, labels, creation time, whether it was made for one task's anonymous mount). Volumes are
created on first use by a task or by `POST /volumes/create` and outlive the tasks that use them;
only `volume rm` / `volume prune` remove them, and never one a task on this node still uses.
Who uses a volume is the task driver's knowledge (its bundles), handed in as `users`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.errors import Conflict, InvalidArgument, NotFound
from shoal.model.mounts import LOCAL_DRIVER, volume_name_error

DEFAULT_ROOT = Path("/var/lib/shoal/volumes")
META = "volume.json"
ANONYMOUS_LABEL = "com.docker.volume.anonymous"  # what Docker labels an anonymous volume with
Users = Callable[[], Mapping[str, list[str]]]  # volume name → IDs of the tasks on this node using it


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def _no_users() -> Mapping[str, list[str]]:
    return {}


@dataclass
class Volume:
    name: str
    mountpoint: str
    created_at: str
    labels: dict[str, str] = field(default_factory=dict)
    driver: str = LOCAL_DRIVER

    def inspect(self, users: Iterable[str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Name": self.name,
            "Driver": self.driver,
            "Mountpoint": self.mountpoint,
            "CreatedAt": self.created_at,
            "Labels": dict(self.labels) or None,
            "Scope": "local",
            "Options": None,
        }
        if users is not None:
            out["UsageData"] = {"RefCount": len(list(users)), "Size": -1}
        return out

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in self.labels


class VolumeStore:
    def __init__(self, root: Path | str = DEFAULT_ROOT, users: Users = _no_users) -> None:
        self.root = Path(root)
        self.users = users
        self._lock = threading.Lock()

    def _dir(self, name: str) -> Path:
        if err := volume_name_error(name):
            raise InvalidArgument(err)
        return self.root / name

    def _load(self, name: str) -> Volume | None:
        d = self._dir(name)
        try:
            meta = json.loads((d / META).read_text())
        except (OSError, ValueError):
            if not (d / "_data").is_dir():
                return None
            meta = {}  # a directory without metadata (written by hand): still a volume, as Docker's
        return Volume(
            name=name,
            mountpoint=str(d / "_data"),
            created_at=str(meta.get("CreatedAt") or ""),
            labels=dict(meta.get("Labels") or {}),
            driver=str(meta.get("Driver") or LOCAL_DRIVER),
        )

    # ---- create and look up
    def create(
        self,
        name: str = "",
        labels: Mapping[str, str] | None = None,
        driver: str = "",
        driver_opts: Mapping[str, str] | None = None,
    ) -> tuple[Volume, bool]:
        """(the volume, whether it was created now). An existing name is returned as it is, as
        Docker's create does; a name-less create gets a random 64-hex name."""
        if driver not in ("", LOCAL_DRIVER):
            raise InvalidArgument(f"volume driver {driver!r} is not supported by shoal (only the local driver)")
        if driver_opts:
            raise InvalidArgument("options of the local volume driver (type, device, o) are not supported by shoal")
        name = name or secrets.token_hex(32)
        with self._lock:
            existing = self._load(name)
            if existing is not None:
                return existing, False
            d = self._dir(name)
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(self.root, 0o701)  # as Docker's: tasks' users may traverse, nobody lists
            meta = {"Driver": LOCAL_DRIVER, "CreatedAt": _now(), "Labels": dict(labels or {})}
            tmp = d / f".{META}.tmp"
            tmp.write_text(json.dumps(meta))
            (d / "_data").mkdir(mode=0o755, exist_ok=True)
            os.replace(tmp, d / META)  # last: a volume with metadata is complete
        created = self._load(name)
        assert created is not None
        return created, True

    def get(self, name: str) -> Volume:
        volume = self._load(name)
        if volume is None:
            raise NotFound(f"get {name}: no such volume")
        return volume

    def list(self) -> list[Volume]:
        try:
            names = sorted(e.name for e in os.scandir(self.root) if e.is_dir() and not volume_name_error(e.name))
        except FileNotFoundError:
            return []
        return [v for n in names if (v := self._load(n)) is not None]

    def inspect(self, name: str) -> dict[str, Any]:
        return self.get(name).inspect()

    # ---- remove
    def remove(self, name: str, force: bool = False) -> None:
        """Docker's `volume rm`: 409 while a task on this node uses it (even with force, as Docker);
        with force, an unknown name is not an error."""
        with self._lock:
            volume = self._load(name)
            if volume is None:
                if force:
                    return
                raise NotFound(f"get {name}: no such volume")
            users = self.users().get(name) or []
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(sorted(users))}]")
            self._delete(name)

    def _delete(self, name: str) -> None:
        d = self._dir(name)
        with contextlib.suppress(FileNotFoundError):
            (d / META).unlink()  # first: a half-removed volume is no longer listed as complete
        shutil.rmtree(d, ignore_errors=True)

    def prune(self, all_volumes: bool = False, labels: Callable[[Volume], bool] | None = None) -> tuple[list[str], int]:
        """Unused volumes: anonymous ones only unless `all_volumes` (Docker's default since API 1.42)."""
        deleted: list[str] = []
        reclaimed = 0
        with self._lock:
            users = self.users()
            for volume in self.list():
                if users.get(volume.name) or not (all_volumes or volume.anonymous):
                    continue
                if labels is not None and not labels(volume):
                    continue
                reclaimed += _disk_usage(Path(volume.mountpoint))
                self._delete(volume.name)
                deleted.append(volume.name)
        return deleted, reclaimed

    def remove_anonymous(self, names: Iterable[str]) -> None:
        """A removed task's anonymous volumes go with it (Docker removes a swarm task's container
        with its anonymous volumes), unless another task still uses one."""
        with self._lock:
            users = self.users()
            for name in names:
                volume = self._load(name)
                if volume is not None and volume.anonymous and not users.get(name):
                    self._delete(name)


def _disk_usage(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total
