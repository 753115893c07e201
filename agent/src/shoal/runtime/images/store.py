"""The node-local image store: an OCI layout (content addressed, each blob stored once), one
unpacked read-only root filesystem per image, names in one index.

    ROOT/oci/                     OCI image layout: oci-layout, index.json (every stored manifest,
                                  named by tag), blobs/sha256/<hex> (shared by all images)
    ROOT/images/<hex>/image.json  one image (hex = its config digest = Docker's image ID)
    ROOT/images/<hex>/rootfs/     its unpacked root filesystem (umoci raw unpack), never written
    ROOT/repositories.json        {"name:tag" | "name@sha256:...": "sha256:<id>"}
    ROOT/tmp/                     pulls and loads in progress (each a layout whose blobs link to
                                  ROOT/oci/blobs); never read as an image

A pull is committed only when complete: skopeo writes each blob through a temporary file and a
rename after checking its digest, the rootfs is unpacked into tmp/ and renamed into images/, and
only then does the index name it. A killed pull leaves at most a staging directory and
unreferenced blobs, which the next start or prune removes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal import metrics
from shoal.files import write_atomic
from shoal.model.errors import SpecError
from shoal.runtime.base import NoSuchImage
from shoal.runtime.changes import apply_changes, empty_config
from shoal.runtime.images import builtin, ocilayout, progress, prune
from shoal.runtime.images.reference import Reference, is_digest, parse
from shoal.runtime.images.registry import (
    SKOPEO,
    Credentials,
    ImageFormatError,
    RegistryError,
    RegistryOptions,
    auth_args,
    error_from,
    inspect_raw,
    scrub,
)
from shoal.runtime.linux import read_json, set_parent_death_signal, write_json

DEFAULT_ROOT = Path("/var/lib/shoal/images")
UMOCI = "umoci"
HOST_BINDS_LABEL = "io.shoal.host-binds"
# Mount points a task driver binds over inside a root filesystem: present in every image so
# that the read-only lower layer never needs writing.
ROOTFS_MOUNTPOINTS = ("proc", "dev", "sys", "tmp", "etc")
ROOTFS_ETC_FILES = ("etc/hostname", "etc/hosts", "etc/resolv.conf")
PULL_TIMEOUT = 1800.0
STALE_TEMP_SECONDS = 3600.0

Progress = Callable[[dict[str, Any]], None]


def _nothing(_: dict[str, Any]) -> None:
    pass


@dataclass(frozen=True)
class Image:
    id: str  # "sha256:<config digest hex>"
    repo_tags: list[str]
    created: str
    config: dict[str, Any]
    rootfs: Path | None = None
    size: int = 0
    builtin: bool = False
    repo_digests: list[str] = field(default_factory=list)
    architecture: str = "amd64"
    os: str = "linux"
    layers: list[str] = field(default_factory=list)  # diff_ids

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.get("Labels") or {})

    @property
    def host_binds(self) -> list[str]:
        """Host paths the image asks to see read-only (label io.shoal.host-binds)."""
        return [p.strip() for p in self.labels.get(HOST_BINDS_LABEL, "").split(",") if p.strip()]

    def inspect(self) -> dict[str, Any]:
        """`docker image inspect` (GET /images/{name}/json)."""
        return {
            "Id": self.id,
            "RepoTags": list(self.repo_tags),
            "RepoDigests": list(self.repo_digests),
            "Parent": "",
            "Comment": "",
            "Created": self.created,
            "Config": self.config,
            "Architecture": self.architecture,
            "Os": self.os,
            "Size": self.size,
            "RootFS": {"Type": "layers", "Layers": list(self.layers)},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        }

    def summary(self) -> dict[str, Any]:
        """`docker image ls` (GET /images/json)."""
        return {
            "Id": self.id,
            "ParentId": "",
            "RepoTags": list(self.repo_tags) or ["<none>:<none>"],
            "RepoDigests": list(self.repo_digests),
            "Created": _epoch(self.created),
            "Size": self.size,
            "SharedSize": -1,
            "Labels": self.labels,
            "Containers": -1,
        }


def _epoch(created: str) -> int:
    try:
        return int(time.mktime(time.strptime(created[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone)
    except (ValueError, TypeError):
        return 0


def _dir_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def docker_config(oci_config: Mapping[str, Any]) -> dict[str, Any]:
    """The image config's `config` section with Docker's keys always present."""
    return empty_config() | dict(oci_config.get("config") or {})


class ImageStore:
    def __init__(
        self,
        root: Path | str = DEFAULT_ROOT,
        registry: RegistryOptions | None = None,
        policy: prune.Policy | None = None,
        in_use: Callable[[str], bool] | None = None,
    ) -> None:
        self.root = Path(root)
        self.registry = registry or RegistryOptions()
        self.policy = policy or prune.Policy()  # applied after every pull
        self.in_use = in_use  # image ID -> used by a task of this node (set by the agent)

    def prepare(self) -> None:
        self._layout()

    @property
    def policy_file(self) -> Path:
        return self._policy

    # ---- paths
    @property
    def oci(self) -> Path:
        return self.root / "oci"

    @property
    def blobs(self) -> Path:
        return self.oci / "blobs"

    def _image_dir(self, image_id: str) -> Path:
        return self.root / "images" / image_id.removeprefix("sha256:")

    @property
    def _policy(self) -> Path:
        """skopeo's signature policy: accept what the registry serves, as Docker does (TLS and
        digests still checked). Ours, so that nothing depends on /etc/containers."""
        path = self.root / "policy.json"
        if not path.exists():
            self._layout()
            # durable: only a missing policy is written again; a torn one would fail every pull
            write_atomic(path, b'{"default":[{"type":"insecureAcceptAnything"}]}')
        return path

    def _layout(self) -> None:
        if not (self.oci / "oci-layout").exists():
            ocilayout.init_layout(self.oci)
        for sub in ("images", "tmp", "locks"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # ---- locks: one short store lock for the index; one per reference so that concurrent
    # callers pull once; pulls hold the gc lock shared, garbage collection exclusive.
    @contextlib.contextmanager
    def _flock(self, name: str, mode: int = fcntl.LOCK_EX) -> Iterator[None]:
        self._layout()
        with open(self.root / "locks" / name, "a") as f:
            fcntl.flock(f, mode)
            yield

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return self._flock("store")

    def _ref_lock(self, key: str) -> contextlib.AbstractContextManager[None]:
        return self._flock("ref-" + hashlib.sha256(key.encode()).hexdigest()[:32])

    # ---- reading
    def _index(self) -> dict[str, str]:
        return read_json(self.root / "repositories.json") or {}

    def _load(self, image_id: str, index: Mapping[str, str]) -> Image | None:
        rec = read_json(self._image_dir(image_id) / "image.json")
        if not rec:
            return None
        names = [n for n, i in index.items() if i == image_id]
        return Image(
            id=rec["Id"],
            repo_tags=sorted(n for n in names if "@" not in n),
            repo_digests=sorted(n for n in names if "@" in n),
            created=rec.get("Created", ""),
            config=empty_config() | rec.get("Config", {}),
            rootfs=self._image_dir(image_id) / "rootfs",
            size=int(rec.get("Size", 0)),
            builtin=bool(rec.get("Builtin")),
            architecture=rec.get("Architecture", "amd64"),
            os=rec.get("Os", "linux"),
            layers=list(rec.get("Layers") or []),
        )

    def _lookup(self, ref: str) -> Image | None:
        index = self._index()
        key = None
        with contextlib.suppress(SpecError):
            key = parse(ref).key
        if key and key in index:
            return self._load(index[key], index)
        hexref = ref.removeprefix("sha256:")
        if re.fullmatch(r"[0-9a-f]{4,64}", hexref):
            matches = {i for i in index.values() if i.removeprefix("sha256:").startswith(hexref)}
            if not matches and (self._image_dir(hexref) / "image.json").exists():
                matches = {"sha256:" + hexref}  # untagged but still stored
            if len(matches) == 1:
                return self._load(matches.pop(), index)
        return None

    def get(self, ref: str) -> Image:
        """The local image named `name[:tag]`, `name@digest`, or by ID / unique ID prefix; the
        built-in images are made on first use. Raises NoSuchImage."""
        image = self._lookup(ref)
        if image is None and builtin.is_builtin(ref):
            return self._make_builtin(ref)
        if image is None:
            raise NoSuchImage(ref)
        return image

    def list(self) -> list[Image]:
        """Every named image; the built-ins always (made now if need be)."""
        for name in (builtin.HELLO, builtin.HOST):
            self.get(name)
        index = self._index()
        ids = sorted(set(index.values()))
        images = [img for i in ids if (img := self._load(i, index))]
        return sorted(images, key=lambda i: (i.repo_tags, i.id))

    def mark_used(self, image: Image) -> None:
        with contextlib.suppress(OSError):
            (self._image_dir(image.id) / "used").touch()

    def last_used(self, image: Image) -> float:
        for name in ("used", "image.json"):
            with contextlib.suppress(OSError):
                return (self._image_dir(image.id) / name).stat().st_mtime
        return 0.0

    # ---- pulling
    def ensure(
        self, ref: str, registry_auth: Mapping[str, Any] | None = None, on_progress: Progress = _nothing
    ) -> Image:
        """The local image for `ref`, pulled if absent (a digest-pinned ref pulls that digest).
        Concurrent callers pull once. Raises NoSuchImage or RegistryError with the registry's reason."""
        parsed = parse(ref)
        image = self._lookup(parsed.key) if not builtin.is_builtin(ref) else None
        if image is None and builtin.is_builtin(ref):
            image = self.get(ref)
        if image is None:
            with self._ref_lock(parsed.key):
                image = self._lookup(parsed.key) or self._measured_pull(parsed, registry_auth, on_progress)
        self.mark_used(image)
        return image

    def pull(self, ref: str, registry_auth: Mapping[str, Any] | None = None, on_progress: Progress = _nothing) -> Image:
        """`docker pull`: ask the registry what the tag names now; fetch only what is missing."""
        parsed = parse(ref)
        if builtin.is_builtin(ref):
            return self.get(ref)
        with self._ref_lock(parsed.key):
            image = self._measured_pull(parsed, registry_auth, on_progress)
        self.mark_used(image)
        return image

    def _measured_pull(self, ref: Reference, registry_auth: Mapping[str, Any] | None, on_progress: Progress) -> Image:
        """A pull, counted by result and timed when it succeeds (shoal_image_pulls_total, ...)."""
        started = time.monotonic()
        try:
            image = self._pull(ref, registry_auth, on_progress)
        except Exception:
            metrics.image_pulled(time.monotonic() - started, ok=False)
            raise
        metrics.image_pulled(time.monotonic() - started, ok=True)
        return image

    def _pull(self, ref: Reference, registry_auth: Mapping[str, Any] | None, on_progress: Progress) -> Image:
        creds = Credentials.from_auth(registry_auth)
        manifest, media, _, digest = inspect_raw(ref, creds, self.registry, self._policy)
        on_progress(progress.message(f"Pulling from {ref.repository}", ref.tag or ref.digest or "latest"))
        pinned = Reference(ref.domain, ref.path, ref.tag, digest)
        index = self._index()
        known = index.get(pinned.canonical)
        if known and (image := self._load(known, index)):
            # the registry serves what we have: only (re)name it
            self._name(image.id, [pinned.tagged] if ref.tag or not ref.digest else [], pinned.canonical)
            on_progress(progress.message(f"Digest: {digest}"))
            on_progress(progress.message(f"Status: Image is up to date for {ref}"))
            return self._lookup(pinned.canonical) or image
        layers = [(str(d.get("digest")), int(d.get("size") or 0)) for d in manifest.get("layers") or []]
        for layer, size in layers:
            have = ocilayout.blob_path(self.oci, layer).exists()
            on_progress(
                progress.message("Already exists" if have else "Pulling fs layer", layer, None, None if have else size)
            )
        with self._flock("gc", fcntl.LOCK_SH), self._staging("pull") as stage:
            with auth_args(ref, creds, "src-") as auth:
                argv = [
                    SKOPEO,
                    f"--policy={self._policy}",
                    "copy",
                    *auth,
                    *self.registry.tls_args(ref, "src-"),
                    pinned.transport(),
                    f"oci:{stage}:pull",
                ]
                self._run_copy(argv, ref, creds, dict(layers), on_progress)
            for layer, _ in layers:
                if not ocilayout.blob_path(self.oci, layer).exists():
                    raise ImageFormatError(f"pull {ref}: layer {layer} missing after the copy")
                on_progress(progress.message("Download complete", layer))
            image_id = self._commit(
                stage, "pull", [pinned.tagged] if ref.tag or not ref.digest else [], pinned.canonical, media
            )
            for layer, _ in layers:
                on_progress(progress.message("Pull complete", layer))
        on_progress(progress.message(f"Digest: {digest}"))
        on_progress(progress.message(f"Status: Downloaded newer image for {ref}"))
        if self.policy.active:
            self.prune(self.policy, in_use=lambda i: i == image_id or bool(self.in_use and self.in_use(i)))
        image = self._lookup(image_id)
        assert image is not None
        return image

    def _run_copy(
        self,
        argv: list[str],
        ref: Reference,
        creds: Credentials | None,
        sizes: Mapping[str, int],
        on_progress: Progress,
    ) -> None:
        # the copy dies with the agent: a half-done pull must not go on writing into the store
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_dies_with_agent,
        )
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                m = re.match(r"Copying blob (sha256:[0-9a-f]{64})", line)
                if m and m.group(1) in sizes:
                    skipped = "skipped" in line or "already exists" in line
                    status = "Already exists" if skipped else "Downloading"
                    on_progress(progress.message(status, m.group(1), 0, None if skipped else sizes[m.group(1)]))
            stderr = proc.stderr.read() if proc.stderr else ""
            proc.wait(timeout=PULL_TIMEOUT)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if proc.returncode != 0:
            raise error_from(stderr, ref, creds)

    @contextlib.contextmanager
    def _staging(self, kind: str) -> Iterator[Path]:
        """A private layout in tmp/ whose blobs are the store's own; removed whatever happens."""
        self._layout()
        stage = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=self.root / "tmp"))
        lock = open(stage / ".lock", "w")  # noqa: SIM115 - held for the staging dir's life
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            ocilayout.init_layout(stage, self.blobs)
            yield stage
        finally:
            shutil.rmtree(stage, ignore_errors=True)
            lock.close()

    def _commit(
        self, stage: Path, tag: str, names: list[str], digest_name: str | None, media: str | None = None
    ) -> str:
        """Unpack (once per image) and name the image `tag` of the staging layout. Returns its ID."""
        entry = next(
            (m for m in ocilayout.read_index(stage) if (m.get("annotations") or {}).get(ocilayout.REF_NAME) == tag),
            None,
        )
        if entry is None:
            raise ImageFormatError("the copy left no image in the staging layout")
        manifest = ocilayout.read_blob_json(stage, entry["digest"])
        config_digest = str((manifest.get("config") or {}).get("digest") or "")
        if not is_digest(config_digest):
            raise ImageFormatError("the image's manifest has no config")
        config = ocilayout.read_blob_json(stage, config_digest)
        image_id = config_digest
        final = self._image_dir(image_id)
        if not (final / "image.json").exists():
            work = Path(tempfile.mkdtemp(prefix="unpack-", dir=self.root / "tmp"))
            try:
                proc = subprocess.run(
                    [UMOCI, "raw", "unpack", "--image", f"{stage}:{tag}", str(work / "rootfs")],
                    capture_output=True,
                    text=True,
                    check=False,
                    preexec_fn=_dies_with_agent,
                )
                if proc.returncode != 0:
                    raise ImageFormatError(f"unpack: {proc.stderr.strip().splitlines()[-1:] or ['umoci failed']}")
                _add_mountpoints(work / "rootfs")
                record = {
                    "Id": image_id,
                    "Created": config.get("created") or "",
                    "Config": docker_config(config),
                    "Architecture": config.get("architecture", "amd64"),
                    "Os": config.get("os", "linux"),
                    "Layers": list((config.get("rootfs") or {}).get("diff_ids") or []),
                    "Size": _dir_size(work / "rootfs"),
                    "Manifest": {
                        "mediaType": entry.get("mediaType"),
                        "digest": entry["digest"],
                        "size": entry.get("size"),
                    },
                    "Builtin": builtin.is_builtin_config(config),
                }
                write_json(work / "image.json", record)
                final.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileExistsError, OSError):
                    work.rename(final)  # another process may have committed the same image first
            finally:
                shutil.rmtree(work, ignore_errors=True)
        if not (final / "image.json").exists():
            raise ImageFormatError(f"could not store image {image_id}")
        self._name(image_id, names, digest_name)
        return image_id

    def _name(self, image_id: str, names: Iterable[str], digest_name: str | None) -> None:
        with self._locked():
            index = self._index()
            old = {index.get(n) for n in names}
            for name in names:
                index[name] = image_id
            if digest_name:
                index[digest_name] = image_id
            self._write_index(index)
        for replaced in old - {None, image_id}:
            self._drop_if_unnamed(str(replaced))

    def _write_index(self, index: Mapping[str, str]) -> None:
        write_json(self.root / "repositories.json", dict(index))
        manifests = []
        for name, image_id in sorted(index.items()):
            if "@" in name:
                continue
            rec = read_json(self._image_dir(image_id) / "image.json") or {}
            desc = rec.get("Manifest")
            if desc and desc.get("digest"):
                manifests.append({**desc, "annotations": {ocilayout.REF_NAME: name}})
        ocilayout.write_index(self.oci, manifests)

    def _drop_if_unnamed(self, image_id: str) -> None:
        """An image that lost its last name is left untagged, as Docker does (prune removes it)."""

    # ---- loading archives (docker save, skopeo copy ... oci-archive:)
    def load(self, archive: Path, on_progress: Progress = _nothing) -> list[str]:
        """Load every image of a docker-archive or oci-archive; returns the names (or IDs) loaded."""
        kind, entries = archive_entries(archive)
        loaded: list[str] = []
        with self._flock("gc", fcntl.LOCK_SH):
            for source, names in entries:
                with self._staging("load") as stage:
                    proc = subprocess.run(
                        [SKOPEO, f"--policy={self._policy}", "copy", f"{kind}:{archive}{source}", f"oci:{stage}:load"],
                        capture_output=True,
                        text=True,
                        check=False,
                        preexec_fn=_dies_with_agent,
                        timeout=PULL_TIMEOUT,
                    )
                    if proc.returncode != 0:
                        err = error_from(proc.stderr, str(archive))
                        raise ImageFormatError(f"load: invalid image archive: {err.message.split(': ', 1)[-1]}")
                    image_id = self._commit(stage, "load", names, None)
                for name in names or [image_id]:
                    line = f"Loaded image: {name}" if name != image_id else f"Loaded image ID: {image_id}"
                    on_progress({"stream": line + "\n"})
                    loaded.append(name)
        return loaded

    # ---- import (docker import) and the built-ins
    def import_dir(self, source: str | Path | None, name: str, changes: Iterable[str] = ()) -> Image:
        """A root filesystem (a directory, or a tar file maybe compressed) as image `name[:tag]`,
        with docker `--change` instructions."""
        ref = parse(name)
        if builtin.is_builtin(name):
            raise SpecError(f"{ref.tagged} is a built-in image and cannot be replaced")
        config = apply_changes(None, changes)
        src = Path(source) if source is not None else None
        if src is not None and not src.exists():
            raise SpecError(f"import source {src}: no such file or directory")
        if src is None:
            # no root filesystem: the task sees the host's binaries, through the generic label
            config["Labels"] = {**(config.get("Labels") or {}), HOST_BINDS_LABEL: builtin.HOST_BINDS}
        with self._flock("gc", fcntl.LOCK_SH), self._staging("import") as stage:
            if src is None:
                with tempfile.TemporaryDirectory(dir=self.root / "tmp") as tmp:
                    for sub in builtin.HOST_BINDS.split(","):
                        (Path(tmp) / sub.strip("/")).mkdir()
                    layer = ocilayout.put_layer_from_dir(stage, Path(tmp))
            elif src.is_dir():
                layer = ocilayout.put_layer_from_dir(stage, src)
            else:
                with tempfile.TemporaryDirectory(dir=self.root / "tmp") as tmp:
                    _untar(src, Path(tmp))
                    layer = ocilayout.put_layer_from_dir(stage, Path(tmp))
            ocilayout.put_image(stage, "import", [layer], config)
            image_id = self._commit(stage, "import", [ref.tagged], None)
        image = self._lookup(image_id)
        assert image is not None
        return image

    def _make_builtin(self, ref: str) -> Image:
        name = parse(ref).tagged
        with self._ref_lock(name):
            image = self._lookup(name)
            if image is not None:
                return image
            with self._flock("gc", fcntl.LOCK_SH), self._staging("builtin") as stage:
                builtin.build(name, stage)
                image_id = self._commit(stage, "builtin", [name], None)
        image = self._lookup(image_id)
        assert image is not None
        return image

    # ---- removing
    def remove(
        self, ref: str, force: bool = False, in_use: Callable[[str], bool] | None = None
    ) -> list[dict[str, str]]:
        """`docker rmi`: untag `ref`; delete the image once no name is left. By ID with several
        names needs force. An image a task uses is refused (409) unless force."""
        image = self._lookup(ref)
        if image is None:
            raise NoSuchImage(ref)
        if image.builtin:
            raise SpecError(f"{image.repo_tags[0]} is a built-in image and cannot be removed")
        by_id = ref.removeprefix("sha256:") and image.id.removeprefix("sha256:").startswith(ref.removeprefix("sha256:"))
        if in_use and in_use(image.id) and not force:
            raise ImageConflict(
                f"conflict: unable to remove repository reference {ref!r} (an image in use by a task of this node)"
            )
        out: list[dict[str, str]] = []
        with self._locked():
            index = self._index()
            names = [n for n, i in index.items() if i == image.id]
            if by_id and len([n for n in names if "@" not in n]) > 1 and not force:
                raise ImageConflict(
                    f"conflict: unable to delete {image.short_id} (must be forced) - "
                    "image is referenced in multiple repositories"
                )
            if by_id:
                drop = names
            else:
                key = parse(ref).key
                drop = [key]
                if not [n for n in names if "@" not in n and n != key]:
                    drop = names  # the last tag takes its digests along
            for name in drop:
                index.pop(name, None)
                out.append({"Untagged": name})
            self._write_index(index)
            if image.id not in index.values():
                shutil.rmtree(self._image_dir(image.id), ignore_errors=True)
                out.append({"Deleted": image.id})
        if any("Deleted" in o for o in out):
            self.collect_garbage()
        return out

    def prune(
        self,
        policy: prune.Policy | None = None,
        *,
        all_unused: bool = False,
        in_use: Callable[[str], bool] | None = None,
        dangling_only: bool = False,
    ) -> tuple[list[dict[str, str]], int]:
        """`docker image prune` (untagged images; `all_unused`: every image no task uses), or the
        store's size/age policy. Returns (deleted entries, bytes reclaimed)."""
        images = self.list() + self._untagged()
        candidates = [
            prune.Candidate(i.id, i.size, self.last_used(i), in_use=bool(in_use and in_use(i.id)), builtin=i.builtin)
            for i in images
        ]
        if policy is not None and policy.active:
            chosen = prune.choose(candidates, policy, time.time())
        elif dangling_only:
            chosen = [c.id for c in candidates if not c.in_use and not self._names_of(c.id)]
        else:
            chosen = prune.choose(candidates, prune.Policy(), time.time(), all_unused=all_unused)
        deleted: list[dict[str, str]] = []
        reclaimed = 0
        sizes = {c.id: c.size for c in candidates}
        for image_id in chosen:
            with self._locked():
                index = self._index()
                for name in [n for n, i in index.items() if i == image_id]:
                    index.pop(name)
                    deleted.append({"Untagged": name})
                self._write_index(index)
                shutil.rmtree(self._image_dir(image_id), ignore_errors=True)
            deleted.append({"Deleted": image_id})
            reclaimed += sizes.get(image_id, 0)
        reclaimed += self.collect_garbage()
        return deleted, reclaimed

    def _names_of(self, image_id: str) -> list[str]:
        return [n for n, i in self._index().items() if i == image_id]

    def _untagged(self) -> list[Image]:
        named = set(self._index().values())
        out = []
        images_dir = self.root / "images"
        for entry in sorted(images_dir.iterdir()) if images_dir.is_dir() else []:
            image_id = "sha256:" + entry.name
            if image_id not in named and (img := self._load(image_id, {})):
                out.append(img)
        return out

    def collect_garbage(self) -> int:
        """Remove blobs no stored image references, leftovers of killed pulls (staging dirs no
        process holds, half-written blob files) and unpacked images without a record. Returns bytes freed."""
        if not self.blobs.exists():
            return 0
        freed = 0
        with self._flock("gc"):
            tmp = self.root / "tmp"
            for entry in tmp.iterdir() if tmp.is_dir() else []:
                if _unheld(entry):
                    shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            keep: set[str] = set()
            images_dir = self.root / "images"
            for entry in images_dir.iterdir() if images_dir.is_dir() else []:
                rec = read_json(entry / "image.json")
                if not rec:
                    shutil.rmtree(entry, ignore_errors=True)
                    continue
                desc = rec.get("Manifest") or {}
                if desc.get("digest"):
                    keep |= _manifest_blobs(self.oci, desc["digest"])
            sha = self.blobs / "sha256"
            for blob in sha.iterdir() if sha.is_dir() else []:
                if "sha256:" + blob.name in keep:
                    continue
                with contextlib.suppress(OSError):
                    freed += blob.stat().st_size
                    blob.unlink()
        return freed

    def recover(self) -> None:
        """At agent start: whatever a killed pull left behind goes."""
        if self.root.exists():
            self.collect_garbage()


