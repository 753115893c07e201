"""The `oci` driver: every task an OCI container, created by runc (crun where the host's cgroups
allow) under conmon, as podman and CRI-O run them. No Python process per task: conmon (C, ~0.4 MB
PSS) is the task's monitor, outlives the agent, keeps its log and writes its exit code.

A task's bundle, STATE_DIR/<task-id>/:

    task.json      the Task as handed to prepare()
    config.json    the OCI runtime config (bundle.py)
    plan.json      what the driver needs later (stop signal and grace, netns); written last:
                   its presence means "prepared"
    hostname hosts resolv.conf   bound over the container's /etc files (rewrite in place)
    rootfs/        overlay mount: lower = the image's root filesystem, upper/ and work/ per task
    conmon.pid pid ctr.log exits/<task-id> oom conmon.log   written by conmon
    started.json   pids and start times once `runtime start` returned; start.err if it failed

Identity of a pid is trusted only with its start time and the boot id (pids are reused).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from shoal.errors import SpecError
from shoal.model import healthcheck
from shoal.model.pulloptions import public_task
from shoal.runtime import cgroups, linux, netns, secretfiles, spec, taskopts, templates
from shoal.runtime.base import (
    LOST_EXIT_CODE,
    ExitStatus,
    NoSuchTask,
    RuntimeDriverError,
    TaskHandle,
    TaskRejected,
    check_id,
)
from shoal.runtime.images import Image, ImageStore
from shoal.runtime.oci import bundle, conmon, execfifo
from shoal.runtime.oci import mounts as task_mounts
from shoal.runtime.oci.k8slog import Record, read_records
from shoal.runtime.volumes import VolumeStore

DEFAULT_STATE_DIR = Path("/var/lib/shoal/tasks")
DEFAULT_RUN_DIR = Path("/run/shoal")
HOST_BINDS_LABEL = "io.shoal.host-binds"
# an image without a root filesystem of its own sees the host's top-level directories read-only,
# but not these: kernel and runtime filesystems the container gets its own of, and /var and /home
# (the agent's state, certificates and users' files are none of a task's business; /root stays:
# a Python the agent runs from may live there, e.g. pyenv's)
HOST_TOP_LEVEL_SKIP = frozenset(
    {"proc", "sys", "dev", "run", "tmp", "boot", "lost+found", "mnt", "media", "srv", "var", "home"}
)
INIT_BINARIES = ("catatonit", "tini", "tini-static", "docker-init")
PLAN, STARTED, START_ERR = "plan.json", "started.json", "start.err"


def _which_init() -> str | None:
    for name in INIT_BINARIES:
        found = shutil.which(name) or next(
            (p for d in ("/usr/bin", "/usr/libexec/podman") if os.access(p := f"{d}/{name}", os.X_OK)), None
        )
        if found:
            return found
    return None


def task_registry_auth(task: Mapping[str, Any]) -> dict[str, Any] | None:
    """ContainerSpec.PullOptions.RegistryAuth (SwarmKit's place for what `--with-registry-auth`
    sends): base64url of a JSON AuthConfig, as the X-Registry-Auth header. None when absent or
    unreadable (the pull then goes without credentials and the registry says why)."""
    raw = str(((spec.container_spec(task).get("PullOptions") or {}).get("RegistryAuth")) or "").strip()
    if not raw:
        return None
    try:
        doc = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) and doc else None


def host_top_level_dirs(root: str = "/") -> tuple[str, ...]:
    out = []
    with contextlib.suppress(OSError):
        for entry in sorted(os.scandir(root), key=lambda e: e.name):
            if entry.name not in HOST_TOP_LEVEL_SKIP and entry.is_dir(follow_symlinks=False):
                out.append("/" + entry.name)
    return tuple(out)


def stop_signal(image_config: Mapping[str, Any], cspec: Mapping[str, Any]) -> int:
    """ContainerSpec.StopSignal, else the image's, else SIGTERM (names with or without SIG, or numbers)."""
    name = str(cspec.get("StopSignal") or image_config.get("StopSignal") or "SIGTERM").upper()
    if name.isdigit():
        return int(name)
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise SpecError(f"invalid stop signal {name!r}") from None


