"""Which cgroup hierarchy the driver uses, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.runtime.base import TaskRejected
from shoal.runtime.cgroups import CgroupLayout, check, create, parse_mounts, remove, select
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


def test_create_writes_v1_limits_and_remove_cleans(tmp_path: Path) -> None:
    mounts = {c: str(tmp_path / c) for c in ("memory", "cpu", "pids")}
    layout = CgroupLayout(1, mounts)
    paths = create(layout, "t1", Limits(nano_cpus=1_500_000_000, memory_bytes=32 << 20))
    assert paths == [f"{tmp_path}/{c}/shoal/t1" for c in ("cpu", "memory", "pids")]
    assert (tmp_path / "memory/shoal/t1/memory.limit_in_bytes").read_text() == str(32 << 20)
    assert (tmp_path / "cpu/shoal/t1/cpu.cfs_quota_us").read_text() == "150000"
    assert (tmp_path / "cpu/shoal/t1/cpu.cfs_period_us").read_text() == "100000"
    for path in paths:  # a real cgroup directory has only kernel files: empty it as rmdir would
        for f in Path(path).iterdir():
            f.unlink()
    assert remove(paths) == []
    assert not (tmp_path / "memory/shoal").exists()  # the empty parent goes too


def test_create_v2_enables_controllers_level_by_level(tmp_path: Path) -> None:
    (tmp_path / "shoal").mkdir()
    for level in (tmp_path, tmp_path / "shoal"):
        (level / "cgroup.subtree_control").write_text("")
    layout = CgroupLayout(2, {c: str(tmp_path) for c in ("memory", "cpu", "pids")})
    assert create(layout, "t2", Limits(nano_cpus=250_000_000, memory_bytes=8 << 20)) == [f"{tmp_path}/shoal/t2"]
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (tmp_path / "shoal/t2/memory.max").read_text() == str(8 << 20)
    assert (tmp_path / "shoal/t2/cpu.max").read_text() == "25000 100000"


def test_create_failure_rejects_only_when_limits_were_asked(tmp_path: Path) -> None:
    blocker = tmp_path / "memory"
    blocker.write_text("not a directory")  # mkdir below it fails
    layout = CgroupLayout(1, {"memory": str(blocker)})
    assert create(layout, "t3", Limits()) == []  # no limits: the task runs without a group
    with pytest.raises(TaskRejected, match="cannot apply resource limits: cgroup v1"):
        create(layout, "t3", Limits(memory_bytes=8 << 20))
