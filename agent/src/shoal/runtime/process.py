"""The `process` driver: each task in its own network, mount and UTS namespaces and cgroup,
supervised by a per-task shim (shim.py) that outlives the agent. The on-disk layout of a
task is described in records.py.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from shoal.runtime import cgroups, linux, netns, spec
from shoal.runtime.base import ExitStatus, NoSuchTask, RuntimeDriverError, TaskHandle, TaskRejected
from shoal.runtime.images import ImageStore
from shoal.runtime.logfile import read_lines
from shoal.runtime.records import TaskRecords, check_id
from shoal.runtime.shim import CONFIG, EXIT
from shoal.runtime.spawn import spawn_shim, wait_readable

DEFAULT_STATE_DIR = Path("/var/lib/shoal/tasks")


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
        self.records = TaskRecords(self.state_dir, netns_dir)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def _lock(self, task_id: str) -> threading.Lock:
        """One lock per task: prepare/start/remove of a task are serialised, different tasks
        start in parallel (a start costs a Python start-up of the shim, ~30 ms)."""
        with self._locks_lock:
            return self._locks.setdefault(task_id, threading.Lock())

    # ---- paths for the networking code and the API
    def task_dir(self, task_id: str) -> Path:
        return self.records.dir(task_id)

    def netns_path(self, task_id: str) -> str:
        """The task's network namespace (`ip netns` name `task-<id[:12]>`); exists from prepare()."""
        return self.records.netns_path(task_id)

    def hosts_path(self, task_id: str) -> Path:
        """The task's /etc/hosts (rewrite in place, see records.py)."""
        return self.task_dir(task_id) / "hosts"

    def log_path(self, task_id: str) -> Path:
        return self.records.log(task_id)

    def task_ids(self) -> list[str]:
        return self.records.ids()

    # ---- prepare
    def prepare(self, task: Mapping[str, Any]) -> None:
        """Check the task and make its directory, network namespace and cgroups (idempotent).
        Raises SpecError (bad spec), NoSuchImage, TaskRejected or RuntimeDriverError, and then
        leaves nothing behind."""
        task_id = check_id(task.get("ID"))
        with self._lock(task_id):
            if self.records.read(task_id, CONFIG):
                return
            cfg = self._resolve(task)
            self._materialise(task, cfg)

    def _resolve(self, task: Mapping[str, Any]) -> dict[str, Any]:
        """Everything the shim needs, computed before anything is created."""
        cspec = spec.container_spec(task)
        oci_only = [k for k in ("Init", "ReadOnly", "CapabilityAdd", "CapabilityDrop") if cspec.get(k)]
        if oci_only:
            why = "not supported by the process task driver (use task_driver: oci)"
            raise TaskRejected(f"{', '.join(oci_only)}: {why}")
        limits = spec.limits_for(task)
        # the docker CLI may pin a digest (name@sha256:...): local images have none
        image = self.images.get(str(cspec.get("Image") or "").split("@", 1)[0] or "<none>")
        cgroups.check(self.cgroups, limits)
        # an image asking for the host's binaries (shoal/host) runs on the host's filesystem here
        rootfs = None if image.host_binds else image.rootfs
        root = rootfs or Path("/")
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
            "rootfs": str(rootfs) if rootfs else None,
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
        """Start the task (preparing it if needed). A task that started once is never started
        again: its handle is returned, and poll() tells whether it still runs."""
        task_id = check_id(task.get("ID"))
        self.prepare(task)
        with self._lock(task_id):
            state = self.records.state(task_id)
            if state:
                return self.records.to_handle(task_id, state)
            if self.records.read(task_id, EXIT):  # its start failed: say why again
                status = self.records.status(task_id)
                raise RuntimeDriverError(status.message if status else "starting task failed")
            msg = spawn_shim(self.task_dir(task_id))
            return self.records.to_handle(task_id, self.records.state(task_id) or msg)

    # ---- status
    def poll(self, task_id: str) -> ExitStatus | None:
        """The exit status once the task ended; None while it runs (or before it started)."""
        return self.records.status(task_id)

    def exit_fd(self, task_id: str) -> int | None:
        """A pidfd of the task's shim, readable once the task ended (for an event loop's
        add_reader); None if the shim is not running. The caller closes it."""
        shim = self.records.live_shim(task_id)
        if not shim:
            return None
        try:
            fd = os.pidfd_open(shim)
        except OSError:
            return None
        if self.records.live_shim(task_id) != shim:  # checked again after the open: no pid reuse race
            os.close(fd)
            return None
        return fd

    def wait(self, task_id: str, timeout: float | None = None) -> ExitStatus | None:
        """The exit status, waiting up to `timeout` seconds (None: forever) for the task to end."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.poll(task_id)
            if status is not None:
                return status
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            fd = self.exit_fd(task_id)
            if fd is None:  # not started, or the shim is gone and the process runs on unsupervised
                time.sleep(0.05 if left is None else min(0.05, left))
                continue
            try:
                wait_readable(fd, left)
            finally:
                os.close(fd)

    # ---- signals
    def kill(self, task_id: str, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the task's main process (as `docker kill`)."""
        handle = self.records.handle(task_id)
        if handle and linux.same_process(handle.pid, handle.pid_start):
            with contextlib.suppress(ProcessLookupError):
                os.kill(handle.pid, sig)

    def stop(self, task_id: str, grace: float | None = None) -> ExitStatus | None:
        """SIGTERM to the main process, SIGKILL to every task process after `grace` seconds
        (default: the spec's StopGracePeriod). Returns the exit status (None if never started)."""
        cfg = self.records.config(task_id)
        if self.records.handle(task_id) is None:
            return self.poll(task_id)
        self.kill(task_id, signal.SIGTERM)
        status = self.wait(task_id, cfg["stop_grace"] if grace is None else grace)
        if status is None:
            self._kill_all(task_id, cfg)
            status = self.wait(task_id, 10.0)
        return status

    def task_pids(self, task_id: str) -> set[int]:
        """Every process of the task (not its shim)."""
        cfg = self.records.config(task_id)
        ino = netns.inode(cfg["netns"], self.netns_dir)
        return linux.task_pids(ino, cfg.get("cgroups") or [], self.records.live_shim(task_id))

    def _kill_all(self, task_id: str, cfg: Mapping[str, Any], timeout: float = 5.0) -> set[int]:
        """SIGKILL every process of the task but its shim until none is left; returns leftovers."""
        shim = self.records.live_shim(task_id)
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
            self._cleanup(task_id, self.records.read(task_id, CONFIG))
        with self._locks_lock:
            self._locks.pop(task_id, None)

    def _cleanup(self, task_id: str, cfg: Mapping[str, Any] | None) -> None:
        d = self.task_dir(task_id)
        cfg = cfg or {"netns": spec.netns_name(task_id), "cgroups": self.cgroups.task_paths(task_id)}
        if self.records.state(task_id):
            self._kill_all(task_id, cfg)
            if self.wait(task_id, 5.0) is None:  # the shim records the end, then exits
                shim = self.records.live_shim(task_id)
                if shim:
                    os.kill(shim, signal.SIGKILL)  # a hung shim: its record is moot now
        left = self._kill_all(task_id, cfg)
        netns.remove(cfg["netns"], self.netns_dir)
        busy = cgroups.remove(cfg.get("cgroups") or [])
        if os.path.ismount(d / "rootfs"):
            linux.umount(str(d / "rootfs"))  # never let rmtree recurse into a mounted image
        shutil.rmtree(d, ignore_errors=True)
        if left or busy:
            raise RuntimeDriverError(f"task {task_id}: processes {sorted(left)} or cgroups {busy} would not go away")

    # ---- logs
    def logs(self, task_id: str, tail: int | None = None, follow: bool = False) -> Iterator[bytes]:
        """Lines of the task's stdout and stderr, interleaved as written (each ends with
        b"\\n" but maybe the last); with follow, new lines until the task ended."""
        if not self.task_dir(task_id).is_dir():
            raise NoSuchTask(task_id)
        return read_lines(self.log_path(task_id), tail=tail, follow=follow, running=lambda: self._live(task_id))

    def _live(self, task_id: str) -> bool:
        try:
            return self.poll(task_id) is None
        except NoSuchTask:
            return False

    # ---- listing and adoption
    def list_running(self) -> list[TaskHandle]:
        return [h for t in self.task_ids() if (h := self.records.handle(t))]

    def adopt(self) -> list[TaskHandle]:
        """After an agent restart: the tasks that still run (identity checked by pid, start time
        and boot id; never restarted). Tasks that ended meanwhile get their status recorded."""
        running = []
        for task_id in self.task_ids():
            handle = self.records.handle(task_id)
            if handle:
                running.append(handle)
            elif self.records.state(task_id):
                self.records.status(task_id)  # records a lost status if nobody did
        return running

    # ---- for `shoal exec`
    def exec_command(self, task_id: str, argv: list[str]) -> tuple[list[str], dict[str, str]]:
        """(argv, env) that run a command inside the running task, as `docker exec`: its
        namespaces, root, working directory and user; run it with exactly `env` (the task's)."""
        handle = self.records.handle(task_id)
        if handle is None:
            raise RuntimeDriverError(f"task {task_id} is not running")
        cfg = self.records.config(task_id)
        ids = ["-S", str(cfg["uid"]), "-G", str(cfg["gid"])]
        # an absolute path: the task's PATH (used to find the command) may not hold nsenter
        tool = shutil.which("nsenter") or "/usr/bin/nsenter"
        nsenter = [tool, "-t", str(handle.pid), "-n", "-m", "-u", "-r", "-w", *ids, "--", *argv]
        return nsenter, dict(e.split("=", 1) for e in cfg["env"])


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
