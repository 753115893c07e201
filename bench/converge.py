"""Service convergence on three hosts: create 100 replicas, scale 100 -> 300, remove.

Prints, per task driver (`--driver oci|process|both`; both by default, side by side), for
`shoal/host sleep 3600` with restart delay 0: machine CPU per task start, create -> all 100 RUNNING (goal <= 2 s;
Docker Swarm took 11.8 s for the same on this machine), scale 100 -> 300 -> all RUNNING, rm ->
no task left (in the store, and on the nodes), and the Raft log entries each step used (from the
objects' Version.Index, which is the log index of the command that last wrote them) with how many
of them were orchestrator batches (tasks created in one pass share their CreatedAt). Figures only.

    .venv/bin/python bench/converge.py [--managers 1|3]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from _cluster import (
    HOSTS,
    api,
    cpu_per_task,
    cpu_report,
    cpu_snapshot,
    create_service,
    live_tasks,
    local_tasks,
    locked_main,
    machine_note,
    node_names,
    running_tasks,
    scale_service,
    service_tasks,
    services_cluster,
    shim_pids,
    state_counts,
    ts,
    until,
    wipe,
)
from _figures import record

REPLICAS, SCALED = 100, 300
DOCKER_SWARM_S = 11.8  # docker swarm, 100 replicas, same machine (issue 4)
TIMEOUT = 60.0
POLL = 0.1  # the manager serves every poll (300 tasks a call) on the same 2 CPUs: poll gently
NAME = "converge"


class Watch:
    """Polls the service's tasks until `n` run; remembers every Version.Index it saw."""

    def __init__(self, bed: Any, service: str) -> None:
        self.bed = bed
        self.service = service
        self.versions: set[int] = set()
        self.tasks: list[dict[str, Any]] = []
        self.polls = 0
        self.poll_time = 0.0  # seconds the manager took to answer them

    def converged(self, n: int) -> list[dict[str, Any]] | None:
        self.polls += 1
        start = time.monotonic()
        self.tasks = service_tasks(self.bed, self.service)
        self.poll_time += time.monotonic() - start
        self.versions.update(t["Version"]["Index"] for t in self.tasks)
        live = live_tasks(self.tasks)
        run = running_tasks(self.tasks)
        return run if len(live) == n and len(run) == n else None


def spread(bed: Any, tasks: list[dict[str, Any]]) -> str:
    names = node_names(bed)
    counts: dict[str, int] = {}
    for t in tasks:
        host = names.get(t.get("NodeID", ""), "?")
        counts[host] = counts.get(host, 0) + 1
    return ", ".join(f"{h} {counts.get(h, 0)}" for h in HOSTS)


def step(
    bed: Any, watch: Watch, n: int, t0_wall: float, t0: float, first_index: int, label: str, cpu0: dict[str, float]
) -> tuple[float | None, dict]:
    """Wait until `n` run; print poll time, timestamp time, spread, Raft entries. Returns (the seconds a
    client polling saw, info with "stamped": the seconds by the tasks' own RUNNING timestamps)."""
    before = set(watch.versions)
    watch.polls, watch.poll_time = 0, 0.0
    run, elapsed = until(f"{n} tasks RUNNING", lambda: watch.converged(n), TIMEOUT, POLL, start=t0)
    after = cpu_snapshot(bed)
    cpu = cpu_report(cpu0, after)
    if run is None:
        print(f"  {label}: NOT converged after {elapsed:.1f} s; tasks: {state_counts(watch.tasks)}")
        return None, {}
    stamped = max(ts(t["Status"]["Timestamp"]) for t in run) - t0_wall
    last_index = max(t["Version"]["Index"] for t in watch.tasks)
    new = [t for t in run if ts(t["CreatedAt"]) >= t0_wall]
    batches = len({t["CreatedAt"] for t in new})
    entries = last_index - first_index
    seen = len({v for v in watch.versions - before if v > first_index})
    print(
        f"  {label}: all {n} RUNNING after {elapsed:.2f} s (polling every {POLL * 1000:.0f} ms: "
        f"{watch.polls} GET /tasks, {watch.poll_time / max(watch.polls, 1) * 1000:.0f} ms each), "
        f"{stamped:.2f} s by the tasks' RUNNING timestamps; {len(new)} new tasks; spread: {spread(bed, run)}"
    )
    names = node_names(bed)
    per_node = []
    for host in HOSTS:
        stamps = sorted(ts(t["Status"]["Timestamp"]) - t0_wall for t in new if names.get(t["NodeID"]) == host)
        if stamps:
            per_node.append(f"{host} {len(stamps)} from {stamps[0]:.2f} to {stamps[-1]:.2f} s")
    created = sorted({ts(t["CreatedAt"]) - t0_wall for t in new})
    print(
        f"  {label}: orchestrator created+placed the tasks at {', '.join(f'{c:.3f}' for c in created)} s; "
        f"RUNNING per node: {'; '.join(per_node)}"
    )
    print(f"  {label}: {cpu}")
    print(f"  {label}: {cpu_per_task(cpu0, after, len(new))}")
    print(
        f"  {label}: Raft log entries {first_index + 1}..{last_index} = {entries} "
        f"(orchestrator batches that created the {len(new)} tasks: {batches}; "
        f"the other ~{entries - batches} are node status reports and other writes; "
        f"distinct task versions seen while polling: {seen})"
    )
    record(f"{label}: polled", elapsed, goal=2.0 if label.startswith("create") else None)
    record(f"{label}: timestamps", stamped)
    return elapsed, {"entries": entries, "batches": batches, "stamped": stamped}


