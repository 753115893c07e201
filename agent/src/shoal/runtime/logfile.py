"""Reading a task's log file: the last N lines without reading it all, and following it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

BLOCK = 64 * 1024
FOLLOW_POLL = 0.05  # seconds between looks at a quiet log


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


def read_lines(
    path: Path,
    tail: int | None = None,
    follow: bool = False,
    running: Callable[[], bool] | None = None,
) -> Iterator[bytes]:
    """Yield the file's lines (from the last `tail` ones when given). With follow, wait for
    more while `running()` says the writer is alive; a partial last line is held back until it
    ends or the writer ended."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        if not follow:
            return
        while not os.path.exists(path):  # the task has not written yet
            if running is None or not running():
                return
            time.sleep(FOLLOW_POLL)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        pos = tail_offset(fd, tail) if tail is not None else 0
        pending = b""
        while True:
            chunk = os.pread(fd, BLOCK, pos)
            if chunk:
                pos += len(chunk)
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                for line in lines:
                    yield line + b"\n"
                continue
            if not follow:
                break
            alive = running() if running else False
            if not alive and not os.pread(fd, 1, pos):
                break  # the writer ended and everything it wrote was read
            if alive:
                time.sleep(FOLLOW_POLL)
        if pending:
            yield pending
    finally:
        os.close(fd)
