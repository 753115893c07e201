"""Which cgroup hierarchy the driver uses, and what it refuses."""

from __future__ import annotations

import pytest

from shoal.runtime.base import TaskRejected
from shoal.runtime.cgroups import CgroupLayout, check, parse_mounts, select
from shoal.runtime.spec import Limits

HYBRID = """tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""
COMOUNTED = """cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,cpu,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,memory 0 0
"""
UNIFIED = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0\n"


def test_hybrid_uses_v1_per_controller() -> None:
    layout = select(parse_mounts(HYBRID), {"/sys/fs/cgroup/unified": set()})
    assert layout.version == 1
    assert layout.mounts == {
        "memory": "/sys/fs/cgroup/memory",
        "cpu": "/sys/fs/cgroup/cpu",
        "pids": "/sys/fs/cgroup/pids",
    }
    assert layout.task_paths("t1") == [
        "/sys/fs/cgroup/cpu/shoal/t1",
        "/sys/fs/cgroup/memory/shoal/t1",
        "/sys/fs/cgroup/pids/shoal/t1",
    ]


def test_comounted_v1_controllers_share_one_group() -> None:
    layout = select(parse_mounts(COMOUNTED), {})
    assert layout.version == 1 and "pids" not in layout.mounts
    assert layout.task_paths("t1") == ["/sys/fs/cgroup/cpu,cpuacct/shoal/t1", "/sys/fs/cgroup/memory/shoal/t1"]


def test_unified_v2_preferred_where_mounted() -> None:
    layout = select(parse_mounts(UNIFIED), {"/sys/fs/cgroup": {"cpuset", "cpu", "io", "memory", "pids"}})
    assert layout.version == 2
    assert layout.task_paths("t1") == ["/sys/fs/cgroup/shoal/t1"]
    # v2 without the memory controller delegated: a memory limit cannot be applied
    partial = select(parse_mounts(UNIFIED), {"/sys/fs/cgroup": {"cpu", "pids"}})
    with pytest.raises(TaskRejected, match="memory limit"):
        check(partial, Limits(memory_bytes=64 << 20))
    check(partial, Limits(nano_cpus=1_000_000_000))


def test_hybrid_with_controllers_on_the_unified_hierarchy() -> None:
    text = "cgroup /sys/fs/cgroup/systemd cgroup rw,name=systemd 0 0\n"
    text += "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n"
    layout = select(parse_mounts(text), {"/sys/fs/cgroup/unified": {"memory", "cpu"}})
    assert layout.version == 2 and layout.mounts["memory"] == "/sys/fs/cgroup/unified"


def test_no_cgroups_rejects_limits_but_not_plain_tasks() -> None:
    layout = select(parse_mounts("proc /proc proc rw 0 0\n"), {})
    assert layout == CgroupLayout(0, {}) and layout.task_paths("t1") == []
    check(layout, Limits())
    with pytest.raises(TaskRejected) as err:
        check(layout, Limits(nano_cpus=1, memory_bytes=8 << 20))
    assert "the memory limit and the cpu limit" in err.value.message
    assert "neither cgroup v2 nor v1" in err.value.message
