"""How many times a task start runs the OCI runtime (bench/converge.py's CPU figure rests on it):
conmon runs `runtime create`; with runc the driver then opens the exec FIFO as `runc start` would
(no second runc), with another runtime it runs `runtime start`; nothing else, and a task started
once is never started again."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from shoal.runtime.cgroups import CgroupLayout
from shoal.runtime.images import ImageStore
from shoal.runtime.oci import conmon, execfifo
from shoal.runtime.oci import driver as oci_driver
from shoal.runtime.oci.driver import OCIDriver

TASK_ID = "abcdefghijklmnopqrstuvwxy"
V1 = CgroupLayout(1, {"memory": "/sys/fs/cgroup/memory"})


@pytest.mark.parametrize("runtime", ["/usr/sbin/runc", "/usr/bin/crun"])
def test_a_start_runs_runc_once_and_another_runtime_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runtime: str
) -> None:
    driver = OCIDriver(
        tmp_path / "tasks", images=ImageStore(tmp_path / "img"), run_dir=tmp_path / "run", cgroup_layout=V1
    )
    runtime_calls: list[tuple[str, ...]] = []
    conmon_runs: list[list[str]] = []

    def fake_conmon(argv: list[str], paths: conmon.Paths, timeout: float = 0) -> int:
        """`runtime create`: the container's init waits on the exec FIFO (runc's; crun's own way)."""
        conmon_runs.append(list(argv))
        paths.conmon_pidfile.write_text(str(os.getpid()))
        if runtime.endswith("runc"):
            fifo = execfifo.fifo_path(driver.runtime_root, TASK_ID)
            fifo.parent.mkdir(parents=True)
            os.mkfifo(fifo)
            threading.Thread(target=lambda: os.write(fd := os.open(fifo, os.O_WRONLY), b"0") and os.close(fd)).start()
        return os.getpid()

    def fake_runtime(*args: str, check: bool = True) -> Any:
        runtime_calls.append(args)
        return None

    monkeypatch.setattr(oci_driver.conmon, "start", fake_conmon)
    monkeypatch.setattr(driver, "_runtime", fake_runtime)
    driver.runtime = runtime
    monkeypatch.setattr(driver, "prepare", lambda task: driver.task_dir(TASK_ID).mkdir(parents=True, exist_ok=True))
    task = {"ID": TASK_ID}
    handle = driver.start(task)
    again = driver.start(task)  # the agent asks again (a re-sent assignment): nothing runs twice

    assert handle.pid == again.pid == os.getpid()
    assert len(conmon_runs) == 1  # conmon runs `runtime create` (its -r) once
    argv = conmon_runs[0]
    assert argv[argv.index("-r") + 1] == driver.runtime
    if runtime.endswith("runc"):
        assert runtime_calls == []  # started through the exec FIFO, as `runc start` does
        assert not execfifo.fifo_path(driver.runtime_root, TASK_ID).exists()
    else:
        assert runtime_calls == [("start", TASK_ID)]