def host_skeleton(path: Path, root: str = "/") -> None:
    """The lower layer of an image without a root filesystem: empty, but with the host's
    top-level symlinks (Debian's merged /usr: /bin -> usr/bin), so host binds resolve."""
    path.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        for entry in os.scandir(root):
            if entry.is_symlink() and not os.path.lexists(path / entry.name):
                os.symlink(os.readlink(entry.path), path / entry.name)


class OCIDriver:
    name = "oci"

    def __init__(
        self,
        state_dir: Path | str = DEFAULT_STATE_DIR,
        images: ImageStore | None = None,
        run_dir: Path | str = DEFAULT_RUN_DIR,
        netns_dir: str = netns.NETNS_DIR,
        runtime: str | None = None,
        log_size_max: int = conmon.LOG_SIZE_MAX,
        cgroup_layout: cgroups.CgroupLayout | None = None,
        volumes: VolumeStore | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        # this node's `local` volumes; a volume is in use while a task bundle here names it
        self.volumes = volumes or VolumeStore(self.state_dir.parent / "volumes")
        self.volumes.users = lambda: task_mounts.volume_users(self.state_dir)
        self.images = images or ImageStore()
        self.run_dir = Path(run_dir)
        self.runtime_root = str(self.run_dir / "runc")
        self.sock_dir = self.run_dir / "conmon"
        self.netns_dir = netns_dir
        self.runtime = conmon.runtime_path(runtime)
        self.conmon = shutil.which("conmon") or "/usr/bin/conmon"
        self.log_size_max = log_size_max
        self.cgroups = cgroup_layout if cgroup_layout is not None else cgroups.detect()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._empty_lower = self.state_dir / ".empty-root"
        self.payloads = secretfiles.Payloads()  # secrets and configs of the assignments, in memory only

    def _lock(self, task_id: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(task_id, threading.Lock())

    # ---- paths
    def task_dir(self, task_id: str) -> Path:
        return self.state_dir / check_id(task_id)

    def paths(self, task_id: str) -> conmon.Paths:
        return conmon.Paths(self.task_dir(task_id), task_id, self.sock_dir)

    def netns_path(self, task_id: str) -> str:
        return netns.path_of(spec.netns_name(task_id), self.netns_dir)

    def secrets_dir(self, task_id: str) -> Path:
        return self.run_dir / "secrets" / check_id(task_id)  # a tmpfs while the task has files

    def hosts_path(self, task_id: str) -> Path:
        return self.task_dir(task_id) / "hosts"

    def log_path(self, task_id: str) -> Path:
        return self.paths(task_id).log

    def task_ids(self) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self.state_dir) if e.is_dir() and not e.name.startswith("."))
        except FileNotFoundError:
            return []

    def _read(self, task_id: str, name: str) -> dict[str, Any] | None:
        rec = linux.read_json(self.task_dir(task_id) / name)
        return rec if isinstance(rec, dict) else None

    # ---- prepare
    def prepare(self, task: Mapping[str, Any]) -> None:
        """Resolve the task against its image, write the bundle, make the network namespace and
        mount the overlay root (idempotent). Leaves nothing behind when it fails."""
        task_id = check_id(task.get("ID"))
        with self._lock(task_id):
            if self._read(task_id, PLAN):
                return
            image = self._image(task)
            # once: the binds in config.json and the files on the tmpfs come from the same payloads
            files = secretfiles.files_for(task, self.payloads)
            plan, extra = self.resolve(task, image, files)
            self._materialise(task, plan, extra, image, files)

    def _image(self, task: Mapping[str, Any]) -> Image:
        ref = str(spec.container_spec(task).get("Image") or "")
        ensure = getattr(self.images, "ensure", None)
        if ensure is not None:  # a store that pulls (registry auth travels with the task)
            return ensure(ref, registry_auth=task_registry_auth(task))
        return self.images.get(ref.split("@", 1)[0] or "<none>")

    def resolve(
        self, task: Mapping[str, Any], image: Image, files: list[secretfiles.TaskFile] | None = None
    ) -> tuple[bundle.Plan, dict[str, Any]]:
        """The bundle's plan and the driver's own record, computed before anything is created.
        `files`: the task's secret and config files (runtime/secretfiles.py), in memory only."""
        if files is None:
            files = secretfiles.files_for(task, self.payloads)
        task = templates.expanded(task)  # Hostname and Env placeholders ({{.Task.Slot}}, ...)
        task_id = str(task["ID"])
        cspec = spec.container_spec(task)
        cfg = image.config or {}
        root = image.rootfs or Path("/")
        user = spec.resolve_user(
            str(cspec.get("User") or cfg.get("User") or ""), _read(root / "etc/passwd"), _read(root / "etc/group")
        )
        hostname = spec.hostname_for(task)
        env = spec.merge_env(cfg.get("Env") or [], [str(e) for e in cspec.get("Env") or []])
        labels = cfg.get("Labels") or {}
        if HOST_BINDS_LABEL in labels:
            binds = tuple(p.strip() for p in str(labels[HOST_BINDS_LABEL]).split(",") if p.strip())
        elif image.rootfs is None:
            binds = host_top_level_dirs()
        else:
            binds = ()
        for path in binds:
            if not path.startswith("/"):
                raise RuntimeDriverError(f"image label {HOST_BINDS_LABEL}: {path!r} is not an absolute path")
        init = None
        if cspec.get("Init"):
            init = _which_init()
            if init is None:
                raise TaskRejected("Init was asked for, but no init binary (catatonit or tini) is installed")
        cgroups.check(self.cgroups, spec.limits_for(task))  # refused with the reason, never unlimited
        resources = bundle.resources_for(task)
        plan = bundle.Plan(
            task_id=task_id,
            argv=spec.resolve_argv(cfg, cspec),
            env=spec.final_env(env, hostname, user.home),
            cwd=spec.working_dir(cfg, cspec),
            uid=user.uid,
            gid=user.gid,
            groups=tuple(user.groups),
            hostname=hostname,
            netns_path=self.netns_path(task_id),
            task_dir=str(self.task_dir(task_id)),
            readonly=bool(cspec.get("ReadOnly")),
            caps=tuple(bundle.capabilities(cspec.get("CapabilityAdd") or (), cspec.get("CapabilityDrop") or ())),
            init=init,
            host_binds=binds,
            cgroups_path=f"/shoal/{task_id}",
            resources=resources,
            sysctl=taskopts.sysctl(cspec),
            rlimits=tuple(taskopts.rlimits(cspec)),
            file_binds=secretfiles.bindings(files, self.secrets_dir(task_id)),
        )
        extra = {
            "stop_signal": stop_signal(cfg, cspec),
            "stop_grace": spec.stop_grace(cspec),
            "netns": spec.netns_name(task_id),
            "image": image.repo_tags[0] if image.repo_tags else image.id,
            "lower": str(image.rootfs) if image.rootfs else str(self._empty_lower),
            "healthcheck": healthcheck.effective(cspec.get("HealthCheck"), cfg.get("Healthcheck")),
        }
        return plan, extra

    def _materialise(
        self,
        task: Mapping[str, Any],
        plan: bundle.Plan,
        extra: dict[str, Any],
        image: Image,
        files: list[secretfiles.TaskFile],
    ) -> None:
        d = self.task_dir(plan.task_id)
        try:
            d.mkdir(parents=True, exist_ok=True)
            _dump(d / "task.json", public_task(task))  # no registry credentials on disk
            (d / "hostname").write_text(plan.hostname + "\n")
            cspec = spec.container_spec(task)
            (d / "hosts").write_text(spec.hosts_file(plan.hostname) + taskopts.extra_hosts(cspec))
            (d / "resolv.conf").write_text(taskopts.resolv_conf(cspec))
            for sub in ("rootfs", "upper", "work"):
                (d / sub).mkdir(exist_ok=True)
            if image.rootfs is None:
                host_skeleton(self._empty_lower)
            self._mount_root(d, extra["lower"])
            user_mounts = task_mounts.prepare(task, image.rootfs, self.volumes)  # after task.json: in use
            secretfiles.materialise(self.secrets_dir(plan.task_id), files)
            _dump(d / "config.json", bundle.config(dataclasses.replace(plan, user_mounts=tuple(user_mounts))))
            try:
                netns.create(extra["netns"], self.netns_dir)
            except OSError as exc:
                raise RuntimeDriverError(str(exc)) from None
            linux.write_json(d / PLAN, extra)  # last: its presence means "prepared"
        except BaseException:
            self._cleanup(plan.task_id)
            raise

    @staticmethod
    def _mount_root(d: Path, lower: str) -> None:
        if os.path.ismount(d / "rootfs"):
            return
        opts = f"lowerdir={lower},upperdir={d / 'upper'},workdir={d / 'work'}"
        try:
            linux.mount("overlay", str(d / "rootfs"), "overlay", 0, opts)
        except OSError as exc:
            raise RuntimeDriverError(f"mounting the task's root filesystem (overlay): {exc}") from None

    # ---- start
    def start(self, task: Mapping[str, Any]) -> TaskHandle:
        """conmon runs `<runtime> create`, then the driver starts it as `<runtime> start` would: one
        runc process per task (two with another runtime).
        A task that started once is never started again."""
        task_id = check_id(task.get("ID"))
        self.prepare(task)
        with self._lock(task_id):
            started = self._read(task_id, STARTED)
            if started:
                return self._to_handle(task_id, started)
            err = self._read(task_id, START_ERR)
            if err:
                raise RuntimeDriverError(err["error"])
            recovered = self._recover(task_id)
            if recovered:
                return self._to_handle(task_id, recovered)
            return self._start(task_id)

    def _recover(self, task_id: str) -> dict[str, Any] | None:
        """A start the agent did not see through (killed between conmon's create and its own
        record): the container exists if conmon's pidfile and `runtime state` say so; finish the
        start and write the record instead of creating it twice."""
        paths = self.paths(task_id)
        if self._read(task_id, STARTED) or self._read(task_id, START_ERR) or not paths.conmon_pidfile.exists():
            return None
        state = self.runtime_state(task_id)
        if not state or state.get("status") not in ("created", "running", "stopped"):
            return None
        if state["status"] == "created":
            self._runtime("start", task_id, check=False)
        pid = int(state.get("pid") or 0) or conmon.read_pid(paths.pidfile) or 0
        conmon_pid = conmon.read_pid(paths.conmon_pidfile) or 0
        record = {
            "pid": pid,
            "pid_start": linux.start_time(pid) if pid else None,
            "conmon_pid": conmon_pid,
            "conmon_start": linux.start_time(conmon_pid) if conmon_pid else None,
            "boot_id": linux.boot_id(),
            "started_at": str(state.get("created") or _now()),
        }
        linux.write_json(paths.bundle / STARTED, record)
        return record

    def _start(self, task_id: str) -> TaskHandle:
        paths = self.paths(task_id)
        argv = conmon.conmon_argv(self.conmon, self.runtime, self.runtime_root, paths, self.log_size_max)
        try:
            pid = conmon.start(argv, paths)
            self._start_created(task_id, pid)
        except (conmon.ConmonError, execfifo.StartError, subprocess.SubprocessError, OSError) as exc:
            message = f"starting container failed: {_clean(str(exc))}"
            linux.write_json(paths.bundle / START_ERR, {"error": message, "finished_at": _now()})
            with contextlib.suppress(Exception):
                self._runtime("delete", "-f", task_id)
            raise RuntimeDriverError(message) from None
        conmon_pid = conmon.read_pid(paths.conmon_pidfile) or 0
        state = {
            "pid": pid,
            "pid_start": linux.start_time(pid) or 0,
            "conmon_pid": conmon_pid,
            "conmon_start": linux.start_time(conmon_pid) if conmon_pid else None,
            "boot_id": linux.boot_id(),
            "started_at": _now(),
        }
        linux.write_json(paths.bundle / STARTED, state)
        return self._to_handle(task_id, state)

    def _start_created(self, task_id: str, pid: int) -> None:
        """runc: what `runc start` does (execfifo.py), without a second runc process per task;
        another runtime (crun): `<runtime> start`."""
        fifo = execfifo.fifo_path(self.runtime_root, task_id)
        if os.path.basename(self.runtime) == "runc" and fifo.exists():
            execfifo.start(fifo, pid)
        else:
            self._runtime("start", task_id)

    def _runtime(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        res = subprocess.run(
            [self.runtime, f"--root={self.runtime_root}", *args],
            capture_output=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        if check and res.returncode != 0:
            raise conmon.ConmonError(_clean(res.stderr.decode(errors="replace")) or f"{args[0]} failed")
        return res

    def _to_handle(self, task_id: str, state: Mapping[str, Any]) -> TaskHandle:
        return TaskHandle(
            task_id=task_id,
            pid=int(state["pid"]),
            pid_start=int(state.get("pid_start") or 0),
            shim_pid=int(state.get("conmon_pid") or 0),
            netns=spec.netns_name(task_id),
            netns_path=self.netns_path(task_id),
            started_at=str(state["started_at"]),
        )

    # ---- status
    def _live_conmon(self, task_id: str, state: Mapping[str, Any] | None = None) -> int | None:
        state = state if state is not None else self._read(task_id, STARTED) or {}
        pid = int(state.get("conmon_pid") or 0)
        if pid and state.get("boot_id") == linux.boot_id() and linux.same_process(pid, state.get("conmon_start")):
            return pid
        return None

    def _live_task(self, state: Mapping[str, Any]) -> bool:
        pid = int(state.get("pid") or 0)
        return bool(pid) and state.get("boot_id") == linux.boot_id() and linux.same_process(pid, state.get("pid_start"))

    def poll(self, task_id: str) -> ExitStatus | None:
        """The exit status once the task ended (conmon's exit file); None while it runs or before
        it started. With neither conmon nor the task alive and no exit file, the status is lost."""
        d = self.task_dir(task_id)
        if not d.is_dir():
            raise NoSuchTask(task_id)
        err = self._read(task_id, START_ERR)
        if err:
            return ExitStatus(exit_code=127, error=err["error"], finished_at=err.get("finished_at", ""))
        state = self._read(task_id, STARTED)
        if not state:
            return None
        paths = self.paths(task_id)
        code = conmon.read_exit(paths)
        if code is None:
            if self._live_conmon(task_id, state) or self._live_task(state):
                return None
            code = conmon.read_exit(paths)  # conmon may have written it and exited since
            if code is None:
                return self._lost(task_id, state)
        return ExitStatus(
            exit_code=code,
            signal=conmon.signal_of(code),
            oom_killed=paths.oom_file.exists(),
            finished_at=_mtime(paths.exit_file),
        )

    def _lost(self, task_id: str, state: Mapping[str, Any]) -> ExitStatus:
        rebooted = state.get("boot_id") != linux.boot_id()
        why = "the node restarted" if rebooted else "its monitor (conmon) was killed"
        return ExitStatus(exit_code=LOST_EXIT_CODE, error=f"task: exit status lost ({why})")

    def exit_fd(self, task_id: str) -> int | None:
        """A pidfd of the task's conmon, readable once conmon wrote the exit code and exited (for
        an event loop's add_reader); None if conmon is not running. The caller closes it."""
        pid = self._live_conmon(task_id)
        if not pid:
            return None
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return None
        if self._live_conmon(task_id) != pid:  # checked after the open: no pid-reuse race
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
            if fd is None:  # not started yet, or a task without its conmon
                time.sleep(0.05 if left is None else min(0.05, left))
                continue
            try:
                _wait_readable(fd, left)
            finally:
                os.close(fd)

    # ---- signals
    def kill(self, task_id: str, sig: int = signal.SIGKILL) -> None:
        """`runtime kill` to the task's init process (as `docker kill`); a task that is not
        running is left alone."""
        if not self.task_dir(task_id).is_dir():
            raise NoSuchTask(task_id)
        if self.poll(task_id) is not None or not self._read(task_id, STARTED):
            return
        self._runtime("kill", task_id, str(int(sig)), check=False)

    def stop(self, task_id: str, grace: float | None = None) -> ExitStatus | None:
        """The stop signal (StopSignal or SIGTERM), then SIGKILL after `grace` seconds (default:
        StopGracePeriod). In its own PID namespace, the init's death ends every task process."""
        plan = self._read(task_id, PLAN)
        if plan is None:
            if self.task_dir(task_id).is_dir():
                return None
            raise NoSuchTask(task_id)
        if not self._read(task_id, STARTED):
            return self.poll(task_id)
        if self.poll(task_id) is None:
            self.kill(task_id, int(plan.get("stop_signal") or signal.SIGTERM))
        status = self.wait(task_id, plan["stop_grace"] if grace is None else grace)
        if status is None:
            self.kill(task_id, signal.SIGKILL)
            status = self.wait(task_id, 10.0)
        return status

    # ---- remove
    def remove(self, task_id: str) -> None:
        with self._lock(task_id):
            self._cleanup(task_id)
        with self._locks_lock:
            self._locks.pop(task_id, None)

    def _cleanup(self, task_id: str) -> None:
        d = self.task_dir(task_id)
        state = self._read(task_id, STARTED)
        if state and self.poll(task_id) is None:
            self._runtime("kill", task_id, "KILL", check=False)
            self.wait(task_id, 5.0)
        if state:
            self._reap_conmon(task_id, state)
        left = ""
        if state or (d / "config.json").exists():
            res = self._runtime("delete", "-f", task_id, check=False)
            err = res.stderr.decode(errors="replace")
            if res.returncode != 0 and "does not exist" not in err:
                left = _clean(err)
        with contextlib.suppress(OSError):
            (self.sock_dir / task_id).unlink()
        netns.remove(spec.netns_name(task_id), self.netns_dir)
        if os.path.ismount(d / "rootfs"):
            linux.umount(str(d / "rootfs"))  # never let rmtree recurse into a mounted image
        if os.path.ismount(d / "rootfs"):
            raise RuntimeDriverError(f"task {task_id}: its root filesystem would not unmount")
        task = linux.read_json(d / "task.json")
        secretfiles.release(self.secrets_dir(task_id))
        shutil.rmtree(d, ignore_errors=True)
        if isinstance(task, dict):
            self.volumes.remove_anonymous(task_mounts.anonymous_volumes(task))
            self.volumes.release(v.name for v in task_mounts.task_volumes(task))
        if left:
            raise RuntimeDriverError(f"task {task_id}: {left}")

    def _reap_conmon(self, task_id: str, state: Mapping[str, Any], timeout: float = 5.0) -> None:
        """conmon exits right after it wrote the exit file (and flushed the log): wait for that,
        so that no monitor outlives its task's removal; SIGKILL a hung one."""
        fd = self.exit_fd(task_id)
        if fd is None:
            return
        try:
            if not _wait_readable(fd, timeout):
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
                _wait_readable(fd, 2.0)
        finally:
            os.close(fd)

    # ---- logs
    def log_records(
        self, task_id: str, tail: int | None = None, follow: bool = False, since: float | None = None
    ) -> Iterator[Record]:
        if not self.task_dir(task_id).is_dir():
            raise NoSuchTask(task_id)
        return read_records(
            self.log_path(task_id), tail=tail, follow=follow, running=lambda: self._live(task_id), since=since
        )

    def logs(self, task_id: str, tail: int | None = None, follow: bool = False) -> Iterator[bytes]:
        """The task's output lines, stdout and stderr interleaved as written."""
        return (r.data for r in self.log_records(task_id, tail=tail, follow=follow))

    def _live(self, task_id: str) -> bool:
        try:
            return self.poll(task_id) is None
        except NoSuchTask:
            return False

    # ---- listing and adoption
    def handle(self, task_id: str) -> TaskHandle | None:
        state = self._read(task_id, STARTED)
        if not state or self.poll(task_id) is not None:
            return None
        return self._to_handle(task_id, state)

    def list_running(self) -> list[TaskHandle]:
        return [h for t in self.task_ids() if (h := self.handle(t))]

    def adopt(self) -> list[TaskHandle]:
        """After an agent restart: every bundle whose conmon (pidfile, start time, boot id) or
        container still lives is running; the others ended while the agent was away and their
        exit codes are in conmon's exit files. A bundle without the agent's start record is
        recovered from conmon's pidfile and `runtime state`."""
        for task_id in self.task_ids():
            if (self.task_dir(task_id) / PLAN).exists():
                with self._lock(task_id):
                    self._recover(task_id)
        return self.list_running()

    def runtime_state(self, task_id: str) -> dict[str, Any] | None:
        """`runtime state` of the container (status, pid), None if the runtime does not know it."""
        res = self._runtime("state", task_id, check=False)
        if res.returncode != 0:
            return None
        try:
            return json.loads(res.stdout)
        except ValueError:
            return None

    def task_pids(self, task_id: str) -> set[int]:
        """Every process of the task (its cgroup's members)."""
        return linux.cgroup_procs(self.cgroups.task_paths(task_id))

    # ---- for `shoal exec`
    def exec_command(
        self, task_id: str, argv: list[str], tty: bool = False, pid_file: str | None = None
    ) -> tuple[list[str], dict[str, str]]:
        """(argv, env) for the CLI to exec: `runtime exec` of the command in the running task, with
        the task's environment, user and working directory (runc takes them from the bundle).
        `pid_file`: where runc writes the exec'd process's pid (health probes kill it on timeout)."""
        if self.handle(task_id) is None:
            raise RuntimeDriverError(f"task {task_id} is not running")
        opts = [*(["--tty"] if tty else []), *(["--pid-file", pid_file] if pid_file else [])]
        cmd = [self.runtime, f"--root={self.runtime_root}", "exec", *opts, task_id, *argv]
        return cmd, {"PATH": spec.DEFAULT_PATH}

    def health_config(self, task_id: str) -> dict[str, Any] | None:
        """The task's effective health check (service over image, Docker's defaults), from its plan."""
        return (self._read(task_id, PLAN) or {}).get("healthcheck")


def _dump(path: Path, obj: Any) -> None:
    """Compact JSON through the C encoder, no fsync: files that prepare() writes again when it did
    not finish (plan.json, written last with fsync, says it did). ~1 ms less per task start."""
    with open(path, "w") as f:
        f.write(json.dumps(obj, separators=(",", ":")))


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def _mtime(path: Path) -> str:
    try:
        t = path.stat().st_mtime
    except OSError:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def _clean(text: str) -> str:
    """runc's logrus lines (`time=... level=error msg="..."`) down to their message."""
    text = text.strip()
    if 'msg="' in text:
        text = text.split('msg="', 1)[1].rsplit('"', 1)[0].replace('\\"', '"')
    return text


def _wait_readable(fd: int, timeout: float | None) -> bool:
    import select

    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000))))
