"""Replace a manager's set of wrapped key files as one: all under the new unlock key, or none.

Autolock wraps three files per manager (the TLS key, the Raft data key, the Raft password in
`node.json`). Replacing them one by one, a crash in between would leave them under two different
unlock keys, and no single key would unlock the manager. So a re-wrap is a small redo log:

1. every new file is written beside its old one as `<name>.next` (0600, synced);
2. the commit record `keys/rewrap.commit` (the list of files) is written and renamed into place:
   this rename is the one atomic switch;
3. each `<name>.next` is renamed over `<name>`; then the record is removed.

`recover()` (run at start, before any key is read, and before each re-wrap) finishes a switch
whose record exists (a rename already done has no `.next` left, so rolling forward is idempotent)
and otherwise deletes leftover `.next` files, which hold keys of a re-wrap that never committed
(possibly in clear, when autolock was being turned off).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from shoal.files import fsync_path

RECORD = "rewrap.commit"
NEXT = ".next"


def _next(path: Path) -> Path:
    return path.with_name(path.name + NEXT)


def _write(path: Path, data: bytes) -> None:
    """Write `path` (0600, synced) under the fixed name the recovery knows it by.

    Not `shoal.files.write_atomic`, whose temporary file has a random name: `recover` finds the
    `<name>.next` files (the redo log) and removes the record's temporary `rewrap.commit.tmp` by
    their names, so a crash leaves nothing it cannot find; and the record's write and its rename
    (the switch) are two steps, with a crash point between them that the tests stop at."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _step(_name: str) -> None:
    """A point where a crash can happen (unit tests replace it to stop there)."""


def replace_all(
    record_dir: Path,
    files: Mapping[Path, bytes],
    *,
    on_commit: Callable[[], None] | None = None,
    step: Callable[[str], None] = _step,
) -> None:
    """Replace every file in `files` with its new content, all or none even across a crash.
    `on_commit` runs as soon as the switch is made: the caller's memory follows the disk even if a
    rename after it fails (the next `recover` finishes those)."""
    record = record_dir / RECORD
    recover(record_dir, files)  # a switch left half done (a crash) is finished first
    for path, data in files.items():
        _write(_next(path), data)
        step(f"wrote {path.name}{NEXT}")
    for parent in {path.parent for path in files}:
        fsync_path(parent)
    record_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = record.with_name(RECORD + ".tmp")
    _write(tmp, json.dumps([str(path) for path in files]).encode())
    step("wrote the record")
    os.replace(tmp, record)  # the switch
    fsync_path(record_dir)
    if on_commit is not None:
        on_commit()
    step("committed")
    _roll_forward(record, step)


def _roll_forward(record: Path, step: Callable[[str], None] = _step) -> None:
    paths = [Path(p) for p in json.loads(record.read_bytes())]
    for path in paths:
        if _next(path).exists():
            os.replace(_next(path), path)
            step(f"renamed {path.name}")
    for parent in {path.parent for path in paths}:
        fsync_path(parent)
    record.unlink()
    fsync_path(record.parent)


def recover(record_dir: Path, paths: Iterable[Path]) -> str | None:
    """Finish or undo a re-wrap a crash interrupted; what was done ("finished", "undone") or None."""
    record = record_dir / RECORD
    record.with_name(RECORD + ".tmp").unlink(missing_ok=True)
    if record.exists():
        _roll_forward(record)
        return "finished"
    leftovers = [_next(path) for path in paths if _next(path).exists()]
    for path in leftovers:
        path.unlink()
    return "undone" if leftovers else None
