"""Scale, short: 200 simulated nodes (`python -m shoal.sim`: real joins, sessions, assignments and
status reports; tasks only recorded) and 5,000 tasks (SCALE_TASKS) on one overlay under three drained managers.

Invariants only (bench/scale.py measures the times): every task placed exactly once and run by
the node the store names; no node given more than its resources; while 10 % of the nodes flap
(disconnect and come back within the grace period) and across a leader kill, no node Down and no
task lost, added, moved or restarted; a node sending garbage, or its old session once removed, is
refused (status and message) and nothing else moves. `CHAOS_LONG=1` runs 1,000 nodes / 30,000 tasks.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from chaos._util import leader_host
from chaos.conftest import LONG, Summary
from integration.cluster_helpers import HOSTS, api, wait_for
from integration.sim_helpers import (
    SimFleet,
    managers_cluster,
    overlay,
    ready_count,
    running_total,
    sim_services,
    start_sim,
    teardown,
)
from testbed.bed import Testbed

# The 200 / 5,000 in CI (chaos-short): passed twice in a row on 2026-12-04 (load 0-1.5, the
# fleet in two processes: RUNNING in 19 s, module 100 s); SCALE_TASKS picks another count
NODES, TASKS = (1000, 30000) if LONG else (200, int(os.environ.get("SCALE_TASKS", "5000")))
READY_S, RUNNING_S = (600, 1800) if LONG else (60, 150)  # bounds, not goals (bench/scale.py times them)
NODE_CPUS = 1.5
TASK_CPUS = 0.05  # 30 tasks fill a node: the scheduler must spread, never overfill
HEARTBEAT = 5.0
# The three managers, the 200 nodes' process and the test share 2 CPUs with whatever else runs (the
# load average was 10 on this machine, shared by 7 sessions): with 1 s the managers changed leader
# every few seconds for minutes and 5,000 tasks never all ran within 150 s. Only failover times
# depend on it, and bench/scale.py measures those.
ELECTION_S = 2.5
FLAP_ROUNDS, FLAP_DOWN_S, FLAP_UP_S = 3, 6.0, 4.0  # 6 s away + up to a 5 s beat gap: within the 15 s grace
VIA = "swarm01"  # reads from a follower's replica


@pytest.fixture(scope="module")
def fleet(bed: Testbed) -> Iterator[SimFleet]:
    sim = None
    started = time.monotonic()
    try:
        token = managers_cluster(bed, HEARTBEAT, ELECTION_S)
        log = bed.state_dir.parent / "test-logs" / "chaos_scale" / "sim.log"
        sim = start_sim(bed, token, NODES, log, ["--heartbeat-period", str(HEARTBEAT), "--cpus", str(NODE_CPUS)])
        joined = sim.event("joined", READY_S)
        assert joined["nodes"] == NODES, joined["errors"]
        wait_for("simulated nodes ready", lambda: ready_count(bed, via()) == NODES, timeout=READY_S, interval=0.5)
        yield sim
    finally:
        teardown(bed, sim, "chaos_scale")
        # the issue's bound for CI (chaos-short): the whole module, managers' setup to teardown
        print(f"scale: {NODES} nodes / {TASKS} tasks, test wall time {time.monotonic() - started:.0f} s", flush=True)


def placements(bed: Testbed, sim: SimFleet, via: str) -> tuple[dict[str, str], dict[str, str], dict[str, int]]:
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


ALIVE = list(HOSTS)  # managers not killed by this module (the leader-kill test takes one)


def via() -> str:
    """A manager to read through: a follower's replica when one is alive (placements must hold there)."""
    return VIA if VIA in ALIVE else ALIVE[0]


@dataclass
class Baseline:
    services: list[str]
    converge_s: float
    store: dict[str, str]
    where: dict[str, str]
    starts: dict[str, int]


