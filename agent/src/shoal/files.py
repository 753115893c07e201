"""Replacing a file in one step, and syncing a file or a directory by path: the standard library
only, nothing of shoal, so that every layer (the CLI included) may use it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: str | os.PathLike[str], data: str | bytes, mode: int = 0o644, *, durable: bool = True) -> None:
    """Replace `path` with `data` (a str is written as UTF-8) with permissions `mode`.

    Readers see the old file or the new one, never an empty or partial one: the data goes to a
    temporary file beside `path` that a rename puts in its place. The temporary file is created
    0600 and only then given `mode`, so a secret is never readable by others, not even for a
    moment; on any failure it is removed and the old file stays as it was.

    `durable` fsyncs the file before the rename and the directory after it, so that after a power
    cut the file is the old or the new one and the rename is not lost. Without it the replacement
    is still atomic for readers, which is all a file on a tmpfs or a throwaway file needs.
    """
    path = Path(path)
    # encoded before the temporary file exists, so that data which cannot be encoded leaves
    # nothing behind; memoryview, not bytes(): bytes(123) is 123 zero bytes, not a TypeError
    view = memoryview(data.encode() if isinstance(data, str) else data)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)  # exactly `mode`: fchmod ignores the umask
        while view:  # os.write may write less than asked (signals, pipes, some file systems)
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_path(path.parent)  # the rename itself reaches the disk


def fsync_path(path: str | os.PathLike[str]) -> None:
    """fsync a file or a directory by path; a directory, so that a rename or an unlink in it
    survives a power cut (a file's own fsync does not make its name durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
