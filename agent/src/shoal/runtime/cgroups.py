"""Per-task cgroups: `shoal/<task-id>` under the cgroup v2 root where v2 is the unified mode,
else under each cgroup v1 controller hierarchy (memory, cpu, pids).

runc makes the groups from config.json's cgroupsPath (bundle.py) and `runc delete` removes them;
this module finds the hierarchies, so that the driver can list a task's processes and refuse
limits that cannot be applied (never silently unlimited). Groups sit at the root of each
hierarchy (as Docker's cgroupfs driver puts `/docker/<id>`), not below the agent's own group, so
that they outlive the agent's session and its cgroup.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from shoal.runtime.base import TaskRejected
from shoal.runtime.spec import Limits

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