@pytest.fixture(scope="module")
def placed(bed: Testbed, fleet: SimFleet) -> Baseline:
    """TASKS tasks created and RUNNING; every one placed exactly once, run where the store says,
    no node over its CPUs, each started once. Every test below compares against this."""
    net = overlay(bed)
    services = sim_services(bed, TASKS, net, reserve_cpus=TASK_CPUS)
    t0 = time.monotonic()
    try:
        wait_for(
            f"{TASKS} tasks running",
            lambda: running_total(bed, via()) == (TASKS, TASKS),
            timeout=RUNNING_S,
            interval=1.0,
        )
    finally:  # figures for the log, pass or fail (a manager too busy to answer must not hide the failure)
        with contextlib.suppress(Exception):
            stats = fleet.command("stats", "stats")
            down = NODES - ready_count(bed, via())
            print(
                f"scale: beats that reached no manager {stats['beats_unreachable']} "
                f"({stats['beats_timed_out']} timed out, slowest answered {stats['beat_slowest_s']:.1f} s); "
                f"{stats['connections_made']} TLS connections made; "
                f"sim process CPU {stats['cpu_s']:.0f} s, its loop late up to {stats['loop_late_worst_s']:.1f} s "
                f"({stats['loop_stalls']} stalls over 1 s, {stats['loop_late_total_s']:.0f} s in all); "
                f"nodes not ready {down}",
                flush=True,
            )
    converge_s = time.monotonic() - t0
    store, where, starts = placements(bed, fleet, via())
    assert len(store) == TASKS
    assert where == store, f"{len(set(where.items()) ^ set(store.items()))} placements differ"
    per_node = Counter(store.values())
    nodes = {n["ID"]: n for n in api(bed, via(), 30).get("/nodes")}
    for node_id, count in per_node.items():
        cpus = nodes[node_id]["Description"]["Resources"]["NanoCPUs"] / 1e9
        assert count * TASK_CPUS <= cpus + 1e-9, f"node {node_id} holds {count} tasks of {TASK_CPUS} CPUs on {cpus}"
    assert sum(starts.values()) == TASKS, "a task started more than once on its way to RUNNING"
    return Baseline(services, converge_s, store, where, starts)


def unchanged(bed: Testbed, fleet: SimFleet, base: Baseline, what: str) -> str:
    """Asserts that no task was lost, added, moved or restarted since `base`; a summary line."""
    after, where_after, starts_after = placements(bed, fleet, via())
    after_ids = set(after)
    lost, new = len(set(base.store) - after_ids), len(after_ids - set(base.store))
    restarted = sum(starts_after.values()) - sum(base.starts.values())
    down = NODES - ready_count(bed, via())
    line = f"{lost} lost / {new} new / {restarted} restarted / {down} nodes not ready across {what}"
    assert down == 0, line
    assert after_ids == set(base.store), line
    assert where_after == after == base.store, f"tasks moved across {what}"
    assert starts_after == base.starts, line
    assert running_total(bed, via()) == (TASKS, TASKS)
    return line


def test_scale_placement(placed: Baseline, summary: Summary) -> None:
    summary.add(
        "scale",
        1,
        0,
        f"{NODES} nodes, {TASKS} tasks in {len(placed.services)} services: RUNNING in {placed.converge_s:.0f} s, "
        "each placed once, none over its node's CPUs",
    )


