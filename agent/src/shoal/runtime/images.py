"""The node-local image store of the process driver.

An image is an OCI-like config (Entrypoint, Cmd, Env, WorkingDir, ExposedPorts, User) plus an
optional root filesystem directory; without one the task sees the host's filesystem. Layout,
Docker-like (content under an ID, names in one index):

    ROOT/repositories.json        {"name:tag": "<id>"}
    ROOT/<id>/image.json          {"Id", "RepoTags", "Created", "Config", "Size", "HasRootfs"}
    ROOT/<id>/rootfs/             optional root filesystem (imported from a directory or a tar)

`shoal/host` and `shoal/hello` are built in: always present, never stored, never removable.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.model.errors import SpecError
from shoal.runtime.base import NoSuchImage
from shoal.runtime.changes import apply_changes, empty_config
from shoal.runtime.linux import read_json, write_json

DEFAULT_ROOT = Path("/var/lib/shoal/images")
HOST_IMAGE = "shoal/host"
HELLO_IMAGE = "shoal/hello"
HELLO_APP = Path(__file__).with_name("hello_app.py")
# Mount points the process driver binds over inside a root filesystem (see shim.py).
ROOTFS_MOUNTPOINTS = ("proc", "dev", "sys", "tmp", "etc")
ROOTFS_ETC_FILES = ("etc/hostname", "etc/hosts", "etc/resolv.conf")

_NAME = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def parse_reference(ref: str) -> tuple[str, str]:
    """("name", "tag") from "name[:tag]" (default tag latest); a registry port is not a tag."""
    name, tag = ref, "latest"
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        name, tag = ref[:colon], ref[colon + 1 :]
    if "@" in ref:
        raise SpecError(f"invalid reference format: digests are not supported: {ref!r}")
    if not _NAME.match(name) or not _TAG.match(tag):
        raise SpecError(f"invalid reference format: {ref!r} (repository name must be lowercase)")
    return name, tag


def normalize(ref: str) -> str:
    name, tag = parse_reference(ref)
    return f"{name}:{tag}"


@dataclass(frozen=True)
class Image:
    id: str  # "sha256:<hex>"
    repo_tags: list[str]
    created: str
    config: dict[str, Any]
    rootfs: Path | None = None  # None: the host's filesystem
    size: int = 0
    builtin: bool = False

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]

    def inspect(self) -> dict[str, Any]:
        """`docker image inspect`-shaped view."""
        return {
            "Id": self.id,
            "RepoTags": list(self.repo_tags),
            "Created": self.created,
            "Config": self.config,
            "Size": self.size,
            "Rootfs": str(self.rootfs) if self.rootfs else None,
        }


def _image_id(record: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _builtin(name: str, config: dict[str, Any]) -> Image:
    created = "2024-01-01T00:00:00Z"
    cfg = empty_config() | config
    return Image(
        id=_image_id({"name": name, "config": cfg}),
        repo_tags=[f"{name}:latest"],
        created=created,
        config=cfg,
        builtin=True,
    )


def builtin_images() -> dict[str, Image]:
    hello = {
        # the agent's own Python runs the stdlib app: nothing to install on a node
        "Entrypoint": [sys.executable, "-u", str(HELLO_APP)],
        "ExposedPorts": {"8080/tcp": {}},
        "Env": ["PYTHONDONTWRITEBYTECODE=1"],
    }
    images = [_builtin(HOST_IMAGE, {}), _builtin(HELLO_IMAGE, hello)]
    return {img.repo_tags[0]: img for img in images}


def _dir_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


class ImageStore:
    def __init__(self, root: Path | str = DEFAULT_ROOT) -> None:
        self.root = Path(root)
        self._builtins = builtin_images()

    # ---- reading
    def _index(self) -> dict[str, str]:
        return read_json(self.root / "repositories.json") or {}

    def _load(self, image_id: str, tags: list[str]) -> Image | None:
        hexid = image_id.removeprefix("sha256:")
        rec = read_json(self.root / hexid / "image.json")
        if not rec:
            return None
        rootfs = self.root / hexid / "rootfs"
        return Image(
            id=rec["Id"],
            repo_tags=sorted(tags),
            created=rec.get("Created", ""),
            config=empty_config() | rec.get("Config", {}),
            rootfs=rootfs if rec.get("HasRootfs") else None,
            size=int(rec.get("Size", 0)),
        )

    def get(self, ref: str) -> Image:
        """The image named `name[:tag]` (or by ID / unique ID prefix); raises NoSuchImage."""
        try:
            key = normalize(ref)
        except SpecError:
            key = None
        if key in self._builtins:
            return self._builtins[key]
        index = self._index()
        if key in index:
            image = self._load(index[key], [t for t, i in index.items() if i == index[key]])
            if image:
                return image
        hexref = ref.removeprefix("sha256:")
        if re.fullmatch(r"[0-9a-f]{4,64}", hexref):
            matches = {i for i in index.values() if i.removeprefix("sha256:").startswith(hexref)}
            if len(matches) == 1:
                (image_id,) = matches
                image = self._load(image_id, [t for t, i in index.items() if i == image_id])
                if image:
                    return image
        raise NoSuchImage(ref)

    def list(self) -> list[Image]:
        index = self._index()
        by_id: dict[str, list[str]] = {}
        for tag, image_id in index.items():
            by_id.setdefault(image_id, []).append(tag)
        stored = [img for i, tags in by_id.items() if (img := self._load(i, tags))]
        return list(self._builtins.values()) + sorted(stored, key=lambda i: i.repo_tags)

    # ---- writing (under an flock: the agent and the CLI may import at the same time)
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def import_dir(self, source: str | Path | None, name: str, changes: Iterable[str] = ()) -> Image:
        """Import a root filesystem (a directory, copied; or a tar file, maybe compressed) as
        `name[:tag]`, with docker `--change` instructions; source None makes a config-only image
        that runs on the host's filesystem."""
        key = normalize(name)
        if key in self._builtins:
            raise SpecError(f"{key} is a built-in image and cannot be replaced")
        config = apply_changes(None, changes)
        src = Path(source) if source is not None else None
        if src is not None and not src.exists():
            raise SpecError(f"import source {src}: no such file or directory")
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        record = {"Created": created, "Config": config, "HasRootfs": src is not None, "Nonce": os.urandom(8).hex()}
        image_id = _image_id(record)
        hexid = image_id.removeprefix("sha256:")
        with self._locked():
            staging = self.root / f".import-{hexid}"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            try:
                if src is not None:
                    _unpack(src, staging / "rootfs")
                    _add_mountpoints(staging / "rootfs")
                    record["Size"] = _dir_size(staging / "rootfs")
                record.pop("Nonce")
                write_json(staging / "image.json", {"Id": image_id, **record})
                staging.rename(self.root / hexid)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            index = self._index()
            old = index.get(key)
            index[key] = image_id
            write_json(self.root / "repositories.json", index)
            if old and old not in index.values():
                shutil.rmtree(self.root / old.removeprefix("sha256:"), ignore_errors=True)
        return self.get(key)

    def remove(self, ref: str) -> list[str]:
        """Untag `ref`; delete the image once no tag is left. Returns the untagged names."""
        image = self.get(ref)
        if image.builtin:
            raise SpecError(f"{image.repo_tags[0]} is a built-in image and cannot be removed")
        with self._locked():
            index = self._index()
            try:
                tags = [normalize(ref)] if normalize(ref) in index else list(image.repo_tags)
            except SpecError:
                tags = list(image.repo_tags)
            for tag in tags:
                index.pop(tag, None)
            write_json(self.root / "repositories.json", index)
            if image.id not in index.values():
                shutil.rmtree(self.root / image.id.removeprefix("sha256:"), ignore_errors=True)
        return tags


def _unpack(src: Path, dest: Path) -> None:
    if src.is_dir():
        # cp -a keeps owners, modes, links and device nodes, as a root filesystem needs
        dest.mkdir()
        subprocess.run(["cp", "-a", "--", f"{src}/.", str(dest)], check=True, capture_output=True)
        return
    try:
        with tarfile.open(src) as tar:
            dest.mkdir()
            # "tar" filter: no absolute paths or members outside dest, no setuid bits
            tar.extractall(dest, numeric_owner=True, filter="tar")
    except tarfile.TarError as exc:
        raise SpecError(f"import source {src}: not a directory or a tar archive ({exc})") from None


def _add_mountpoints(rootfs: Path) -> None:
    """Empty mount points for what the driver binds over: the image itself is never written."""
    for sub in ROOTFS_MOUNTPOINTS:
        target = rootfs / sub
        if not target.exists() and not target.is_symlink():
            target.mkdir()
            target.chmod(0o1777 if sub == "tmp" else 0o755)
    for sub in ROOTFS_ETC_FILES:
        target = rootfs / sub
        if not target.exists() and not target.is_symlink():
            target.touch(mode=0o644)
