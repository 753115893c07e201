"""Task logs: tail without reading everything, follow until the writer ends."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from shoal.runtime import logfile
from shoal.runtime.logfile import read_lines


def test_tail(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    log.write_bytes(b"a\nb\nc\n")
    assert list(read_lines(log)) == [b"a\n", b"b\n", b"c\n"]
    assert list(read_lines(log, tail=2)) == [b"b\n", b"c\n"]
    assert list(read_lines(log, tail=0)) == []
    assert list(read_lines(log, tail=10)) == [b"a\n", b"b\n", b"c\n"]
    log.write_bytes(b"a\nb\npartial")
    assert list(read_lines(log, tail=1)) == [b"partial"]
    assert list(read_lines(tmp_path / "missing")) == []


def test_tail_across_blocks(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(logfile, "BLOCK", 7)
    log = tmp_path / "out.log"
    lines = [f"line {i}\n".encode() for i in range(50)]
    log.write_bytes(b"".join(lines))
    assert list(read_lines(log, tail=13)) == lines[-13:]


def test_follow_until_writer_ends(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    log.write_bytes(b"first\n")
    done = threading.Event()

    def writer() -> None:
        with open(log, "ab") as f:
            for chunk in (b"sec", b"ond\n", b"third\nlast"):
                time.sleep(0.05)
                f.write(chunk)
                f.flush()
        done.set()

    threading.Thread(target=writer, daemon=True).start()
    got = list(read_lines(log, tail=5, follow=True, running=lambda: not done.is_set()))
    assert got == [b"first\n", b"second\n", b"third\n", b"last"]