class ImageConflict(SpecError):
    status = 409


def _dies_with_agent() -> None:
    """A child that writes into the store stops when the agent is killed, not after its recovery."""
    set_parent_death_signal(signal.SIGKILL)


def _unheld(entry: Path) -> bool:
    """A staging directory whose lock no process holds (its pull died), or a stray file."""
    lock = entry / ".lock"
    if not entry.is_dir() or not lock.exists():
        return True
    with open(lock, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True


def _manifest_blobs(layout: Path, digest: str) -> set[str]:
    """The manifest (or index) and every blob it points to that is stored."""
    out = {digest}
    try:
        doc = json.loads(ocilayout.blob_path(layout, digest).read_bytes())
    except (OSError, ValueError):
        return out
    for child in doc.get("manifests") or []:
        out |= _manifest_blobs(layout, str(child.get("digest")))
    if doc.get("config"):
        out.add(str(doc["config"].get("digest")))
    out |= {str(layer.get("digest")) for layer in doc.get("layers") or []}
    return out


def archive_entries(archive: Path) -> tuple[str, list[tuple[str, list[str]]]]:
    """("docker-archive" | "oci-archive", [(skopeo source suffix, names)]) of an image archive;
    ImageFormatError for anything else."""
    try:
        with tarfile.open(archive) as tar:
            members = {m.name.removeprefix("./"): m for m in tar.getmembers()}
            if "manifest.json" in members:
                f = tar.extractfile(members["manifest.json"])
                doc = json.loads(f.read()) if f else None
                if not isinstance(doc, list) or not doc:
                    raise ImageFormatError("load: invalid image archive: manifest.json lists no image")
                return "docker-archive", [(f":@{i}", _valid_names(e.get("RepoTags") or [])) for i, e in enumerate(doc)]
            if "oci-layout" in members and "index.json" in members:
                f = tar.extractfile(members["index.json"])
                doc = json.loads(f.read()) if f else {}
                out = []
                manifests = doc.get("manifests") or []
                for m in manifests:
                    ann = m.get("annotations") or {}
                    ref_name = ann.get(ocilayout.REF_NAME) or ""
                    name = ann.get("io.containerd.image.name") or ref_name
                    names = _valid_names([name]) if name and ("/" in name or ":" in name) else []
                    if ref_name:
                        out.append((f":{ref_name}", names))
                    elif len(manifests) == 1:
                        out.append(("", names))  # skopeo takes the only image of the archive
                if not out:
                    raise ImageFormatError("load: invalid image archive: index.json lists no image")
                return "oci-archive", out
    except tarfile.ReadError:
        raise ImageFormatError("load: invalid image archive: not a tar file") from None
    except (tarfile.TarError, OSError, EOFError, ValueError, AttributeError) as exc:
        if isinstance(exc, ImageFormatError):
            raise
        raise ImageFormatError(f"load: invalid image archive: {exc}") from None
    raise ImageFormatError(
        "load: invalid image archive: no manifest.json or oci-layout (not a docker save or OCI archive)"
    )


def _valid_names(names: Iterable[str]) -> list[str]:
    out = []
    for name in names:
        with contextlib.suppress(SpecError):
            out.append(parse(name).tagged)
    return out


def _untar(src: Path, dest: Path) -> None:
    try:
        with tarfile.open(src) as tar:
            tar.extractall(dest, numeric_owner=True, filter="tar")
    except tarfile.TarError as exc:
        raise SpecError(f"import source {src}: not a directory or a tar archive ({exc})") from None


def _add_mountpoints(rootfs: Path) -> None:
    """Empty mount points for what a driver binds over: the image itself is never written."""
    for sub in ROOTFS_MOUNTPOINTS:
        target = rootfs / sub
        if not target.exists() and not target.is_symlink():
            target.mkdir()
            target.chmod(0o1777 if sub == "tmp" else 0o755)
    for sub in ROOTFS_ETC_FILES:
        target = rootfs / sub
        if not target.exists() and not target.is_symlink():
            target.touch(mode=0o644)


__all__ = ["DEFAULT_ROOT", "Image", "ImageConflict", "ImageStore", "RegistryError", "scrub"]
