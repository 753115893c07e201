"""One testbed per machine: test sessions and benchmarks take turns (namespace names are global)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager

LOCK_PATH = "/run/lock/shoal-testbed.lock"


@contextmanager
def testbed_lock() -> Iterator[None]:
    with open(LOCK_PATH, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
