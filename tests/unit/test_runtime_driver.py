"""The process driver's pure parts: it satisfies the Driver protocol, refuses bad input before
touching the system, and reads task records (no namespaces are made here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal.model.errors import SpecError
from shoal.runtime import Driver, NoSuchImage, NoSuchTask, ProcessDriver, TaskRejected
from shoal.runtime.cgroups import CgroupLayout
from shoal.runtime.images import ImageStore
from shoal.runtime.linux import write_json


@pytest.fixture
def driver(tmp_path: Path) -> ProcessDriver:
    return ProcessDriver(tmp_path / "tasks", images=ImageStore(tmp_path / "images"), cgroup_layout=CgroupLayout(0))


def task(image: str = "shoal/host", **limits: int) -> dict:
    spec: dict = {"ContainerSpec": {"Image": image, "Args": ["true"]}}
    if limits:
        spec["Resources"] = {"Limits": limits}
    return {"ID": "abcdefghijklmnopqrstuvwxy", "Spec": spec}


def test_is_a_driver(driver: ProcessDriver) -> None:
    assert isinstance(driver, Driver) and driver.name == "process"


def test_rejections_happen_before_any_side_effect(driver: ProcessDriver) -> None:
    with pytest.raises(NoSuchImage, match="No such image: nosuch:1"):
        driver.prepare(task("nosuch:1"))
    with pytest.raises(SpecError, match="4MB"):
        driver.prepare(task(MemoryBytes=1024))
    with pytest.raises(TaskRejected, match="neither cgroup v2 nor v1"):  # limits without cgroups
        driver.prepare(task(MemoryBytes=64 << 20))
    with pytest.raises(SpecError, match="invalid task ID"):
        driver.prepare({"ID": "../etc", "Spec": {}})
    assert not driver.state_dir.exists() and driver.task_ids() == []


def test_status_from_records(driver: ProcessDriver) -> None:
    with pytest.raises(NoSuchTask, match="No such task: t1"):
        driver.poll("t1")
    d = driver.task_dir("t1")
    d.mkdir(parents=True)
    assert driver.poll("t1") is None  # prepared, never started
    write_json(d / "exit.json", {"exit_code": 137, "signal": 9, "oom_killed": True, "error": None})
    status = driver.poll("t1")
    assert status is not None and status.exit_code == 137 and status.oom_killed
    assert status.message == "task: non-zero exit (137)"


def test_lost_status_is_recorded_once(driver: ProcessDriver) -> None:
    d = driver.task_dir("t2")
    d.mkdir(parents=True)
    # a shim and task that no longer exist (pid 0 never matches a live process)
    write_json(d / "state.json", {"pid": 0, "pid_start": 1, "shim_pid": 0, "shim_start": 1, "boot_id": "other"})
    status = driver.poll("t2")
    assert status is not None and status.exit_code == 255 and "node restarted" in status.message
    assert (d / "exit.json").exists() and driver.list_running() == [] and driver.adopt() == []
