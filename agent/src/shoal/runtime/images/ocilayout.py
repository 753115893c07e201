"""Writing and reading OCI image layouts (image-spec v1) with the standard library.

Used to make images locally — `shoal image import`, the built-in `shoal/hello` and `shoal/host`,
the testbed's test images — without a build daemon: a layer is a tar of a directory, gzip'd;
blobs are written under their digest through a temporary file and a rename, so a reader never
sees a partial blob.

The small files (index.json, config and manifest blobs) go through `shoal.files.write_atomic`,
durably: a blob is written once and never again (`put_blob` and the store's pulls skip a digest
whose file exists), so one that a power cut left named but empty would stay broken, not be
fetched again. They are a few kilobytes, a handful per image: the fsyncs cost next to nothing.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import tarfile
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shoal.files import write_atomic

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_FILE = '{"imageLayoutVersion":"1.0.0"}'


def init_layout(layout: Path, blobs: Path | None = None) -> None:
    """An empty layout; `blobs` (a shared blobs directory) is linked in instead of a private one."""
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text(LAYOUT_FILE)
    if blobs is not None:
        blobs.mkdir(parents=True, exist_ok=True)
        if not (layout / "blobs").exists():
            (layout / "blobs").symlink_to(blobs)
    else:
        (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    if not (layout / "index.json").exists():
        write_index(layout, [])


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
        diff = hashlib.sha256()

        class _Tee:  # hashes the uncompressed tar (the diff_id) while gzip writes the blob
            def __init__(self, out: Any) -> None:
                self.out = out

            def write(self, data: bytes) -> int:
                diff.update(data)
                return self.out.write(data)

        with (
            open(tmp, "wb") as raw,
            gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=1, mtime=0) as gz,
            tarfile.open(fileobj=_Tee(gz), mode="w|", format=tarfile.PAX_FORMAT) as tar,  # type: ignore[arg-type]
        ):
            for entry in sorted(os.listdir(src)):
                tar.add(src / entry, arcname=entry, recursive=True, filter=_reset_times)
        digest = _file_digest(tmp)
        size = os.path.getsize(tmp)
        dest = blob_path(layout, digest)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        with_suppress_unlink(tmp)
        raise
    return {"mediaType": LAYER_GZIP, "digest": digest, "size": size}, "sha256:" + diff.hexdigest()


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
