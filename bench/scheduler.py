"""In-process scheduler throughput: 1,000 nodes x 100,000 tasks with constraints.

Prints placements per second (goal >= 20,000/s) for three ways the leader may call
`schedule`: everything at once, 100-task batches on NodeInfos it keeps (in_place), and
100-task batches chaining Decisions.nodes (copying). Figures only, nothing asserted.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from _figures import record

from shoal.manager.scheduler import NodeInfo, build_node_infos, schedule

NODES, SERVICES, TASKS_PER_SERVICE, BATCH = 1_000, 100, 1_000, 100
CPU, MIB = 1_000_000_000, 1 << 20
ZONES = "abcde"


def make_nodes() -> list[dict[str, Any]]:
    nodes = []
    for i in range(NODES):
        availability = "drain" if i % 100 == 1 else "pause" if i % 100 == 2 else "active"
        nodes.append(
            {
                "ID": f"node{i:021d}",
                "Spec": {
                    "Role": "manager" if i < 5 else "worker",
                    "Availability": availability,
                    "Labels": {"zone": ZONES[i % len(ZONES)], "disk": "ssd" if i % 2 else "hdd"},
                },
                "Description": {
                    "Hostname": f"host{i:04d}",
                    "Platform": {"OS": "linux", "Architecture": "x86_64"},
                    "Resources": {"NanoCPUs": 64 * CPU, "MemoryBytes": 256 * 1024 * MIB},
                    "Engine": {"Labels": {"os": "debian"}},
                },
                "Status": {"State": "down" if i % 100 == 3 else "ready"},
            }
        )
    return nodes


def placement(s: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A mix of what services ask for: every one has at least one constraint."""
    kind = s % 10
    place: dict[str, Any] = {"Constraints": ["node.role==worker"]}
    reserve: dict[str, Any] = {}
    if kind in (1, 2):
        place["Constraints"].append("node.labels.zone!=e")
    if kind in (3, 4):
        place["Preferences"] = [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}]
    if kind == 5:
        reserve = {"NanoCPUs": CPU // 10, "MemoryBytes": 128 * MIB}
    if kind == 6:
        place["Constraints"].append("node.labels.disk==ssd")
        place["MaxReplicas"] = 3
    if kind == 7:
        place["Constraints"].append("engine.labels.os==debian")
    return place, reserve


def make_tasks(generation: str) -> list[dict[str, Any]]:
    tasks = []
    for s in range(SERVICES):
        place, reserve = placement(s)
        spec = {"ContainerSpec": {"Image": "shoal/host"}, "Resources": {"Reservations": reserve}, "Placement": place}
        for i in range(TASKS_PER_SERVICE):
            tasks.append(
                {
                    "ID": f"{generation}{s:03d}{i:021d}",
                    "ServiceID": f"svc{s:03d}",
                    "Slot": i + 1,
                    "Spec": spec,
                    "Status": {"State": "pending"},
                    "DesiredState": "running",
                }
            )
    return tasks


def timed(label: str, fn: Callable[[], tuple[int, int]]) -> None:
    gc.collect()
    start = time.perf_counter()
    placed, unplaced = fn()
    took = time.perf_counter() - start
    rate = placed / took if took else float("inf")
    record(label[:40], rate / 1000, unit="thousand placements/s", goal=20.0)
    print(f"{label:<58} {placed:>7} placed {unplaced:>6} pending {took:7.2f} s {rate:>10,.0f} placements/s")


def main() -> None:
    nodes = make_nodes()
    first, second = make_tasks("a"), make_tasks("b")
    print(f"{NODES} nodes (1% drained, 1% paused, 1% down), {len(first)} tasks in {SERVICES} services")

    result: dict[str, Any] = {}

    def all_at_once() -> tuple[int, int]:
        d = schedule(first, nodes)
        result["nodes"] = d.nodes
        return len(d.assignments), len(d.unplaced)

    timed("one call, 100k tasks, Node dicts in", all_at_once)
    busiest = max(result["nodes"].values(), key=lambda i: i.total)
    print(f"  busiest node holds {busiest.total} tasks; services on it: {len(busiest.service_counts)}")

    def batches(infos: list[NodeInfo], tasks: list[dict[str, Any]], in_place: bool) -> tuple[int, int]:
        placed = unplaced = 0
        current: list[NodeInfo] = infos
        for i in range(0, len(tasks), BATCH):
            d = schedule(tasks[i : i + BATCH], current, in_place=in_place)
            placed, unplaced = placed + len(d.assignments), unplaced + len(d.unplaced)
            if not in_place:
                current = list(d.nodes.values())
        return placed, unplaced

    timed(f"{BATCH}-task batches, kept NodeInfos (in_place)", lambda: batches(build_node_infos(nodes), first, True))
    timed(f"{BATCH}-task batches, chained copies", lambda: batches(build_node_infos(nodes), first, False))

    loaded = list(result["nodes"].values())
    spread = Counter(i.total for i in loaded)
    print(f"  tasks per node after the first run: min {min(spread)} max {max(spread)}")

    def on_loaded_cluster() -> tuple[int, int]:
        d = schedule(second, loaded)
        return len(d.assignments), len(d.unplaced)

    timed("one call, 100k more tasks on the loaded cluster", on_loaded_cluster)


if __name__ == "__main__":
    main()
