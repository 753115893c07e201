"""Starting a task's shim and hearing back from it."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from shoal.runtime.base import RuntimeDriverError
from shoal.runtime.logfile import read_lines
from shoal.runtime.spec import DEFAULT_PATH

START_TIMEOUT = 30.0
# the shim runs without site (a faster start), from the directory that holds the package
PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


def spawn_shim(task_dir: Path, timeout: float = START_TIMEOUT) -> dict[str, Any]:
    """Run the shim for task_dir; return its report (the state.json content) once the task's
    process runs, or raise RuntimeDriverError with why it did not start."""
    with open(task_dir / "shim.log", "ab") as shim_log:
        proc = subprocess.Popen(
            [sys.executable, "-S", "-m", "shoal.runtime.shim", str(task_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=shim_log,
            start_new_session=True,
            cwd="/",
            env={"PYTHONPATH": PACKAGE_PARENT, "PATH": DEFAULT_PATH, "LANG": "C.UTF-8"},
        )
    assert proc.stdout is not None
    try:
        proc.wait(timeout=timeout)  # the shim's first process exits right after its fork
        line = read_line(proc.stdout.fileno(), timeout)
    finally:
        proc.stdout.close()
    try:
        msg = json.loads(line) if line else None
    except ValueError:
        msg = None
    if not isinstance(msg, dict):
        tail = b"".join(read_lines(task_dir / "shim.log", tail=3)).decode(errors="replace").strip()
        raise RuntimeDriverError(f"starting task failed: the shim gave no answer ({tail or 'no log'})")
    if not msg.get("ok"):
        raise RuntimeDriverError(str(msg.get("error") or "starting task failed"))
    return msg


def wait_readable(fd: int, timeout: float | None) -> bool:
    """poll(), not select(): an agent with many tasks has descriptors above FD_SETSIZE."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000))))


def read_line(fd: int, timeout: float) -> bytes:
    """One line from fd, or what came before EOF or the timeout."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not wait_readable(fd, left):
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0]
