"""This node's volumes: Docker's `local` driver (moby volume/local), node-local like Docker's.

A volume is a directory, ROOT/<name>/_data, with its metadata beside it in ROOT/<name>/volume.json
(driver, labels, creation time, whether it was made for one task's anonymous mount). Volumes are
created on first use by a task or by `POST /volumes/create` and outlive the tasks that use them;
only `volume rm` / `volume prune` remove them, and never one a task on this node still uses.
Who uses a volume is the task driver's knowledge (its bundles), handed in as `users`.

The local driver's options (`type`, `device`, `o`: mount(8)'s -t, source and -o) are kept with the
volume and, as moby's local driver does, mounted on `_data` when a task first uses the volume, e.g.
type=tmpfs device=tmpfs o=size=64m; the mount goes when the last task using the volume is removed
(moby unmounts at the last container's stop) and before the volume is removed. A type this node's
kernel does not have is refused when the volume is created.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.errors import Conflict, InvalidArgument, NotFound
from shoal.files import write_atomic
from shoal.model.mounts import LOCAL_DRIVER, local_options_error, volume_name_error
from shoal.runtime import linux

DEFAULT_ROOT = Path("/var/lib/shoal/volumes")
META = "volume.json"
ANONYMOUS_LABEL = "com.docker.volume.anonymous"  # what Docker labels an anonymous volume with
Users = Callable[[], Mapping[str, list[str]]]  # volume name → IDs of the tasks on this node using it


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def _no_users() -> Mapping[str, list[str]]:
    return {}


class VolumeMountError(Exception):
    """The local driver could not mount a volume's options (the task using it is rejected)."""


# moby's pkg/mount flags: the words of `o` that are mount flags; the rest is the filesystem's data
_MOUNT_FLAGS: dict[str, tuple[bool, int]] = {
    "ro": (False, 0x1),
    "rw": (True, 0x1),
    "nosuid": (False, 0x2),
    "suid": (True, 0x2),
    "nodev": (False, 0x4),
    "dev": (True, 0x4),
    "noexec": (False, 0x8),
    "exec": (True, 0x8),
    "sync": (False, 0x10),
    "async": (True, 0x10),
    "dirsync": (False, 0x80),
    "noatime": (False, 0x400),
    "atime": (True, 0x400),
    "nodiratime": (False, 0x800),
    "diratime": (True, 0x800),
    "bind": (False, linux.MS_BIND),
    "rbind": (False, linux.MS_BIND | linux.MS_REC),
    "relatime": (False, 0x200000),
    "norelatime": (True, 0x200000),
    "strictatime": (False, 0x1000000),
}


def parse_mount_options(o: str) -> tuple[int, str]:
    """(flags, data) of an `o` option, as moby's mount.ParseOptions splits it."""
    flags, data = 0, []
    for word in filter(None, (w.strip() for w in o.split(","))):
        if word in _MOUNT_FLAGS:
            clear, bit = _MOUNT_FLAGS[word]
            flags = flags & ~bit if clear else flags | bit
        else:
            data.append(word)
    return flags, ",".join(data)


def kernel_filesystems(path: str = "/proc/filesystems") -> set[str]:
    text = linux.read_text(path) or ""
    return {line.split()[-1] for line in text.splitlines() if line.strip()}