def removal(bed: Any, service_id: str) -> None:
    cpu0 = cpu_snapshot(bed)
    t0 = time.monotonic()
    api(bed, "swarm00").delete(f"/services/{service_id}")
    _, gone = until(
        "no task of the service in the store",
        lambda: not [t for t in api(bed, "swarm00", 10).get("/tasks") if t["ServiceID"] == service_id],
        TIMEOUT,
        POLL,
        start=t0,
    )
    left: dict[str, int] = {}

    def stopped() -> bool:
        left.clear()
        for host in HOSTS:
            n = len(local_tasks(bed, host, service_id)) + len(shim_pids(bed, host))
            if n:
                left[host] = n
        return not left

    ok, ended = until("no task running on any node", stopped, TIMEOUT, POLL, start=t0)
    print(
        f"rm {SCALED} tasks: none left in the store after {gone:.2f} s, "
        f"no task (nor shim process) left on the nodes after {ended:.2f} s" + ("" if ok else f" (still there: {left})")
    )
    print(f"  rm: {cpu_report(cpu0, cpu_snapshot(bed))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--managers", type=int, default=1, choices=(1, 3))
    parser.add_argument("--driver", choices=("oci", "process", "both"), default="both", help="task driver(s)")
    args = parser.parse_args()
    for driver in ("process", "oci") if args.driver == "both" else (args.driver,):
        run(args, driver)


def run(args: argparse.Namespace, driver: str) -> None:
    layout = "1 manager + 2 workers" if args.managers == 1 else "3 managers"
    print(f"== task driver {driver}")
    print(f"cluster: {len(HOSTS)} hosts, {layout}; service: {REPLICAS} x `shoal/host sleep 3600`, restart delay 0")
    print(machine_note(), flush=True)
    bed = services_cluster(managers=args.managers, driver=driver)
    try:
        cpu0 = cpu_snapshot(bed)
        t0_wall, t0 = time.time(), time.monotonic()
        service_id = create_service(bed, NAME, REPLICAS)
        created_index = api(bed, "swarm00").get(f"/services/{service_id}")["Version"]["Index"]
        watch = Watch(bed, service_id)
        seen, info = step(bed, watch, REPLICAS, t0_wall, t0, created_index, f"create {REPLICAS}", cpu0)
        if seen is not None:
            print(
                f"create -> {REPLICAS} RUNNING, as a client polling GET /tasks sees it: {seen:.2f} s (goal <= 2 s; "
                f"Docker Swarm: {DOCKER_SWARM_S} s, {DOCKER_SWARM_S / max(seen, 1e-3):.1f}x; by the tasks' own "
                f"RUNNING timestamps: {info['stamped']:.2f} s)"
            )
        current = api(bed, "swarm00").get(f"/services/{service_id}")
        cpu0 = cpu_snapshot(bed)
        t0_wall, t0 = time.time(), time.monotonic()
        scale_service(bed, service_id, SCALED)
        scaled_index = api(bed, "swarm00").get(f"/services/{service_id}")["Version"]["Index"]
        if scaled_index == current["Version"]["Index"]:
            print("  (the scale did not change the service's version)")
        seen, info = step(bed, watch, SCALED, t0_wall, t0, scaled_index, f"scale {REPLICAS}->{SCALED}", cpu0)
        if seen is not None:
            print(
                f"scale {REPLICAS} -> {SCALED} RUNNING, as a client polling sees it: {seen:.2f} s "
                f"(by the tasks' timestamps: {info['stamped']:.2f} s)"
            )
        removal(bed, service_id)
    finally:
        wipe(bed, "bench_converge")


if __name__ == "__main__":
    locked_main(main)
