"""`shoal.runtime.images.ocilayout`: a layer reaches the disk before its digest names it and the
name after; a layout's `oci-layout` is written whole and last; the shared blobs link survives a
crashed or racing earlier attempt."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from shoal.runtime.images import ocilayout


def record_syncs_and_renames(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """("fsync", path) and ("replace", destination) in the order they happen."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        events.append(("replace", f"{src} -> {dst}"))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def test_a_layer_is_synced_before_its_rename_and_its_folder_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout, src = tmp_path / "oci", tmp_path / "src"
    ocilayout.init_layout(layout)
    (src / "etc").mkdir(parents=True)
    (src / "etc" / "hostname").write_text("box\n")
    events = record_syncs_and_renames(monkeypatch)
    desc, diff_id = ocilayout.put_layer_from_dir(layout, src)
    dest = ocilayout.blob_path(layout, desc["digest"])
    blobs = str(dest.parent)
    assert len(events) == 3, events
    (synced, tmp), (renamed, move), (synced_dir, folder) = events
    # the streamed file itself, under its temporary name, then the rename, then the folder
    assert synced == "fsync" and Path(tmp).parent == dest.parent and Path(tmp).name.startswith(".layer-")
    assert renamed == "replace" and move == f"{tmp} -> {dest}"
    assert (synced_dir, folder) == ("fsync", blobs)
    # and it is the layer: its digest, its size, its diff_id, no temporary left beside it
    raw = dest.read_bytes()
    assert desc["digest"] == "sha256:" + hashlib.sha256(raw).hexdigest() and desc["size"] == len(raw)
    with tarfile.open(dest, "r:gz") as tar:
        assert tar.getnames() == ["etc", "etc/hostname"]
        assert all(m.mtime == 0 for m in tar.getmembers())
    assert diff_id == "sha256:" + hashlib.sha256(gzip.decompress(raw)).hexdigest()
    assert oct(stat.S_IMODE(dest.stat().st_mode)) == oct(0o644)
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]


def test_the_layout_file_is_written_atomically_last_and_only_when_it_differs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[str] = []
    real_write = ocilayout.write_atomic

    def write_atomic(path: Path, data: str | bytes, *args: object, **kwargs: object) -> None:
        written.append(Path(path).name)
        real_write(path, data, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ocilayout, "write_atomic", write_atomic)
    layout = tmp_path / "oci"
    ocilayout.init_layout(layout)
    # last: the store takes a layout that has it for a whole one
    assert written == ["index.json", "oci-layout"]
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert (layout / "blobs" / "sha256").is_dir() and ocilayout.read_index(layout) == []
    written.clear()
    ocilayout.init_layout(layout)  # already right: nothing written again
    assert written == []
    (layout / "oci-layout").write_text("")  # torn by a crash of an older version
    ocilayout.init_layout(layout)
    assert written == ["oci-layout"]
    assert (layout / "oci-layout").read_text() == ocilayout.LAYOUT_FILE


def test_the_shared_blobs_link_is_renamed_into_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared, stage = tmp_path / "blobs", tmp_path / "stage"
    stage.mkdir()
    dead = stage / ".blobs.0123456789abcdef.tmp"
    dead.symlink_to(shared)  # an attempt that died before its rename
    events = record_syncs_and_renames(monkeypatch)
    ocilayout.init_layout(stage, shared)
    link = stage / "blobs"
    assert link.is_symlink() and link.resolve() == shared.resolve() and shared.is_dir()
    # made under a temporary name in the same folder, then renamed: never seen half made
    moves = [what for kind, what in events if kind == "replace" and what.endswith(f" -> {link}")]
    assert len(moves) == 1
    tmp = Path(moves[0].split(" -> ")[0])
    assert tmp.parent == stage and tmp.name.startswith(".blobs.") and not tmp.exists()
    # our own temporary name is gone; the dead attempt's one got in nobody's way
    assert sorted(p.name for p in stage.iterdir()) == [dead.name, "blobs", "index.json", "oci-layout"]
    ocilayout.init_layout(stage, shared)  # again: the link is left as it is
    assert link.resolve() == shared.resolve()


def test_an_existing_blobs_link_is_kept_even_dangling(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    stage.mkdir()
    (stage / "blobs").symlink_to(tmp_path / "gone")  # exists() is False for it, the name is taken
    ocilayout.init_layout(stage, tmp_path / "blobs")
    assert os.readlink(stage / "blobs") == str(tmp_path / "gone")
    assert (stage / "oci-layout").read_text() == ocilayout.LAYOUT_FILE


def test_a_racing_caller_that_linked_blobs_first_does_not_fail_us(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared, stage = tmp_path / "blobs", tmp_path / "stage"
    stage.mkdir()
    (stage / "blobs").symlink_to(shared)  # linked by the other caller just after we looked
    monkeypatch.setattr(os.path, "lexists", lambda _path: False)
    ocilayout.init_layout(stage, shared)
    assert (stage / "blobs").resolve() == shared.resolve()
    assert sorted(p.name for p in stage.iterdir()) == ["blobs", "index.json", "oci-layout"]
