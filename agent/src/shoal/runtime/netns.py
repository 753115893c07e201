"""Named network namespaces for tasks, made the way `ip netns add` makes them (a bind mount of
the namespace file under /run/netns), so that `ip netns exec`, pyroute2's NetNS(name) and the
networking code find them by name.

The namespace is created from a short-lived thread: unshare(CLONE_NEWNET) moves only the calling
thread (notes/dataplane.md #1), so the agent's other threads never change namespace.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct
import threading

from shoal.runtime import linux

NETNS_DIR = "/run/netns"
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
_dir_lock = threading.Lock()


def path_of(name: str, netns_dir: str = NETNS_DIR) -> str:
    return os.path.join(netns_dir, name)


def exists(name: str, netns_dir: str = NETNS_DIR) -> bool:
    """True if the name is bound to a namespace (not just a leftover empty file)."""
    path = path_of(name, netns_dir)
    try:
        return os.stat(path).st_dev != os.stat(netns_dir).st_dev
    except OSError:
        return False


def _shared_dir(netns_dir: str) -> None:
    """As iproute2: /run/netns is a shared mount, so that namespace files bound later reach the
    copies of it in mount namespaces created earlier (and their unmounts do too)."""
    os.makedirs(netns_dir, exist_ok=True)
    try:
        linux.mount(None, netns_dir, None, linux.MS_SHARED | linux.MS_REC)
    except OSError:  # not a mount point yet
        linux.mount(netns_dir, netns_dir, None, linux.MS_BIND | linux.MS_REC)
        linux.mount(None, netns_dir, None, linux.MS_SHARED | linux.MS_REC)


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req + b"\0" * 22)[:18])[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP) + b"\0" * 22)


def create(name: str, netns_dir: str = NETNS_DIR) -> str:
    """Create the namespace `name` with its loopback up (idempotent); returns its path."""
    path = path_of(name, netns_dir)
    if exists(name, netns_dir):
        return path
    with _dir_lock:
        _shared_dir(netns_dir)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    error: list[BaseException] = []

    def in_new_netns() -> None:
        try:
            linux.unshare(linux.CLONE_NEWNET)
            linux.mount("/proc/thread-self/ns/net", path, None, linux.MS_BIND)
            _loopback_up()  # a socket made by this thread lives in the new namespace
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=in_new_netns, name=f"netns-{name}", daemon=True)
    thread.start()
    thread.join()
    if error:
        remove(name, netns_dir)
        raise OSError(f"cannot create network namespace {name}: {error[0]}")
    return path


def remove(name: str, netns_dir: str = NETNS_DIR) -> None:
    """Unbind and delete the name; the namespace ends with its last process (idempotent)."""
    path = path_of(name, netns_dir)
    with contextlib.suppress(OSError):
        linux.umount(path, linux.MNT_DETACH)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def inode(name: str, netns_dir: str = NETNS_DIR) -> int | None:
    try:
        return os.stat(path_of(name, netns_dir)).st_ino if exists(name, netns_dir) else None
    except OSError:
        return None