def test_scale_flapping_nodes_move_no_task(bed: Testbed, fleet: SimFleet, placed: Baseline, summary: Summary) -> None:
    """10 % of the nodes disconnect for less than the grace period (3 heartbeat periods) and come
    back, FLAP_ROUNDS times: no node is Down, no task moves or restarts (Docker's behaviour)."""
    fleet.send(f"flap {NODES // 10} {FLAP_ROUNDS} {FLAP_DOWN_S:g} {FLAP_UP_S:g}")
    deadline = time.monotonic() + FLAP_ROUNDS * (FLAP_DOWN_S + FLAP_UP_S) + 60
    fewest_ready = NODES
    while True:  # sampled through a replica while the nodes flap: a Down would show for seconds
        fewest_ready = min(fewest_ready, ready_count(bed, via()))
        try:
            flapped = fleet.event("flapped", 1.0)
            break
        except AssertionError:
            assert time.monotonic() < deadline, "the flapping did not end"
    time.sleep(HEARTBEAT)  # the nodes that came back last have beaten and polled since
    unreachable = fleet.command("stats", "stats")["beats_unreachable"]
    figures = (
        f"{len(flapped['nodes'])} disconnects; fewest ready {fewest_ready}; beats that reached no manager {unreachable}"
    )
    print(f"scale-flap: {figures}", flush=True)
    # first: a node marked Down has its tasks replaced (as Docker does), which unchanged() would only
    # show as tasks lost and new (the 10 of one node in a run before the session's quick retry)
    assert fewest_ready == NODES, f"a flapping node was marked Down ({figures})"
    line = unchanged(bed, fleet, placed, f"{FLAP_ROUNDS} rounds of {NODES // 10} nodes flapping")
    summary.add("scale-flap", FLAP_ROUNDS, 0, f"{figures}; {line}")


def test_scale_leader_kill_loses_and_restarts_nothing(
    bed: Testbed, fleet: SimFleet, placed: Baseline, summary: Summary
) -> None:
    old = leader_host(bed, via())
    assert old is not None
    bed.stop_agent(old, kill=True)
    ALIVE.remove(old)
    wait_for("a new leader", lambda: leader_host(bed, ALIVE[0]) not in (None, old), timeout=30)
    time.sleep(3 * HEARTBEAT + HEARTBEAT)  # past the grace: a node or an assignment dropped would show by now
    line = unchanged(bed, fleet, placed, "a leader kill")
    summary.add("scale-leader-kill", 1, 0, line)


def test_scale_garbage_and_a_removed_nodes_session_are_refused_and_nothing_else_moves(
    bed: Testbed, fleet: SimFleet, placed: Baseline, summary: Summary
) -> None:
    """One more simulated node joins, then sends every manager bytes that are not TLS, malformed
    JSON over its valid TLS session, and, once removed, its old session again: each is refused
    (the exact status and message), and no other node or task is affected."""
    intruder = fleet.command("intruder", "intruder")
    probed = fleet.command("probe", "probed", timeout=120)["answers"]
    assert sum(1 for a in probed.values() if not a.get("error")) == len(ALIVE), probed
    for addr, answers in probed.items():
        if answers.get("error"):
            continue  # a manager killed by the leader-kill test: unreachable, not an answer
        assert answers["garbage"]["closed"] and not bytes.fromhex(answers["garbage"]["answer"]).startswith(b"HTTP"), (
            addr,
            answers["garbage"],
        )
        assert answers["bad_json"]["status"] == 400, (addr, answers["bad_json"])
        assert answers["bad_json"]["message"].startswith("malformed JSON: "), (addr, answers["bad_json"])
        assert answers["bad_updates"] == {"status": 400, "message": "Updates must be a list of task status objects"}
        assert answers["beat"]["status"] == 200, (addr, answers["beat"])
    api(bed, via(), 30).delete(f"/nodes/{intruder['node']}", force="true")
    replayed = fleet.command("probe", "probed", timeout=120)["answers"]
    refused = f"node {intruder['node']} has been removed from the swarm or is unknown"
    for addr, answers in replayed.items():
        if answers.get("error"):
            continue
        assert answers["beat"] == {"status": 403, "message": refused}, (addr, answers["beat"])
        assert answers["bad_json"] == {"status": 403, "message": refused}, (addr, answers["bad_json"])
    line = unchanged(bed, fleet, placed, "garbage and a removed node's session")
    summary.add("scale-refusals", 2, 0, f"{len(probed)} managers probed twice; {line}")