def _unescape(field_: str) -> str:
    r"""mountinfo escapes space, tab, newline and backslash as \ooo."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field_)


def is_mounted(path: str | os.PathLike[str], mountinfo: str = "/proc/self/mountinfo") -> bool:
    """Whether something is mounted on `path` (a bind of a directory of the same filesystem included,
    which os.path.ismount misses)."""
    want = os.path.realpath(path)
    for line in (linux.read_text(mountinfo) or "").splitlines():
        fields = line.split()
        if len(fields) > 4 and _unescape(fields[4]) == want:
            return True
    return False


@dataclass
class Volume:
    name: str
    mountpoint: str
    created_at: str
    labels: dict[str, str] = field(default_factory=dict)
    driver: str = LOCAL_DRIVER
    options: dict[str, str] = field(default_factory=dict)  # the local driver's type, device, o

    def inspect(self, users: Iterable[str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Name": self.name,
            "Driver": self.driver,
            "Mountpoint": self.mountpoint,
            "CreatedAt": self.created_at,
            "Labels": dict(self.labels) or None,
            "Scope": "local",
            "Options": dict(self.options) or None,
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
            options=dict(meta.get("Options") or {}),
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
        options = dict(driver_opts or {})
        name = name or secrets.token_hex(32)
        with self._lock:
            existing = self._load(name)
            if existing is not None:
                return existing, False  # Docker's: the options of a later create are not compared
            self._check_options(options)
            d = self._dir(name)
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(self.root, 0o701)  # as Docker's: tasks' users may traverse, nobody lists
            meta = {"Driver": LOCAL_DRIVER, "CreatedAt": _now(), "Labels": dict(labels or {}), "Options": options}
            (d / "_data").mkdir(mode=0o755, exist_ok=True)
            # last: a volume with metadata is complete. Root only, as moby's opts.json: the options
            # may hold a mount's password (o=...,password=...); durable, as they exist nowhere else
            write_atomic(d / META, json.dumps(meta), 0o600)
        created = self._load(name)
        assert created is not None
        return created, True

    @staticmethod
    def _check_options(options: Mapping[str, str]) -> None:
        if err := local_options_error(options):
            raise InvalidArgument(err)
        kind = options.get("type")
        if not kind:
            return
        words = {w.strip() for w in options.get("o", "").split(",")}
        if kind == "none" and not words & {"bind", "rbind"}:
            raise InvalidArgument('invalid option: type "none" needs o=bind (or rbind) and a device to bind')
        if kind != "none" and kind not in kernel_filesystems():
            raise InvalidArgument(
                f'invalid option: type "{kind}" is not a filesystem this node\'s kernel has (see /proc/filesystems)'
            )

    # ---- the local driver's mount (moby's localVolume.mount), on first use by a task
    def mount(self, volume: Volume) -> None:
        if not volume.options.get("type") or is_mounted(volume.mountpoint):
            return
        opts = volume.options
        flags, data = parse_mount_options(opts.get("o", ""))
        kind = None if opts["type"] == "none" else opts["type"]
        try:
            linux.mount(opts["device"], volume.mountpoint, kind, flags, data or None)
        except OSError as e:
            raise VolumeMountError(
                f"error while mounting volume '{volume.mountpoint}': failed to mount local volume: mount "
                f"{opts['device']}:{volume.mountpoint}, flags: {flags:#x}, data: {data}: {os.strerror(e.errno or 0)}"
            ) from None

    def _unmount(self, volume: Volume) -> None:
        if not is_mounted(volume.mountpoint):
            return
        with contextlib.suppress(OSError):
            linux.umount(volume.mountpoint)  # lazy (MNT_DETACH): gone from the path at once
        if is_mounted(volume.mountpoint):  # never let rmtree recurse into a mounted device
            raise Conflict(f"remove {volume.name}: its mount {volume.mountpoint} would not unmount")

    def release(self, names: Iterable[str]) -> None:
        """A removed task's volumes: those with a mount that no other task on this node uses are unmounted
        (moby's local driver unmounts when the last container using the volume stops)."""
        with self._lock:
            users = self.users()
            for name in names:
                volume = self._load(name)
                if volume is not None and volume.options and not users.get(name):
                    with contextlib.suppress(Conflict):
                        self._unmount(volume)

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
        volume = self._load(name)
        if volume is not None:
            self._unmount(volume)
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


def volume_size(volume: Volume) -> int:
    return _disk_usage(Path(volume.mountpoint))


def _disk_usage(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total
