"""Scale, short: 200 simulated nodes (`python -m shoal.sim`: real joins, sessions, assignments and
status reports; tasks only recorded) and 5,000 tasks on one overlay under three drained managers.

Invariants only (bench/scale.py measures the times): every task placed exactly once and run by
the node the store names; no node given more than its resources; across a leader kill no task
lost, added or restarted. `CHAOS_LONG=1` runs 1,000 nodes / 30,000 tasks.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from chaos._util import leader_host
from chaos.conftest import LONG, Summary
from integration.cluster_helpers import HOSTS, api, wait_for
from integration.sim_helpers import (
    SimProcess,
    managers_cluster,
    overlay,
    ready_count,
    running_total,
    sim_services,
    start_sim,
    teardown,
)
from testbed.bed import Testbed

NODES, TASKS = (1000, 30000) if LONG else (200, 5000)
READY_S, RUNNING_S = (600, 1800) if LONG else (60, 150)  # bounds, not goals (bench/scale.py times them)
NODE_CPUS = 1.5
TASK_CPUS = 0.05  # 30 tasks fill a node: the scheduler must spread, never overfill
HEARTBEAT = 5.0
VIA = "swarm01"  # reads from a follower's replica


@pytest.fixture(scope="module")
def fleet(bed: Testbed) -> Iterator[SimProcess]:
    sim = None
    try:
        token = managers_cluster(bed, HEARTBEAT)
        log = bed.state_dir.parent / "test-logs" / "chaos_scale" / "sim.log"
        sim = start_sim(bed, token, NODES, log, ["--heartbeat-period", str(HEARTBEAT), "--cpus", str(NODE_CPUS)])
        joined = sim.event("joined", READY_S)
        assert joined["nodes"] == NODES, joined["errors"]
        wait_for("simulated nodes ready", lambda: ready_count(bed, VIA) == NODES, timeout=READY_S, interval=0.5)
        yield sim
    finally:
        teardown(bed, sim, "chaos_scale")


def placements(bed: Testbed, sim: SimProcess, via: str = VIA) -> tuple[dict[str, str], dict[str, str], dict[str, int]]:
    """(task -> node per the store, task -> node per the simulated nodes, node -> starts ever)."""
    tasks = api(bed, via, 60).get("/tasks", filters={"desired-state": ["running"]})
    store = {t["ID"]: t["NodeID"] for t in tasks if t["Status"]["State"] == "running"}
    seen = sim.command("tasks", "tasks")
    where: dict[str, str] = {}
    doubles = Counter(tid for ids in seen["running"].values() for tid in ids)
    assert not [tid for tid, n in doubles.items() if n > 1], "a task runs on two simulated nodes"
    for node, ids in seen["running"].items():
        where.update(dict.fromkeys(ids, node))
    return store, where, seen["starts"]


def test_scale_invariants(bed: Testbed, fleet: SimProcess, summary: Summary) -> None:
    net = overlay(bed)
    services = sim_services(bed, TASKS, net, reserve_cpus=TASK_CPUS)
    t0 = time.monotonic()
    wait_for(
        f"{TASKS} tasks running", lambda: running_total(bed, VIA) == (TASKS, TASKS), timeout=RUNNING_S, interval=1.0
    )
    converge_s = time.monotonic() - t0

    # every task placed exactly once, and run where the store says
    store, where, starts = placements(bed, fleet)
    assert len(store) == TASKS
    assert where == store, f"{len(set(where.items()) ^ set(store.items()))} placements differ"
    per_node = Counter(store.values())
    nodes = {n["ID"]: n for n in api(bed, VIA, 30).get("/nodes")}
    for node_id, count in per_node.items():
        cpus = nodes[node_id]["Description"]["Resources"]["NanoCPUs"] / 1e9
        assert count * TASK_CPUS <= cpus + 1e-9, f"node {node_id} holds {count} tasks of {TASK_CPUS} CPUs on {cpus}"
    assert sum(starts.values()) == TASKS, "a task started more than once on its way to RUNNING"

    # the leader killed: nothing lost, added or restarted
    old = leader_host(bed, VIA)
    assert old is not None
    bed.stop_agent(old, kill=True)
    survivors = [h for h in HOSTS if h != old]
    wait_for("a new leader", lambda: leader_host(bed, survivors[0]) not in (None, old), timeout=30)
    time.sleep(3 * HEARTBEAT)  # a node or an assignment dropped by the failover would show by now
    via = survivors[0]
    after, where_after, starts_after = placements(bed, fleet, via)
    after_ids = set(after)
    down = NODES - ready_count(bed, via)
    summary.add(
        "scale",
        1,
        0,
        f"{NODES} nodes, {TASKS} tasks in {len(services)} services: RUNNING in {converge_s:.0f} s; "
        f"{len(set(store) - after_ids)} lost / {len(after_ids - set(store))} new / "
        f"{sum(starts_after.values()) - sum(starts.values())} restarted, {down} nodes not ready across a leader kill",
    )
    assert down == 0, f"{down} nodes not ready after the leader kill"
    assert after_ids == set(store), "tasks lost or added across the leader kill"
    assert where_after == after == store, "tasks moved across the leader kill"
    assert starts_after == starts, "tasks restarted across the leader kill"
    assert running_total(bed, via) == (TASKS, TASKS)
