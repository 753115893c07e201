"""One testbed per machine: test sessions and benchmarks take turns (namespace names are global)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

LOCK_PATH = "/run/lock/shoal-testbed.lock"


@contextmanager
def testbed_lock() -> Iterator[None]:
    """SHOAL_TESTBED_LOCKED=1: the caller already holds the lock (`flock LOCK_PATH ...` around
    several sessions in one turn, as bench/_cluster.py takes it); taking it again would wait forever."""
    if os.environ.get("SHOAL_TESTBED_LOCKED") == "1":
        yield
        return
    with open(LOCK_PATH, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
