"""Starting a task under conmon (which runs `<runtime> create`), and what conmon leaves behind.

As podman does: conmon gets a sync pipe (`_OCI_SYNCPIPE`) on which it answers
`{"data": <container pid>}` once the runtime created the container, or
`{"data": -1, "message": "..."}` when it could not; it then daemonizes, outlives the agent,
writes the exit code into `--exit-dir/<id>` (128 + signal for a killed task) and an `oom` file
into its persist dir when the kernel's OOM killer struck.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 30.0
LOG_SIZE_MAX = 10 * 1024 * 1024  # bytes of k8s-file log per task before conmon starts it again


class ConmonError(RuntimeError):
    pass


@dataclass(frozen=True)
class Paths:
    """Where conmon writes, for one task (all inside its bundle dir but the socket dir)."""

    bundle: Path
    task_id: str
    sock_dir: Path

    @property
    def conmon_pidfile(self) -> Path:
        return self.bundle / "conmon.pid"

    @property
    def pidfile(self) -> Path:
        return self.bundle / "pid"

    @property
    def log(self) -> Path:
        return self.bundle / "ctr.log"

    @property
    def exit_dir(self) -> Path:
        return self.bundle / "exits"

    @property
    def exit_file(self) -> Path:
        return self.exit_dir / self.task_id

    @property
    def oom_file(self) -> Path:
        return self.bundle / "oom"

    @property
    def conmon_log(self) -> Path:
        return self.bundle / "conmon.log"


def runtime_path(name: str | None = None, cgroup_root: str = "/sys/fs/cgroup") -> str:
    """The OCI runtime: `name` when given, else crun where the cgroups are unified (v2 only:
    crun refuses hybrid hosts) and runc otherwise."""
    if name:
        found = shutil.which(name)
        if not found:
            raise ConmonError(f"OCI runtime {name!r} not found")
        return found
    pure_v2 = os.path.exists(os.path.join(cgroup_root, "cgroup.controllers"))
    for candidate in ("crun", "runc") if pure_v2 else ("runc",):
        found = shutil.which(candidate) or next(
            (p for d in ("/usr/sbin", "/usr/bin", "/sbin") if os.access(p := f"{d}/{candidate}", os.X_OK)), None
        )
        if found:
            return found
    raise ConmonError("no OCI runtime (runc or crun) is installed")


def conmon_argv(conmon: str, runtime: str, runtime_root: str, paths: Paths, log_size_max: int) -> list[str]:
    tid = paths.task_id
    return [
        conmon,
        *("--api-version", "1", "-c", tid, "-u", tid, "-n", tid),
        *("-r", runtime, "-b", str(paths.bundle), "-p", str(paths.pidfile)),
        *("--conmon-pidfile", str(paths.conmon_pidfile), "-0", str(paths.bundle)),
        *("-l", f"k8s-file:{paths.log}", "--log-size-max", str(log_size_max)),
        *("--exit-dir", str(paths.exit_dir), "--socket-dir-path", str(paths.sock_dir)),
        *("--runtime-arg", f"--root={runtime_root}"),
        *("--log-level", "error", "--syslog=false", "--no-sync-log"),
    ]


def parse_sync(data: bytes) -> tuple[int, str]:
    """(pid, message) from conmon's sync-pipe answer; pid -1 when the create failed."""
    for line in data.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if isinstance(msg, dict) and isinstance(msg.get("data"), int):
            return int(msg["data"]), str(msg.get("message") or "")
    return -1, ""


def start(argv: Sequence[str], paths: Paths, timeout: float = START_TIMEOUT) -> int:
    """Run conmon; return the container's pid once created (raises ConmonError with the
    runtime's reason otherwise)."""
    paths.exit_dir.mkdir(exist_ok=True)
    paths.sock_dir.mkdir(parents=True, exist_ok=True)
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        with open(paths.conmon_log, "ab") as err:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                pass_fds=(w,),
                env={"_OCI_SYNCPIPE": str(w), "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
                cwd="/",
                start_new_session=True,
            )
        os.close(w)
        w = -1
        proc.wait(timeout)  # conmon's first process exits once it forked the monitor
        data = _read_until_eof_or_answer(r, timeout)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    pid, message = parse_sync(data)
    if pid <= 0:
        why = message or _tail(paths.conmon_log) or "conmon gave no answer"
        raise ConmonError(why)
    return pid


def _read_until_eof_or_answer(fd: int, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    data = b""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(int(left * 1000)):
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data


def _tail(path: Path, size: int = 2000) -> str:
    try:
        text = path.read_bytes()[-size:].decode(errors="replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def parse_exit_file(text: str) -> int | None:
    """conmon's exit file holds the exit code as decimal text (128 + signal when killed)."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        return None


def read_exit(paths: Paths) -> int | None:
    try:
        return parse_exit_file(paths.exit_file.read_text())
    except OSError:
        return None


def read_pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        pid = int(path.read_text().strip())
        return pid if pid > 0 else None
    return None


def signal_of(exit_code: int) -> int | None:
    return exit_code - 128 if 128 < exit_code < 128 + 65 else None
