"""The `process` driver: each task in its own network, mount and UTS namespaces and cgroup,
supervised by a per-task shim (shim.py) that outlives the agent.

On-disk record of a task, STATE_DIR/<task-id>/ (kept until remove):
    task.json      the Task as handed to prepare()
    config.json    what the shim runs (argv, env, cwd, user, hostname, rootfs, netns, cgroups)
    hostname hosts resolv.conf   bind-mounted over the task's /etc files (rewrite them in
                   place, never by rename: a bind mount pins the inode)
    state.json     written by the shim once the process runs: pids, start times, boot id
    exit.json      written by the shim when the process ended: exit code, signal, OOM
    output.log     the task's stdout and stderr;  shim.log  the shim's own messages
    rootfs/ upper/ work/   overlay mount point and layers (images with a root filesystem)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from shoal.model.errors import SpecError
from shoal.runtime import cgroups, linux, netns, spec
from shoal.runtime.base import ExitStatus, NoSuchTask, RuntimeDriverError, TaskHandle
from shoal.runtime.images import ImageStore
from shoal.runtime.logfile import read_lines
from shoal.runtime.shim import CONFIG, EXIT, LOG, STATE

DEFAULT_STATE_DIR = Path("/var/lib/shoal/tasks")
START_TIMEOUT = 30.0
_TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# the shim runs from the directory that holds the `shoal` package, without site (faster start)
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


def _check_id(task_id: str) -> str:
    if not isinstance(task_id, str) or not _TASK_ID.match(task_id):
        raise SpecError(f"invalid task ID {task_id!r}")
    return task_id


class ProcessDriver:
    name = "process"

    def __init__(
        self,
        state_dir: Path | str = DEFAULT_STATE_DIR,
        images: ImageStore | None = None,
        cgroup_layout: cgroups.CgroupLayout | None = None,
        netns_dir: str = netns.NETNS_DIR,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.images = images or ImageStore()
        self.cgroups = cgroup_layout if cgroup_layout is not None else cgroups.detect()
        self.netns_dir = netns_dir
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def _lock(self, task_id: str) -> threading.Lock:
        """One lock per task: prepare/start/remove of a task are serialised, different tasks
        start in parallel (a start costs a Python start-up of the shim, ~30 ms)."""
        with self._locks_lock:
            return self._locks.setdefault(task_id, threading.Lock())

    # ---- paths and records
    def task_dir(self, task_id: str) -> Path:
        return self.state_dir / _check_id(task_id)

    def netns_path(self, task_id: str) -> str:
        return netns.path_of(spec.netns_name(task_id), self.netns_dir)

    def hosts_path(self, task_id: str) -> Path:
        return self.task_dir(task_id) / "hosts"

    def log_path(self, task_id: str) -> Path:
        return self.task_dir(task_id) / LOG

    def _record(self, task_id: str, name: str) -> dict[str, Any] | None:
        rec = linux.read_json(self.task_dir(task_id) / name)
        return rec if isinstance(rec, dict) else None

    def _config(self, task_id: str) -> dict[str, Any]:
        cfg = self._record(task_id, CONFIG)
        if cfg is None:
            raise NoSuchTask(task_id)
        return cfg

    # ---- prepare
    def prepare(self, task: Mapping[str, Any]) -> None:
        """Check the task and make its directory, namespace files and cgroups (idempotent).
        Raises SpecError (bad spec), NoSuchImage, TaskRejected or RuntimeDriverError."""
        task_id = _check_id(task.get("ID", ""))
        with self._lock(task_id):
            if self._record(task_id, CONFIG):
                return
            cfg = self._resolve(task)
            self._materialise(task, cfg)

    def _resolve(self, task: Mapping[str, Any]) -> dict[str, Any]:
        """Everything the shim needs, computed before anything is created."""
        cspec = spec.container_spec(task)
        limits = spec.limits_for(task)
        image = self.images.get(str(cspec.get("Image") or "").split("@", 1)[0] or "<none>")
        cgroups.check(self.cgroups, limits)
        root = image.rootfs or Path("/")
        user = spec.resolve_user(
            str(cspec.get("User") or image.config.get("User") or ""),
            _read(root / "etc/passwd"),
            _read(root / "etc/group"),
        )
        hostname = spec.hostname_for(task)
        env = spec.merge_env(image.config.get("Env") or [], [str(e) for e in cspec.get("Env") or []])
        return {
            "task_id": task["ID"],
            "image": image.repo_tags[0] if image.repo_tags else image.id,
            "argv": spec.resolve_argv(image.config, cspec),
            "env": spec.final_env(env, hostname, user.home),
            "cwd": spec.working_dir(image.config, cspec),
            "uid": user.uid,
            "gid": user.gid,
            "groups": list(user.groups),
            "hostname": hostname,
            "rootfs": str(image.rootfs) if image.rootfs else None,
            "netns": spec.netns_name(task["ID"]),
            "netns_path": self.netns_path(task["ID"]),
            "cgroups": [],
            "limits": {"NanoCPUs": limits.nano_cpus, "MemoryBytes": limits.memory_bytes},
            "stop_grace": spec.stop_grace(cspec),
        }

    def _materialise(self, task: Mapping[str, Any], cfg: dict[str, Any]) -> None:
        d = self.task_dir(cfg["task_id"])
        try:
            d.mkdir(parents=True, exist_ok=True)
            linux.write_json(d / "task.json", dict(task))
            (d / "hostname").write_text(cfg["hostname"] + "\n")
            (d / "hosts").write_text(spec.hosts_file(cfg["hostname"]))
            (d / "resolv.conf").write_text(spec.resolv_conf())
            if cfg["rootfs"]:
                for sub in ("rootfs", "upper", "work"):
                    (d / sub).mkdir(exist_ok=True)
            try:
                netns.create(cfg["netns"], self.netns_dir)
            except OSError as exc:
                raise RuntimeDriverError(str(exc)) from None
            limits = spec.Limits(cfg["limits"]["NanoCPUs"], cfg["limits"]["MemoryBytes"])
            cfg["cgroups"] = cgroups.create(self.cgroups, cfg["task_id"], limits)
            linux.write_json(d / CONFIG, cfg)  # last: its presence means "prepared"
        except BaseException:
            self._cleanup(cfg["task_id"], cfg)
            raise

    # ---- start
    def start(self, task: Mapping[str, Any]) -> TaskHandle:
        """Start the prepared task (preparing it if needed); a task that already started is
        never started again: its handle is returned."""
        task_id = _check_id(task.get("ID", ""))
        self.prepare(task)
        with self._lock(task_id):
            state = self._record(task_id, STATE)
            if state:
                return self._to_handle(task_id, state)
            if self._record(task_id, EXIT):  # its start failed: say why again
                raise RuntimeDriverError(self._status_from(task_id).message)
            return self._spawn(task_id)

    def _spawn(self, task_id: str) -> TaskHandle:
        d = self.task_dir(task_id)
        with open(d / "shim.log", "ab") as shim_log:
            proc = subprocess.Popen(
                [sys.executable, "-S", "-m", "shoal.runtime.shim", str(d)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=shim_log,
                start_new_session=True,
                cwd="/",
                env={"PYTHONPATH": _PACKAGE_PARENT, "PATH": spec.DEFAULT_PATH, "LANG": "C.UTF-8"},
            )
        assert proc.stdout is not None
        try:
            proc.wait(timeout=START_TIMEOUT)  # the shim's first process exits after its fork
            line = _read_line(proc.stdout.fileno(), START_TIMEOUT)
        finally:
            proc.stdout.close()
        msg = json.loads(line) if line else None
        if not msg:
            tail = b"".join(read_lines(d / "shim.log", tail=3)).decode(errors="replace").strip()
            raise RuntimeDriverError(f"starting task failed: the shim gave no answer ({tail or 'no log'})")
        if not msg.get("ok"):
            raise RuntimeDriverError(msg.get("error") or "starting task failed")
        # from the file the shim wrote before answering (the process may already have ended:
        # the caller learns that from poll())
        return self._to_handle(task_id, self._record(task_id, STATE) or msg)

    def _to_handle(self, task_id: str, state: Mapping[str, Any]) -> TaskHandle:
        return TaskHandle(
            task_id=task_id,
            pid=int(state["pid"]),
            pid_start=int(state["pid_start"] or 0),
            shim_pid=int(state["shim_pid"]),
            netns=spec.netns_name(task_id),
            netns_path=self.netns_path(task_id),
            started_at=str(state["started_at"]),
        )

    def _handle(self, task_id: str) -> TaskHandle | None:
        """The running task's handle, or None (not started, or ended)."""
        state = self._record(task_id, STATE)
        if not state or self._record(task_id, EXIT):
            return None
        if state.get("boot_id") != linux.boot_id():
            return None
        if linux.same_process(state["shim_pid"], state["shim_start"]) or linux.same_process(
            state["pid"], state["pid_start"]
        ):
            return self._to_handle(task_id, state)
        return None

    # ---- status
    def poll(self, task_id: str) -> ExitStatus | None:
        """The exit status once the task ended; None while it runs (or before it started)."""
        if not self.task_dir(task_id).is_dir():
            raise NoSuchTask(task_id)
        if self._record(task_id, EXIT) or (self._record(task_id, STATE) and self._handle(task_id) is None):
            return self._status_from(task_id)
        return None

    def _status_from(self, task_id: str) -> ExitStatus:
        rec = self._record(task_id, EXIT)
        if rec is None:
            # neither the shim nor the task is alive and nothing was recorded: the shim was
            # killed, or the node rebooted. Record that once, so every reader agrees.
            state = self._record(task_id, STATE) or {}
            rebooted = state.get("boot_id") != linux.boot_id()
            why = "the node restarted" if rebooted else "its supervisor was killed"
            rec = {
                "exit_code": 255,
                "signal": None,
                "oom_killed": False,
                "error": f"task: exit status lost ({why})",
                "finished_at": "",
            }
            with contextlib.suppress(OSError):
                linux.write_json(self.task_dir(task_id) / EXIT, rec)
        return ExitStatus(
            exit_code=int(rec["exit_code"]),
            signal=rec.get("signal"),
            oom_killed=bool(rec.get("oom_killed")),
            error=rec.get("error"),
            finished_at=rec.get("finished_at") or "",
        )

    def exit_fd(self, task_id: str) -> int | None:
        """A pidfd of the task's shim: readable once the task ended (for an event loop's
        add_reader). None if it is not running. The caller closes it."""
        state = self._record(task_id, STATE)
        if not state or not hasattr(os, "pidfd_open"):
            return None
        try:
            fd = os.pidfd_open(state["shim_pid"])
        except OSError:
            return None
        if not linux.same_process(state["shim_pid"], state["shim_start"]):  # checked after open: no race
            os.close(fd)
            return None
        return fd

    def wait(self, task_id: str, timeout: float | None = None) -> ExitStatus | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.poll(task_id)
            if status is not None:
                return status
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            fd = self.exit_fd(task_id)
            if fd is None:  # not started, or the shim is gone and the process runs on
                time.sleep(0.05 if left is None else min(0.05, left))
                continue
            try:
                _wait_readable(fd, left)
            finally:
                os.close(fd)

    # ---- signals
    def kill(self, task_id: str, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the task's main process (as `docker kill`)."""
        state = self._record(task_id, STATE)
        if state and linux.same_process(state["pid"], state["pid_start"]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(state["pid"], sig)

    def stop(self, task_id: str, grace: float | None = None) -> ExitStatus | None:
        """SIGTERM to the main process, SIGKILL to every task process after `grace` seconds
        (default: the spec's StopGracePeriod). Returns the exit status (None if never started)."""
        cfg = self._config(task_id)
        if self._handle(task_id) is None:
            return self.poll(task_id)
        self.kill(task_id, signal.SIGTERM)
        status = self.wait(task_id, cfg["stop_grace"] if grace is None else grace)
        if status is None:
            self._kill_all(task_id, cfg)
            status = self.wait(task_id, 10.0)
        return status

    def _kill_all(self, task_id: str, cfg: Mapping[str, Any], timeout: float = 5.0) -> set[int]:
        """SIGKILL every process of the task but its shim, until none is left; returns leftovers."""
        state = self._record(task_id, STATE) or {}
        shim = state.get("shim_pid") if linux.same_process(state.get("shim_pid", 0), state.get("shim_start")) else None
        ino = netns.inode(cfg["netns"], self.netns_dir)
        deadline = time.monotonic() + timeout
        while True:
            pids = linux.task_pids(ino, cfg.get("cgroups") or [], shim)
            if not pids or time.monotonic() > deadline:
                return pids
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    # ---- remove
    def remove(self, task_id: str) -> None:
        """Kill what is left and delete the namespace, cgroups and files (idempotent)."""
        with self._lock(task_id):
            cfg = self._record(task_id, CONFIG)
            self._cleanup(task_id, cfg)
        with self._locks_lock:
            self._locks.pop(task_id, None)

    def _cleanup(self, task_id: str, cfg: Mapping[str, Any] | None) -> None:
        d = self.task_dir(task_id)
        cfg = cfg or {"netns": spec.netns_name(task_id), "cgroups": self.cgroups.task_paths(task_id)}
        if self._record(task_id, STATE):
            self._kill_all(task_id, cfg)
            if self.wait(task_id, 5.0) is None:
                state = self._record(task_id, STATE) or {}
                if linux.same_process(state.get("shim_pid", 0), state.get("shim_start")):
                    os.kill(state["shim_pid"], signal.SIGKILL)  # a hung shim; its record is moot now
        left = self._kill_all(task_id, cfg)
        netns.remove(cfg["netns"], self.netns_dir)
        busy = cgroups.remove(cfg.get("cgroups") or [])
        if (d / "rootfs").is_dir() and os.path.ismount(d / "rootfs"):
            linux.umount(str(d / "rootfs"))  # never recurse into a mounted image
        shutil.rmtree(d, ignore_errors=True)
        if left or busy:
            raise RuntimeDriverError(f"task {task_id}: processes {sorted(left)} or cgroups {busy} would not go away")

    # ---- logs
    def logs(self, task_id: str, tail: int | None = None, follow: bool = False) -> Iterator[bytes]:
        """Lines of the task's stdout and stderr (each ending with b"\\n", but maybe the last);
        with follow, new lines until the task ended."""
        path = self.log_path(task_id)
        if not self.task_dir(task_id).is_dir():
            raise NoSuchTask(task_id)
        return read_lines(path, tail=tail, follow=follow, running=lambda: self._live(task_id))

    def _live(self, task_id: str) -> bool:
        try:
            return self.poll(task_id) is None and self.task_dir(task_id).is_dir()
        except NoSuchTask:
            return False

    # ---- listing and adoption
    def task_ids(self) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self.state_dir) if e.is_dir() and _TASK_ID.match(e.name))
        except FileNotFoundError:
            return []

    def list_running(self) -> list[TaskHandle]:
        return [h for t in self.task_ids() if (h := self._handle(t))]

    def adopt(self) -> list[TaskHandle]:
        """After an agent restart: the tasks that still run (identity checked by pid, start time
        and boot id; never restarted). Tasks that ended meanwhile get their status recorded."""
        running = []
        for task_id in self.task_ids():
            handle = self._handle(task_id)
            if handle:
                running.append(handle)
            elif self._record(task_id, STATE):
                self._status_from(task_id)
        return running

    # ---- for `shoal exec`
    def exec_argv(self, task_id: str, argv: list[str]) -> list[str]:
        """argv that runs a command inside the running task: its namespaces, root, working
        directory, user and environment (as `docker exec`)."""
        handle = self._handle(task_id)
        if handle is None:
            raise RuntimeDriverError(f"task {task_id} is not running")
        cfg = self._config(task_id)
        ids = ["-S", str(cfg["uid"]), "-G", str(cfg["gid"])]
        ns = ["nsenter", "-t", str(handle.pid), "-n", "-m", "-u", "-r", "-w", *ids, "--"]
        return [*ns, "env", "-i", *cfg["env"], *argv]

    def task_pids(self, task_id: str) -> set[int]:
        cfg = self._config(task_id)
        state = self._record(task_id, STATE) or {}
        ino = netns.inode(cfg["netns"], self.netns_dir)
        return linux.task_pids(ino, cfg.get("cgroups") or [], state.get("shim_pid"))


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _wait_readable(fd: int, timeout: float | None) -> bool:
    """poll(), not select(): an agent with many tasks has descriptors above FD_SETSIZE."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000))))


def _read_line(fd: int, timeout: float) -> bytes:
    """One line from fd, or what came before EOF or the timeout."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not _wait_readable(fd, left):
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0]
