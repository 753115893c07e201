"""The leader's event loop while thousands of tasks are created, without the testbed.

A real replicated store (pysyncobj, one member on 127.0.0.1, in this process, encrypted at rest
as in production), the real orchestrator (reconcile, allocate, place, one commit a pass), the
cluster event feed every manager runs, and N nodes' assignment long polls and status reports
(`assignments.assignments`, `assignments.apply_reports`: the functions the dispatcher's handlers
call, without HTTP and TLS) on one event loop, as in the leader. A ticker measures how late the
loop wakes up (what a heartbeat waiting in the leader's sockets would see); then services
totalling M tasks are created and the run ends once every task is RUNNING.

    .venv/bin/python bench/leader_loop.py [--nodes 200] [--tasks 5000] [--profile FILE]

`--profile` writes cProfile's figures of the loop's thread (sorted by cumulative time) to FILE.
`--slow S` logs each loop callback that ran longer than S seconds (asyncio debug mode: slower).
Prints figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import os
import pstats
import re
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agent" / "src"))

from scale_leader import NOW, PER_SERVICE, cluster

from shoal.agent.events import EventHub, follow_cluster
from shoal.manager import assignments
from shoal.manager.orchestrator import pipeline
from shoal.manager.orchestrator.loop import Orchestrator
from shoal.model.taskdelta import HeldTasks
from shoal.store import Change, RaftConfig, ReplicatedStore

CHANGE = re.compile(r'"([0-9a-z]+)":\{"Version":"([^"]+)","From":(null|"[^"]*")')
TICK = 0.05  # the ticker's period: lateness beyond it is the loop held by something else


class LagMeter:
    def __init__(self) -> None:
        self.late_max = 0.0
        self.late_sum = 0.0
        self.stalls: list[tuple[float, float]] = []  # (seconds since start, lateness) over 0.5 s
        self.started = time.monotonic()

    async def run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(TICK)
            late = time.monotonic() - before - TICK
            self.late_max = max(self.late_max, late)
            self.late_sum += late
            if late > 0.5:
                self.stalls.append((before - self.started, late))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def node_loop(store: ReplicatedStore, node_id: str, counts: dict[str, int]) -> None:
    """One node: long-poll its assignments (increments, as shoal's workers ask), report RUNNING for
    each new task it is given (one report batch an answer, as the task loop sends them)."""
    since: str | None = None
    held = HeldTasks()
    have: dict[str, str] = {}
    running: set[str] = set()
    while True:
        answer = await assignments.assignments(store, node_id, since, 10.0, dict(have), True)
        assert answer is not None  # none only for a node that stopped waiting
        body = assignments.encode(answer)  # the bytes the handler sends: part of the leader's cost
        counts["answers"] += 1
        counts["bytes"] += len(body)
        net_parts = b"".join(answer["NetParts"]).decode()  # pieces shared with other answers
        counts["net_bytes"] += len(net_parts)
        counts["whole_tasks"] += answer["TaskParts"]["From"] is None
        counts["whole_nets"] += ',"From":null,' in net_parts
        # the node side (parsing, holding) is not the leader's work: the task parts are taken as
        # the dict the leader built, and of the network parts only each network's version is read
        tasks = held.apply(answer["TaskParts"], answer["Signature"].split(".")[0])
        for net_id, version, since_held in CHANGE.findall(net_parts):
            if since_held == "null" or have.get(net_id) == json.loads(since_held):
                have[net_id] = version
            else:
                tasks = None
        if tasks is None:
            since, have = None, {}
            continue
        since = answer["Signature"]
        new = [t for t in tasks if t["ID"] not in running and t.get("DesiredState") == "running"]
        if new:
            reports = [{"ID": t["ID"], "State": "running", "Message": "started", "Timestamp": NOW} for t in new]
            await assignments.apply_reports(store, node_id, reports)
            running.update(t["ID"] for t in new)


async def run(args: argparse.Namespace, workdir: Path) -> None:
    addr = f"127.0.0.1:{free_port()}"
    store = ReplicatedStore(RaftConfig(addr, [addr], workdir / "raft", "bench-raft-secret"))
    deadline = time.monotonic() + 30
    while not store.leading and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    nodes, services, networks = cluster(args.nodes, args.tasks)
    for obj_kind, objs in (("network", networks), ("node", nodes)):
        for i in range(0, len(objs), 100):
            await store.acommit([Change(op="create", kind=obj_kind, obj=o) for o in objs[i : i + 100]], timeout=30)
    meter = LagMeter()
    hub = EventHub()
    manager = type("M", (), {"store": store})()
    counts = {"answers": 0, "bytes": 0, "net_bytes": 0, "whole_tasks": 0, "whole_nets": 0}
    orch = Orchestrator(store)
    orch.start()
    background = [
        asyncio.create_task(meter.run()),
        asyncio.create_task(follow_cluster(hub, lambda: manager)),
        *(asyncio.create_task(node_loop(store, n["ID"], counts)) for n in nodes),
    ]
    await asyncio.sleep(2.0)  # every poll waiting, as in a settled cluster
    meter.late_max, meter.late_sum, meter.stalls = 0.0, 0.0, []
    prof = cProfile.Profile() if args.profile else None
    if prof:
        prof.enable()
    t0 = time.monotonic()
    meter.started = t0
    for svc in services:  # one create call per service, as the bench and the test make them
        await store.acommit([Change(op="create", kind="service", obj=svc)], timeout=30)
    created = time.monotonic() - t0
    while time.monotonic() - t0 < args.timeout:
        tasks = store.list_shared("task")
        running = sum(1 for t in tasks if t["Status"]["State"] == "running")
        if running >= args.tasks:
            break
        await asyncio.sleep(0.2)
    took = time.monotonic() - t0
    if prof:
        prof.disable()
        with open(args.profile, "w") as out:
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(60)
    for task in background:
        task.cancel()
    await orch.stop()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (1 min)")
    print(f"{args.nodes} nodes / {args.tasks} tasks ({len(services)} services of {PER_SERVICE})")
    print(f"  service creates committed        {created:8.2f} s")
    print(f"  all tasks RUNNING                {took:8.2f} s ({running} of {args.tasks})")
    print(f"  loop late, at most               {meter.late_max:8.2f} s")
    print(f"  loop late, in all                {meter.late_sum:8.2f} s")
    print(f"  stalls over 0.5 s (at s: late)   {', '.join(f'{a:.1f}: {b:.2f}' for a, b in meter.stalls) or '-'}")
    print(f"  orchestrator passes              {orch.passes:8d}")
    print(f"  assignment answers / MB          {counts['answers']:8d} / {counts['bytes'] / 1e6:.1f}")
    print(f"  of which network state MB        {counts['net_bytes'] / 1e6:8.1f}")
    print(f"  answers with the whole task list {counts['whole_tasks']:8d}")
    print(f"  answers with a whole network     {counts['whole_nets']:8d}")
    sys.stdout.flush()  # the figures first: the store's close may take minutes (not investigated)
    store.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=200)
    p.add_argument("--tasks", type=int, default=5000)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--profile", default="")
    p.add_argument("--slow", type=float, default=0.0)
    p.add_argument("--entry-size", type=int, default=0, help="changes per Raft entry of a pass (A/B of the split)")
    args = p.parse_args()
    if args.entry_size:
        pipeline.split.__defaults__ = (args.entry_size,)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="leader-loop-") as tmp:
        if args.slow:
            loop = asyncio.new_event_loop()
            loop.set_debug(True)
            loop.slow_callback_duration = args.slow
            logging.getLogger("asyncio").setLevel(logging.WARNING)
            loop.run_until_complete(run(args, Path(tmp)))
            loop.close()
        else:
            asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
