"""Running code inside a network namespace, and namespaces owned by the dataplane.

setns() moves only the calling thread (notes/dataplane.md #1), so every piece of work in another
namespace runs in a short-lived thread that enters it and ends. Netlink sockets, /proc/sys/net
files and child processes opened by that thread belong to the namespace it entered.

Work in the host namespace also runs in a fresh thread: pyroute2 0.9.7's synchronous IPRoute
must not run in a thread with a running asyncio loop, and the caller's thread might have one.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable
from typing import TypeVar

from pyroute2 import IPRoute
from pyroute2 import netns as pyroute2_netns

from shoal.runtime import netns as runtime_netns

T = TypeVar("T")


def run(path: str | None, fn: Callable[[], T]) -> T:
    """fn() in a new thread that entered the namespace at `path` (None: this namespace)."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            if path is not None:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    # flags=0: an fd never creates a namespace (a name would, see notes #1)
                    pyroute2_netns.setns(fd, flags=0)
                finally:
                    os.close(fd)
            result.append(fn())
        except BaseException as exc:  # handed back to the caller's thread
            error.append(exc)

    thread = threading.Thread(target=target, name=f"netns:{path or 'host'}", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def iproute(path: str | None, fn: Callable[[IPRoute], T]) -> T:
    """fn(ipr) with an IPRoute whose socket lives in the namespace at `path`."""

    def with_ipr() -> T:
        with IPRoute() as ipr:
            return fn(ipr)

    return run(path, with_ipr)


def sysctl_write(name: str, value: str) -> None:
    """Write /proc/sys/<name> of the calling thread's namespace (call it inside run())."""
    with open("/proc/sys/" + name.replace(".", "/"), "w") as f:
        f.write(value)


def sysctl_read(name: str) -> str:
    with open("/proc/sys/" + name.replace(".", "/")) as f:
        return f.read().strip()


def exec_in(path: str | None, argv: list[str], stdin: str | None = None, timeout: float = 60) -> str:
    """Run argv in the namespace at `path` (nsenter, so no thread has to change namespace)."""
    full = ["nsenter", f"--net={path}", "--", *argv] if path else argv
    proc = subprocess.run(full, input=stdin, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise OSError(proc.stderr.strip() or f"{argv[0]} exited with {proc.returncode}")
    return proc.stdout


# ---- named namespaces (sandboxes); made the way `ip netns add` makes them
def path_of(name: str, netns_dir: str) -> str:
    return runtime_netns.path_of(name, netns_dir)


def exists(path: str) -> bool:
    return runtime_netns.exists(os.path.basename(path), os.path.dirname(path))


def create(name: str, netns_dir: str) -> str:
    return runtime_netns.create(name, netns_dir)


def remove(name: str, netns_dir: str) -> None:
    runtime_netns.remove(name, netns_dir)


def names(netns_dir: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(netns_dir) if runtime_netns.exists(n, netns_dir))
    except FileNotFoundError:
        return []
