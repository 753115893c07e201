"""A task's on-disk record, STATE_DIR/<task-id>/, and what it says about the task.

    task.json      the Task as handed to prepare()
    config.json    what the shim runs (argv, env, cwd, user, hostname, rootfs, netns, cgroups);
                   its presence means "prepared"
    hostname hosts resolv.conf   bind-mounted over the task's /etc files (rewrite them in
                   place, never by rename: a bind mount pins the inode)
    state.json     written by the shim once the process runs: pids, start times, boot id
    exit.json      written by the shim when the process ended: exit code, signal, OOM
    output.log     the task's stdout and stderr;  shim.log  the shim's own messages
    rootfs/ upper/ work/   overlay mount point and layers (images with a root filesystem)

Only the shim writes state.json and exit.json while it lives, so a restarted agent reads
exactly what happened while it was away. A pid is trusted only together with its start time
and the boot id.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shoal.model.errors import SpecError
from shoal.runtime import linux, netns, spec
from shoal.runtime.base import ExitStatus, NoSuchTask, TaskHandle
from shoal.runtime.shim import CONFIG, EXIT, LOG, STATE

TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
LOST_EXIT_CODE = 255


def check_id(task_id: Any) -> str:
    if not isinstance(task_id, str) or not TASK_ID.match(task_id):
        raise SpecError(f"invalid task ID {task_id!r}")
    return task_id


class TaskRecords:
    def __init__(self, state_dir: Path, netns_dir: str) -> None:
        self.state_dir = state_dir
        self.netns_dir = netns_dir

    def dir(self, task_id: str) -> Path:
        return self.state_dir / check_id(task_id)

    def log(self, task_id: str) -> Path:
        return self.dir(task_id) / LOG

    def netns_path(self, task_id: str) -> str:
        return netns.path_of(spec.netns_name(task_id), self.netns_dir)

    def ids(self) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self.state_dir) if e.is_dir() and TASK_ID.match(e.name))
        except FileNotFoundError:
            return []

    def read(self, task_id: str, name: str) -> dict[str, Any] | None:
        rec = linux.read_json(self.dir(task_id) / name)
        return rec if isinstance(rec, dict) else None

    def config(self, task_id: str) -> dict[str, Any]:
        cfg = self.read(task_id, CONFIG)
        if cfg is None:
            raise NoSuchTask(task_id)
        return cfg

    def state(self, task_id: str) -> dict[str, Any] | None:
        return self.read(task_id, STATE)

    def to_handle(self, task_id: str, state: Mapping[str, Any]) -> TaskHandle:
        return TaskHandle(
            task_id=task_id,
            pid=int(state["pid"]),
            pid_start=int(state["pid_start"] or 0),
            shim_pid=int(state["shim_pid"]),
            netns=spec.netns_name(task_id),
            netns_path=self.netns_path(task_id),
            started_at=str(state["started_at"]),
        )

    def live_shim(self, task_id: str) -> int | None:
        state = self.state(task_id) or {}
        pid = int(state.get("shim_pid") or 0)
        return pid if pid and _same(state, "shim_pid", "shim_start") else None

    def handle(self, task_id: str) -> TaskHandle | None:
        """The running task's handle; None when it has not started or has ended."""
        state = self.state(task_id)
        if not state or self.read(task_id, EXIT):
            return None
        if _same(state, "shim_pid", "shim_start") or _same(state, "pid", "pid_start"):
            return self.to_handle(task_id, state)
        return None

    def status(self, task_id: str) -> ExitStatus | None:
        """The exit status once the task ended; None while it runs or before it started."""
        if not self.dir(task_id).is_dir():
            raise NoSuchTask(task_id)
        rec = self.read(task_id, EXIT)
        if rec is None:
            if not self.state(task_id) or self.handle(task_id) is not None:
                return None
            # read again: the shim may have written it and exited since the first look
            rec = self.read(task_id, EXIT) or self._record_lost(task_id)
        return ExitStatus(
            exit_code=int(rec["exit_code"]),
            signal=rec.get("signal"),
            oom_killed=bool(rec.get("oom_killed")),
            error=rec.get("error"),
            finished_at=rec.get("finished_at") or "",
        )

    def _record_lost(self, task_id: str) -> dict[str, Any]:
        """Neither shim nor task is alive and nothing was recorded: the shim was killed or the
        node restarted. Written once, so that every reader agrees."""
        rebooted = (self.state(task_id) or {}).get("boot_id") != linux.boot_id()
        why = "the node restarted" if rebooted else "its supervisor was killed"
        rec = {
            "exit_code": LOST_EXIT_CODE,
            "signal": None,
            "oom_killed": False,
            "error": f"task: exit status lost ({why})",
            "finished_at": "",
        }
        with contextlib.suppress(OSError):
            linux.write_json(self.dir(task_id) / EXIT, rec)
        return rec


def _same(state: Mapping[str, Any], pid_key: str, start_key: str) -> bool:
    if state.get("boot_id") != linux.boot_id():
        return False
    pid = int(state.get(pid_key) or 0)
    return pid > 0 and linux.same_process(pid, state.get(start_key))
