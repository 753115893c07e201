"""The `sim` driver (tasks only recorded) and the executor driving it on the event loop."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from shoal.agent.base import default_driver
from shoal.config import Config, load
from shoal.runtime.base import Driver, LoopDriver, NoSuchTask
from shoal.runtime.sim import EXIT_LABEL, FAIL_LABEL, SimDriver
from shoal.sim.__main__ import parse_args
from shoal.sim.node import NodeShape, SimNode
from shoal.worker.executor import Executor
from shoal.worker.hooks import NetworkSlot
from shoal.worker.session import JITTER, next_beat


def task(tid: str, labels: dict[str, str] | None = None, networked: bool = False) -> dict[str, Any]:
    spec = {"ContainerSpec": {"Image": "shoal/host", "Labels": labels or {}}}
    out: dict[str, Any] = {
        "ID": tid,
        "ServiceID": "svc1",
        "Slot": 1,
        "DesiredState": "running",
        "Status": {"State": "assigned"},
        "Spec": spec,
    }
    if networked:
        out["NetworksAttachments"] = [{"Network": {"ID": "n1"}, "Addresses": ["10.0.0.2/24"]}]
    return out


def test_sim_is_a_driver_that_never_blocks() -> None:
    d = SimDriver()
    assert isinstance(d, Driver) and isinstance(d, LoopDriver) and d.blocking is False


def test_start_poll_stop_remove() -> None:
    d = SimDriver()
    h = d.start(task("t1"))
    assert d.start(task("t1")) == h  # idempotent
    assert d.poll("t1") is None and d.running_ids() == ["t1"] and d.starts == 1
    status = d.stop("t1")
    assert status is not None and status.exit_code == 137
    assert d.running_ids() == []
    d.remove("t1")
    with pytest.raises(NoSuchTask):
        d.poll("t1")


def test_exit_label_ends_the_task_with_its_code() -> None:
    d = SimDriver()
    d.start(task("t1", {EXIT_LABEL: "0:3"}))
    status = d.poll("t1")
    assert status is not None and status.exit_code == 3


def test_fail_rate_fails_the_same_tasks_every_time() -> None:
    ids = [f"t{i}" for i in range(400)]

    def failed(d: SimDriver) -> set[str]:
        out = set()
        for tid in ids:
            try:
                d.start(task(tid))
            except Exception:
                out.add(tid)
        return out

    first, second = failed(SimDriver(fail_rate=0.25)), failed(SimDriver(fail_rate=0.25))
    assert first == second and 60 < len(first) < 140
    assert not failed(SimDriver())


def test_config_selects_sim() -> None:
    cfg = load(None, {"task_driver": "sim"})
    assert isinstance(default_driver(cfg), SimDriver)
    assert Config().task_driver == "oci"


async def _until(ex: Executor, tid: str, state: str) -> None:
    for _ in range(400):
        if ex.state.get(tid) == state:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{tid} never {state}: {ex.state}")


class Hooks(NetworkSlot):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    async def before_start(self, task: dict[str, Any]) -> None:
        self.calls.append("before")

    async def after_start(self, task: dict[str, Any]) -> None:
        self.calls.append("after")


def test_executor_runs_sim_tasks_after_their_delay_and_reports_each_step() -> None:
    async def run() -> None:
        hooks = Hooks()
        ex = Executor(SimDriver(start_delay=0.05), hooks=hooks)
        ex.apply([task("t1", networked=True)])
        await asyncio.sleep(0.02)
        assert ex.state["t1"] == "starting"  # not running before its delay
        await _until(ex, "t1", "running")
        assert [r["State"] for r in ex.take_reports()] == ["accepted", "starting", "running"]
        assert hooks.calls == ["before", "after"]

    asyncio.run(run())


def test_executor_reports_a_failed_sim_start() -> None:
    async def run() -> None:
        ex = Executor(SimDriver())
        ex.apply([task("t1", {FAIL_LABEL: "start"})])
        await _until(ex, "t1", "failed")
        assert ex.take_reports()[-1]["Err"] == "sim: the start failed (as asked)"

    asyncio.run(run())


def test_executor_stops_and_forgets_sim_tasks() -> None:
    async def run() -> None:
        d = SimDriver()
        ex = Executor(d)
        ex.apply([task("t1")])
        await _until(ex, "t1", "running")
        stopped = dict(task("t1"), DesiredState="shutdown")
        stopped["Status"] = {"State": "running"}
        ex.apply([stopped])
        await _until(ex, "t1", "shutdown")
        ex.apply([])
        for _ in range(100):
            if "t1" not in d.tasks:
                break
            await asyncio.sleep(0.005)
        assert "t1" not in d.tasks and d.starts == 1

    asyncio.run(run())


def test_heartbeats_jitter_below_the_period() -> None:
    rng = random.Random(7)
    beats = [next_beat(5.0, rng) for _ in range(1000)]
    assert all(5.0 * (1 - JITTER) <= b <= 5.0 for b in beats)
    assert max(beats) - min(beats) > 1.0  # spread out, not in lockstep


def test_sim_node_shape_and_args() -> None:
    args = parse_args(["--managers", "10.213.0.10:2377", "--token", "T", "--nodes", "3", "--cpus", "1.5"])
    assert args.nodes == 3 and args.cpus == 1.5
    node = SimNode(7, 30007, NodeShape("10.213.0.12", nano_cpus=1_500_000_000))
    desc = node.shape.description(node.hostname)
    assert node.hostname == "sim-00007" and node.addr == "10.213.0.12:30007"
    assert desc["Resources"]["NanoCPUs"] == 1_500_000_000
    with pytest.raises(SystemExit):
        parse_args(["--managers", "m", "--token", "T", "--nodes", "0"])
