"""conmon's `k8s-file` log format, read back: one record per line,
`<RFC 3339 nano timestamp> <stdout|stderr> <P|F> <bytes>`, where P marks a piece of a line that
continues in the next record (conmon splits long lines and writes partial ones as they come).

conmon caps a log at `--log-size-max` by starting it again (a new file renamed over the old):
a follower notices the new inode, or a shorter file, and reads the new one from its start.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

BLOCK = 64 * 1024
FOLLOW_POLL = 0.05  # seconds between looks at a quiet log
STREAMS = {b"stdout": 1, b"stderr": 2}


@dataclass(frozen=True)
class Record:
    timestamp: str  # RFC 3339 with nanoseconds, in UTC with a Z (Docker's --timestamps shape)
    stream: int  # 1 stdout, 2 stderr
    data: bytes  # a whole line ends with b"\n"; a last piece without one is a line in progress

    @property
    def time(self) -> float:
        return parse_time(self.timestamp)

    def to_line(self) -> bytes:
        """Back to one k8s-file line (a partial data ends without a newline: flag P)."""
        name = b"stdout" if self.stream == 1 else b"stderr"
        whole = self.data.endswith(b"\n")
        body = self.data[:-1] if whole else self.data
        return b"%s %s %s %s\n" % (self.timestamp.encode(), name, b"F" if whole else b"P", body)


def tail_offset(f: int, lines: int) -> int:
    """Offset of the start of the last `lines` lines of the open file (a last line without
    its newline counts as a line)."""
    end = os.fstat(f).st_size
    if lines <= 0:
        return end
    pos, seen = end, 0
    while pos > 0:
        size = min(BLOCK, pos)
        pos -= size
        block = os.pread(f, size, pos)
        for i in range(len(block) - 1, -1, -1):
            if block[i] != 0x0A or pos + i == end - 1:
                continue  # a newline that ends the file closes the last line: not a separator
            seen += 1
            if seen == lines:
                return pos + i + 1
    return 0


def parse_time(stamp: str) -> float:
    """Seconds since the epoch of an RFC 3339 time with up to nanoseconds (0.0 if unreadable)."""
    text = stamp.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    frac = 0.0
    if dot:
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        frac = float("0." + digits) if digits else 0.0
        text = head + rest
    try:
        return datetime.fromisoformat(text).timestamp() + frac
    except ValueError:
        return 0.0


def normalize_time(stamp: str) -> str:
    """conmon writes `+00:00`; Docker prints `Z`."""
    return stamp[:-6] + "Z" if stamp.endswith("+00:00") else stamp


def parse_line(line: bytes) -> tuple[str, int, bool, bytes] | None:
    """(timestamp, stream, partial, data) of one record without its newline; None if malformed."""
    parts = line.split(b" ", 3)
    if len(parts) < 3 or parts[1] not in STREAMS or parts[2] not in (b"P", b"F"):
        return None
    data = parts[3] if len(parts) == 4 else b""
    return normalize_time(parts[0].decode("ascii", "replace")), STREAMS[parts[1]], parts[2] == b"P", data


class Assembler:
    """Records in, whole lines out: P pieces of one stream are joined up to the F that ends them."""

    def __init__(self) -> None:
        self.pending: dict[int, tuple[str, bytes]] = {}

    def feed(self, line: bytes) -> Record | None:
        parsed = parse_line(line)
        if parsed is None:
            return None
        stamp, stream, partial, data = parsed
        first, before = self.pending.pop(stream, (stamp, b""))
        if partial:
            self.pending[stream] = (first, before + data)
            return None
        return Record(first, stream, before + data + b"\n")

    def flush(self) -> list[Record]:
        out = [Record(stamp, stream, data) for stream, (stamp, data) in sorted(self.pending.items()) if data]
        self.pending.clear()
        return out


def parse(text: bytes) -> list[Record]:
    """Every record of a whole log (for tests and small reads)."""
    asm = Assembler()
    out = [r for line in text.split(b"\n") if line and (r := asm.feed(line)) is not None]
    return out + asm.flush()


def read_records(
    path: Path,
    tail: int | None = None,
    follow: bool = False,
    running: Callable[[], bool] | None = None,
    since: float | None = None,
) -> Iterator[Record]:
    """The log's lines (the last `tail` records when given, none older than `since`); with
    follow, more as they come while `running()` says the task lives, across rotations."""
    asm = Assembler()
    fd = _open_waiting(path, follow, running)
    if fd is None:
        return
    try:
        pos = tail_offset(fd, tail) if tail is not None else 0
        ino = os.fstat(fd).st_ino
        pending = b""
        while True:
            chunk = os.pread(fd, BLOCK, pos)
            if chunk:
                pos += len(chunk)
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                for line in lines:
                    rec = asm.feed(line)
                    if rec is not None and (since is None or rec.time >= since):
                        yield rec
                continue
            if not follow:
                break
            alive = running() if running else False
            try:
                st = os.stat(path)
            except FileNotFoundError:
                st = None
            if st is not None and (st.st_ino != ino or st.st_size < pos):  # conmon started it again
                os.close(fd)
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                ino, pos, pending = os.fstat(fd).st_ino, 0, b""
                continue
            if not alive and not os.pread(fd, 1, pos):
                break
            time.sleep(FOLLOW_POLL)
        if pending:
            rec = asm.feed(pending)
            if rec is not None and (since is None or rec.time >= since):
                yield rec
        for rec in asm.flush():
            if since is None or rec.time >= since:
                yield rec
    finally:
        os.close(fd)


def _open_waiting(path: Path, follow: bool, running: Callable[[], bool] | None) -> int | None:
    while True:
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if not follow or running is None or not running():
                return None
            time.sleep(FOLLOW_POLL)
