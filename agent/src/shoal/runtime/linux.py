"""Thin Linux syscall wrappers the standard library of Python 3.11 lacks (setns, unshare, mount),
process identity, cgroup file readers and atomic files.

Imported by the shim, which starts with `python -S` for every task: keep this module cheap
(os, ctypes, json only; no pathlib or dataclasses, each costs milliseconds per task start).
"""

from __future__ import annotations

import ctypes
import json
import os

TYPE_CHECKING = False  # typing itself costs ~5 ms per task start in the shim
if TYPE_CHECKING:
    from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MNT_DETACH = 0x2

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36

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


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(libc().sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")


def set_comm(name: str) -> None:
    """The name `ps` and /proc/PID/comm show (15 bytes at most)."""
    _check(libc().prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0), "prctl(PR_SET_NAME)")


def set_parent_death_signal(sig: int) -> None:
    _check(libc().prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")


def set_child_subreaper() -> None:
    _check(libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")


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


def ns_inode(pid: int | str, kind: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def all_pids() -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit()]


def task_pids(netns_ino: int | None, cgroups: list[str], parent: int | None = None) -> set[int]:
    """Processes of a task: in its cgroups, in its network namespace (works without cgroups and
    catches `exec` sessions), or children of `parent` (its shim, the subreaper of its orphans)."""
    found = cgroup_procs(cgroups)
    for pid in all_pids():
        st = proc_stat(pid)
        if st and st[0] != "Z" and (st[1] == parent or (netns_ino and ns_inode(pid, "net") == netns_ino)):
            found.add(pid)
    found.discard(os.getpid())
    if parent:
        found.discard(parent)
    return found


# --- cgroup files (the shim reads them too) ----------------------------------------------------


def cgroup_procs(paths: list[str]) -> set[int]:
    found: set[int] = set()
    for path in paths:
        found.update(int(p) for p in (read_text(os.path.join(path, "cgroup.procs")) or "").split())
    return found


def cgroup_oom_killed(paths: list[str]) -> bool:
    """The kernel's OOM killer hit a process of the group (v2 memory.events, v1 oom_control)."""
    for path in paths:
        for name in ("memory.events", "memory.oom_control"):
            for line in (read_text(os.path.join(path, name)) or "").splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip() not in ("", "0"):
                    return True
    return False


# --- files ------------------------------------------------------------------------------------


def write_atomic(path: str | os.PathLike[str], data: str | bytes, mode: int = 0o644) -> None:
    """Readers see the old or the new content, never half a file (agent and shim share files)."""
    head, tail = os.path.split(os.fspath(path))
    tmp = os.path.join(head, f".{tail}.{os.getpid()}.tmp")
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, raw)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """The parsed file, or None when it does not exist (files are replaced atomically)."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
