"""shoald's pidfile is replaced whole: `shoald_ctl.sh` polls it while shoald starts, and an empty
read made a healthy start look like an exit."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from shoal.daemon import write_pidfile


def test_a_reader_never_sees_the_pidfile_empty_while_it_is_rewritten(tmp_path: Path) -> None:
    pidfile = tmp_path / "shoald.pid"
    write_pidfile(pidfile)
    done = threading.Event()
    reads: list[str] = []

    def read_until_done() -> None:
        while not done.is_set() and len(reads) < 200_000:
            reads.append(pidfile.read_text())

    reader = threading.Thread(target=read_until_done)
    reader.start()
    try:
        for _ in range(1_000):
            write_pidfile(pidfile)
    finally:
        done.set()
        reader.join(30)
    assert len(reads) > 100  # the reader ran beside the writes
    assert set(reads) == {f"{os.getpid()}\n"}
