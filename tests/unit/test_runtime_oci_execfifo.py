"""Starting a created runc container through its exec FIFO, as `runc start` does (on real FIFOs:
a thread plays the container's init, blocked opening the FIFO for writing)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from shoal.runtime.oci import execfifo


def make_fifo(tmp_path: Path) -> Path:
    fifo = execfifo.fifo_path(tmp_path, "ctr1")
    fifo.parent.mkdir()
    os.mkfifo(fifo, 0o622)
    return fifo


def init_thread(fifo: Path, word: bytes) -> threading.Thread:
    """What runc's init does: open for writing (blocks until a reader), write a byte, exec (close)."""

    def run() -> None:
        fd = os.open(fifo, os.O_WRONLY)
        if word:
            os.write(fd, word)
        os.close(fd)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_start_lets_init_go_on_and_removes_the_fifo(tmp_path: Path) -> None:
    fifo = make_fifo(tmp_path)
    init = init_thread(fifo, b"0")
    time.sleep(0.05)  # init is blocked in open() before the start, as after `runc create`
    execfifo.start(fifo, os.getpid(), timeout=5)
    init.join(2)
    assert not init.is_alive()
    assert not fifo.exists()  # what `runc state` reads as "running"


def test_a_started_container_is_not_started_again(tmp_path: Path) -> None:
    with pytest.raises(execfifo.StartError, match="already started"):
        execfifo.start(execfifo.fifo_path(tmp_path, "gone"), os.getpid(), timeout=1)


def test_an_init_that_died_before_the_start_is_an_error_not_a_hang(tmp_path: Path) -> None:
    fifo = make_fifo(tmp_path)
    dead = subprocess.Popen(["true"])
    dead.wait()
    t0 = time.monotonic()
    with pytest.raises(execfifo.StartError, match="already dead"):
        execfifo.start(fifo, dead.pid, timeout=10)
    assert time.monotonic() - t0 < 2
    assert fifo.exists()  # nothing was started: runc still sees it "created"


def test_an_init_that_leaves_without_its_byte_is_an_error(tmp_path: Path) -> None:
    fifo = make_fifo(tmp_path)
    init = init_thread(fifo, b"")
    time.sleep(0.05)
    with pytest.raises(execfifo.StartError, match="already dead"):
        execfifo.start(fifo, os.getpid(), timeout=5)
    init.join(2)
