"""Run Python callables inside a named network namespace (from a short-lived thread).

setns is per thread (notes/dataplane.md #1), so the caller's thread never changes namespace.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TypeVar

from pyroute2.netns import setns

T = TypeVar("T")


def call_in_netns(name: str, fn: Callable[[], T], timeout: float = 30.0) -> T:
    path = f"/run/netns/{name}"
    if not os.path.exists(path):
        # setns() given a missing name would create it; we only ever enter existing ones
        raise FileNotFoundError(f"network namespace {name} does not exist")
    result: list[T] = []
    error: list[BaseException] = []

    def runner() -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                setns(fd, flags=0)
            finally:
                os.close(fd)
            result.append(fn())
        except BaseException as exc:  # handed back to the caller's thread
            error.append(exc)

    thread = threading.Thread(target=runner, name=f"netns-{name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"call in namespace {name} did not finish in {timeout} s")
    if error:
        raise error[0]
    return result[0]
