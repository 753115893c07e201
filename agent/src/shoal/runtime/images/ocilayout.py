"""Writing and reading OCI image layouts (image-spec v1) with the standard library.

Used to make images locally — `shoal image import`, the built-in `shoal/hello` and `shoal/host`,
the testbed's test images — without a build daemon: a layer is a tar of a directory, gzip'd.

Every blob is written under its digest through a temporary file and a rename, so a reader never
sees a partial blob, and durably: the file is fsynced before the rename and its folder after. A
blob is written once and never again (`put_blob` and the store's pulls skip a digest whose file
exists), so one that a power cut left named but empty would stay broken, not be written or
fetched again. The small files (index.json, oci-layout, config and manifest blobs) go through
`shoal.files.write_atomic`; a layer, streamed, is synced here. A few fsyncs per image cost next
to nothing beside the making of its layers.

`init_layout` writes `oci-layout` last, durably: the store takes a layout that has it for one
that is whole (`ImageStore._layout`), so a crash half way leaves one that is made again.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import secrets
import tarfile
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from shoal.files import fsync_path, write_atomic

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_FILE = '{"imageLayoutVersion":"1.0.0"}'


def init_layout(layout: Path, blobs: Path | None = None) -> None:
    """An empty layout; `blobs` (a shared blobs directory) is linked in instead of a private one.
    Safe to run again over a layout made whole or in part (a crash), and beside another caller."""
    layout.mkdir(parents=True, exist_ok=True)
    if blobs is not None:
        blobs.mkdir(parents=True, exist_ok=True)
        _link_blobs(layout, blobs)
    else:
        (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    if not (layout / "index.json").exists():
        write_index(layout, [])
    # last: the store takes a layout with this file for a whole one; its durable write also syncs
    # the layout's folder, and with it the names made above (blobs, index.json)
    if _read_or_none(layout / "oci-layout") != LAYOUT_FILE:
        write_atomic(layout / "oci-layout", LAYOUT_FILE)


def _link_blobs(layout: Path, blobs: Path) -> None:
    """`layout/blobs` a link to `blobs`, made under a name of its own and renamed into place: a
    caller never meets a half-made link, and one racing us or an earlier attempt that died before
    its rename never fails us. Left as it is once there (lexists: even a link that dangles)."""
    link = layout / "blobs"
    if os.path.lexists(link):
        return
    # a random name, never reused: a crashed attempt's leftover (a link to the shared blobs, which
    # nothing reads) stays in the way of no one, and goes with the staging directory
    tmp = layout / f".blobs.{secrets.token_hex(8)}.tmp"
    tmp.symlink_to(blobs)
    try:
        os.replace(tmp, link)  # a racing caller's link to the same blobs may be replaced: harmless
    except BaseException:
        with_suppress_unlink(str(tmp))
        raise


def _read_or_none(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def write_index(layout: Path, manifests: list[dict[str, Any]]) -> None:
    write_atomic(layout / "index.json", json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests}))


def read_index(layout: Path) -> list[dict[str, Any]]:
    try:
        return list(json.loads((layout / "index.json").read_text()).get("manifests") or [])
    except (OSError, ValueError):
        return []


def blob_path(layout: Path, digest: str) -> Path:
    algo, _, hexd = digest.partition(":")
    return layout / "blobs" / algo / hexd


def read_blob_json(layout: Path, digest: str) -> dict[str, Any]:
    raw = blob_path(layout, digest).read_bytes()
    if "sha256:" + hashlib.sha256(raw).hexdigest() != digest:
        raise ValueError(f"blob {digest} does not match its digest")
    return json.loads(raw)


def with_suppress_unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def put_blob(layout: Path, data: bytes, media_type: str) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    dest = blob_path(layout, digest)
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(dest, data)  # 0644 as the layers: blobs are no secret
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def put_layer_from_dir(layout: Path, src: Path) -> tuple[dict[str, Any], str]:
    """A gzip'd tar layer of everything under `src` (owners, modes and links kept): (descriptor, diff_id)."""
    blobs = blob_path(layout, "sha256:x").parent
    blobs.mkdir(parents=True, exist_ok=True)
    # not write_atomic: the layer is streamed to disk (never whole in memory) and its name, the
    # digest, is known only once it is written
    fd, tmp = tempfile.mkstemp(dir=blobs, prefix=".layer-")
    os.close(fd)
    try:
        with open(tmp, "wb") as raw:
            diff_id = _write_layer(raw, src)
            raw.flush()
            # before the rename names it: a layer is never written again once its digest's file
            # exists, so a name that a power cut left over an empty or partial file stays broken
            os.fsync(raw.fileno())
        digest = _file_digest(tmp)
        size = os.path.getsize(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, blob_path(layout, digest))
    except BaseException:
        with_suppress_unlink(tmp)
        raise
    fsync_path(blobs)  # the rename itself reaches the disk
    return {"mediaType": LAYER_GZIP, "digest": digest, "size": size}, diff_id


class _Tee:
    """Hashes the uncompressed tar (the diff_id) while gzip writes the blob."""

    def __init__(self, out: gzip.GzipFile) -> None:
        self.out = out
        self.hash = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        return self.out.write(data)


def _write_layer(raw: BinaryIO, src: Path) -> str:
    """The gzip'd tar of `src` into `raw` (left open, to be synced); its diff_id."""
    with gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=1, mtime=0) as gz:
        tee = _Tee(gz)
        with tarfile.open(fileobj=tee, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[arg-type]
            for entry in sorted(os.listdir(src)):
                tar.add(src / entry, arcname=entry, recursive=True, filter=_reset_times)
    return "sha256:" + tee.hash.hexdigest()


def _reset_times(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = 0  # the same directory always makes the same layer digest
    return info


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def put_image(
    layout: Path,
    ref_name: str,
    layers: list[tuple[dict[str, Any], str]],
    config: Mapping[str, Any],
    *,
    created: str | None = None,
    architecture: str = "amd64",
) -> dict[str, Any]:
    """Config + manifest blobs for `layers`, tagged `ref_name` in the layout's index; returns the
    manifest descriptor."""
    created = created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    image_config = {
        "created": created,
        "architecture": architecture,
        "os": "linux",
        "config": dict(config),
        "rootfs": {"type": "layers", "diff_ids": [diff for _, diff in layers]},
        "history": [{"created": created, "created_by": "shoal"} for _ in layers],
    }
    cfg = put_blob(layout, json.dumps(image_config, sort_keys=True).encode(), CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "config": cfg, "layers": [d for d, _ in layers]}
    desc = put_blob(layout, json.dumps(manifest, sort_keys=True).encode(), MANIFEST)
    desc["annotations"] = {REF_NAME: ref_name}
    entries = [m for m in read_index(layout) if (m.get("annotations") or {}).get(REF_NAME) != ref_name]
    write_index(layout, [*entries, desc])
    return desc
