"""`shoal.files.write_atomic`: the file's mode, readers that never see a torn file, and what a
failed write leaves behind (the old file as it was, no temporary file)."""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from shoal.files import fsync_path, write_atomic


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def reads_while_rewritten(path: Path, rewrite: Callable[[], None], times: int = 1_000) -> set[str]:
    """Every distinct content a reader thread saw while `rewrite` ran `times` times."""
    done = threading.Event()
    reads: list[str] = []

    def read_until_done() -> None:
        while not done.is_set() and len(reads) < 200_000:
            reads.append(path.read_text())

    reader = threading.Thread(target=read_until_done)
    reader.start()
    try:
        for _ in range(times):
            rewrite()
    finally:
        done.set()
        reader.join(30)
    assert len(reads) > 100  # the reader ran beside the writes
    return set(reads)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_file_gets_exactly_its_mode_whatever_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "f"
    with umask(0o077):  # a 0644 wanted must not come out 0600
        write_atomic(target, "x", 0o644)
    assert oct(mode_of(target)) == oct(0o644)
    with umask(0o000):  # nor a 0600 secret come out readable, over a file that was 0644
        write_atomic(target, "secret", 0o600)
    assert oct(mode_of(target)) == oct(0o600)
    write_atomic(target, b"#!/bin/sh\n", 0o755)
    assert oct(mode_of(target)) == oct(0o755)
    assert target.read_bytes() == b"#!/bin/sh\n"
    write_atomic(target, "default")
    assert oct(mode_of(target)) == oct(0o644)


def test_the_temporary_file_is_private_until_it_gets_its_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    modes_before: list[int] = []
    real_fchmod = os.fchmod

    def fchmod(fd: int, mode: int) -> None:
        modes_before.append(stat.S_IMODE(os.fstat(fd).st_mode))
        real_fchmod(fd, mode)

    monkeypatch.setattr(os, "fchmod", fchmod)
    with umask(0o000):
        write_atomic(tmp_path / "key", "secret", 0o644)
    assert [oct(m) for m in modes_before] == [oct(0o600)]


def test_a_reader_never_sees_an_empty_or_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "f"
    long, short = "a" * 65_536, "b\n"  # a torn long file reads as neither
    write_atomic(target, long)
    contents = [long, short]

    def rewrite() -> None:
        contents.reverse()
        # not durable: fsync decides what survives a power cut, not what a reader sees
        write_atomic(target, contents[0], durable=False)

    assert reads_while_rewritten(target, rewrite) <= {long, short}
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_short_writes_are_continued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data)[:7]))
    write_atomic(tmp_path / "f", "0123456789" * 10)
    monkeypatch.undo()
    assert (tmp_path / "f").read_text() == "0123456789" * 10


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ("caf\udce9", UnicodeEncodeError),  # a lone surrogate (undecodable bytes as str) has no UTF-8
        (123, TypeError),  # not 123 zero bytes
    ],
)
def test_data_that_cannot_be_written_leaves_the_old_file(tmp_path: Path, data: object, error: type) -> None:
    target = tmp_path / "f"
    write_atomic(target, "old", 0o600)
    with pytest.raises(error):
        write_atomic(target, data, 0o644)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert oct(mode_of(target)) == oct(0o600)
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_a_disk_full_halfway_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "f"
    write_atomic(target, "old")
    real_write = os.write
    calls = 0

    def write_then_fill_up(fd: int, data: bytes) -> int:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, bytes(data)[:100])

    monkeypatch.setattr(os, "write", write_then_fill_up)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, "new" * 1_000)
    monkeypatch.undo()
    assert calls == 2  # the temporary file had 100 bytes when the write failed
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_a_failed_rename_removes_the_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "conf"
    target.mkdir()
    (target / "inside").write_text("kept")
    with pytest.raises(OSError):  # a directory in the way: the rename fails after the write
        write_atomic(target, "new")
    assert [p.name for p in tmp_path.iterdir()] == ["conf"]
    assert (target / "inside").read_text() == "kept"


def test_a_missing_directory_is_an_error_that_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "gone" / "f", "x")
    assert list(tmp_path.iterdir()) == []


def test_a_relative_path_is_written_in_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_atomic("haproxy.cfg", "x\n")
    assert (tmp_path / "haproxy.cfg").read_text() == "x\n"
    assert [p.name for p in tmp_path.iterdir()] == ["haproxy.cfg"]


@pytest.mark.parametrize(("durable", "synced"), [(True, ["file", "directory"]), (False, [])])
def test_durable_fsyncs_the_file_then_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool, synced: list[str]
) -> None:
    seen: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        seen.append("directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_atomic(tmp_path / "f", "x", durable=durable)
    assert seen == synced


def test_fsync_path_syncs_a_file_or_a_directory_and_closes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    (tmp_path / "f").write_text("x")
    before = len(os.listdir("/proc/self/fd"))
    fsync_path(tmp_path / "f")
    fsync_path(tmp_path)
    assert seen == [str(tmp_path / "f"), str(tmp_path)]
    assert len(os.listdir("/proc/self/fd")) == before  # no descriptor left open
    with pytest.raises(FileNotFoundError):
        fsync_path(tmp_path / "missing")
