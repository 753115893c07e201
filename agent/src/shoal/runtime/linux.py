"""Thin Linux syscall wrappers the standard library of Python 3.11 lacks (setns, unshare, mount),
process identity, cgroup file readers and JSON records replaced atomically (`shoal.files`).
"""

from __future__ import annotations

import ctypes
import json
import os
from typing import Any

from shoal.files import write_atomic

CLONE_NEWNET = 0x40000000

MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
MNT_DETACH = 0x2

PR_SET_PDEATHSIG = 1

_libc: ctypes.CDLL | None = None


def libc() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(libc().unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int) -> None:
    """Enter the namespace open at fd. Per thread: the caller's thread only (see notes #1)."""
    _check(libc().setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    src = source.encode() if source is not None else None
    fst = fstype.encode() if fstype is not None else None
    dat = data.encode() if data is not None else None
    ret = libc().mount(src, target.encode(), fst, ctypes.c_ulong(flags), dat)
    _check(ret, f"mount {source or fstype} on {target}")


def umount(target: str, flags: int = MNT_DETACH) -> None:
    _check(libc().umount2(target.encode(), ctypes.c_int(flags)), f"umount {target}")


def set_parent_death_signal(sig: int) -> None:
    _check(libc().prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")


# --- process identity: a pid alone is reused; (pid, start time, boot id) is not ---------------


def read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def boot_id() -> str:
    return (read_text("/proc/sys/kernel/random/boot_id") or "").strip()


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time in clock ticks since boot) of pid, or None if it is gone."""
    raw = read_text(f"/proc/{pid}/stat")
    if raw is None:
        return None
    # the command name may hold spaces and ')': fields restart after the last ')'
    fields = raw.rsplit(")", 1)[1].split()
    try:
        return fields[0], int(fields[1]), int(fields[19])
    except (IndexError, ValueError):
        return None


def start_time(pid: int) -> int | None:
    st = proc_stat(pid)
    return st[2] if st else None


def same_process(pid: int, started: int | None) -> bool:
    """True if pid is alive (not a zombie) and is the process that started at `started`."""
    st = proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X") and (started is None or st[2] == started)


# --- cgroup files ----------------------------------------------------


def cgroup_procs(paths: list[str]) -> set[int]:
    found: set[int] = set()
    for path in paths:
        found.update(int(p) for p in (read_text(os.path.join(path, "cgroup.procs")) or "").split())
    return found


# --- files ------------------------------------------------------------------------------------


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Durable (the file and, since shoal.files, its directory fsynced): a restarted agent reads
    these records, and a task's start record must outlive a power cut, or the node would take the
    task for never started instead of reporting it lost with the node's restart. The directory's
    fsync costs a task start a few ms of I/O wait (2-6 ms measured on an ext4 VM disk), waited in
    the executor's threads, side by side across tasks, not CPU."""
    write_atomic(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """The parsed file, or None when it does not exist (files are replaced atomically)."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
