"""Per-task cgroups: `shoal/<task-id>` under the cgroup v2 root where v2 is the unified mode,
else under each cgroup v1 controller hierarchy (memory, cpu, pids).

Groups sit at the root of each hierarchy (as Docker's cgroupfs driver puts `/docker/<id>`), not
below the agent's own group, so that they outlive the agent's session and its cgroup.
Limits that were asked for and cannot be applied reject the task: never silently unlimited.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from shoal.runtime.base import TaskRejected
from shoal.runtime.linux import cgroup_oom_killed, cgroup_procs
from shoal.runtime.spec import CPU_PERIOD_US, Limits

CGROUP_ROOT = "/sys/fs/cgroup"
PARENT = "shoal"
WANTED = ("memory", "cpu", "pids")  # memory and cpu for limits, pids to find every task process
V1_CONTROLLERS = frozenset(
    {
        *("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls"),
        *("blkio", "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc"),
    }
)


@dataclass(frozen=True)
class Mount:
    point: str
    fstype: str
    options: frozenset[str]


@dataclass(frozen=True)
class CgroupLayout:
    version: int  # 2, 1, or 0 when no usable cgroup hierarchy is mounted
    # controller -> hierarchy mount point; with v2 every controller maps to the unified mount
    mounts: dict[str, str] = field(default_factory=dict)

    @property
    def controllers(self) -> frozenset[str]:
        return frozenset(self.mounts)

    def task_paths(self, task_id: str) -> list[str]:
        """One directory per hierarchy (v1 co-mounted controllers share one)."""
        points = sorted({self.mounts[c] for c in WANTED if c in self.mounts})
        return [os.path.join(p, PARENT, task_id) for p in points]

    def missing_for(self, limits: Limits) -> list[str]:
        need = (["memory"] if limits.memory_bytes else []) + (["cpu"] if limits.nano_cpus else [])
        return [c for c in need if c not in self.mounts]


def parse_mounts(text: str) -> list[Mount]:
    """/proc/self/mounts lines (spaces in paths are escaped as \\040)."""
    mounts = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
            point = parts[1].replace("\\040", " ")
            mounts.append(Mount(point=point, fstype=parts[2], options=frozenset(parts[3].split(","))))
    return mounts


def select(mounts: list[Mount], v2_controllers: dict[str, set[str]], root: str = CGROUP_ROOT) -> CgroupLayout:
    """Choose the hierarchy (pure). `v2_controllers` maps a cgroup2 mount point to the names in
    its cgroup.controllers. v2 when it is the unified mode (mounted at `root`) or holds the
    controllers we want; v1 when the controllers are bound to v1 hierarchies (hybrid mode)."""
    v2 = [m for m in mounts if m.fstype == "cgroup2"]
    unified = next((m for m in v2 if m.point == root), None)
    if unified is not None:
        have = v2_controllers.get(unified.point, set())
        return CgroupLayout(2, {c: unified.point for c in WANTED if c in have})
    v1: dict[str, str] = {}
    for m in mounts:
        if m.fstype == "cgroup":
            for ctrl in m.options & V1_CONTROLLERS:
                v1.setdefault(ctrl, m.point)
    wanted_v1 = {c: v1[c] for c in WANTED if c in v1}
    if wanted_v1:
        return CgroupLayout(1, wanted_v1)
    for m in v2:  # hybrid mode with the controllers moved to the unified hierarchy
        have = v2_controllers.get(m.point, set())
        if have & set(WANTED):
            return CgroupLayout(2, {c: m.point for c in WANTED if c in have})
    return CgroupLayout(0, {})


def detect() -> CgroupLayout:
    try:
        mounts = parse_mounts(Path("/proc/self/mounts").read_text())
    except OSError:
        return CgroupLayout(0, {})
    v2: dict[str, set[str]] = {}
    for m in mounts:
        if m.fstype == "cgroup2":
            with contextlib.suppress(OSError):
                v2[m.point] = set(Path(m.point, "cgroup.controllers").read_text().split())
    return select(mounts, v2)


def check(layout: CgroupLayout, limits: Limits) -> None:
    missing = layout.missing_for(limits)
    if missing:
        what = " and ".join(f"the {c} limit" for c in missing)
        controllers = ", ".join(missing)
        raise TaskRejected(
            f"cannot apply {what}: no cgroup {controllers} controller is mounted (neither cgroup v2 nor v1)"
        )


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _enable_v2(mount: str, controllers: Iterable[str]) -> None:
    """v2 hands controllers down level by level: enable them at the root and in `shoal/`."""
    wanted = " ".join(f"+{c}" for c in controllers)
    for level in (mount, os.path.join(mount, PARENT)):
        os.makedirs(level, exist_ok=True)
        current = set(Path(level, "cgroup.subtree_control").read_text().split())
        if not set(controllers) <= current:
            _write(os.path.join(level, "cgroup.subtree_control"), wanted)


def _makedirs(path: str) -> None:
    # another task's remove() may rmdir the empty `shoal/` parent between our two mkdirs
    for attempt in range(3):
        try:
            os.makedirs(path, exist_ok=True)
            return
        except FileNotFoundError:
            if attempt == 2:
                raise


def create(layout: CgroupLayout, task_id: str, limits: Limits) -> list[str]:
    """Make the task's groups and apply its limits; returns their paths.

    Without limits a failure is not fatal (the driver still finds task processes through their
    network namespace); with limits it rejects the task with the reason."""
    check(layout, limits)
    paths = layout.task_paths(task_id)
    try:
        if layout.version == 2:
            _enable_v2(layout.mounts[next(iter(layout.mounts))], sorted(layout.controllers))
        for path in paths:
            _makedirs(path)
        _apply(layout, task_id, limits)
    except OSError as exc:
        remove(paths)
        if limits.any:
            raise TaskRejected(f"cannot apply resource limits: cgroup v{layout.version}: {exc}") from None
        return []
    return paths


def _apply(layout: CgroupLayout, task_id: str, limits: Limits) -> None:
    def at(ctrl: str, name: str) -> str:
        return os.path.join(layout.mounts[ctrl], PARENT, task_id, name)

    if layout.version == 2:
        if limits.memory_bytes:
            _write(at("memory", "memory.max"), str(limits.memory_bytes))
        if limits.nano_cpus:
            _write(at("cpu", "cpu.max"), f"{limits.cpu_quota_us} {CPU_PERIOD_US}")
    elif layout.version == 1:
        if limits.memory_bytes:
            _write(at("memory", "memory.limit_in_bytes"), str(limits.memory_bytes))
        if limits.nano_cpus:
            _write(at("cpu", "cpu.cfs_period_us"), str(CPU_PERIOD_US))
            _write(at("cpu", "cpu.cfs_quota_us"), str(limits.cpu_quota_us))


procs = cgroup_procs
oom_killed = cgroup_oom_killed


def remove(paths: Iterable[str], timeout: float = 2.0) -> list[str]:
    """rmdir each group (the kernel refuses while a process is still exiting: retry briefly),
    then the `shoal/` parent when it is empty. Returns what could not be removed."""
    left = []
    for path in paths:
        deadline = time.monotonic() + timeout
        while True:
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    left.append(path)
                    break
                time.sleep(0.01)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(path))  # busy or not empty while other tasks run: fine
    return left
