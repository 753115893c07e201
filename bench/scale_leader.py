"""The leader's own work at scale, without the testbed: the pure functions a leader runs per store
event, timed on tables shaped like bench/scale.py's (N ready nodes, 30 tasks a node in services of
1,000 replicas on one overlay, every task RUNNING). Prints each figure per size and how it grows.

    .venv/bin/python bench/scale_leader.py [--nodes 100,300,1000] [--per-node 30]

Figures (seconds unless said): allocate + place 1,000 new tasks (one service created); a steady
orchestrator pass (nothing to do), and the same pass as an idle leader runs it (quiet services, kept
node loads; one every IDLE_PERIOD); the pass that replaces the tasks of 10 % of the nodes lost at
once; a pass of a rolling update (parallelism 100) of one service, full and incremental (quiet
services skipped, node loads kept: what the leader runs); an assignments snapshot (index, network
view, encoded networks); one node's answer (signature, encoded JSON) and its size; the answer
parsed on a node.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agent" / "src"))

from _figures import record

from shoal.manager.assignments import JSONPieces, Snapshot, encode, signature
from shoal.manager.orchestrator.pipeline import allocate, place
from shoal.manager.orchestrator.quiet import Quiet
from shoal.manager.orchestrator.reconcile import reconcile
from shoal.manager.orchestrator.update import Watch
from shoal.manager.scheduler.loads import NodeLoads
from shoal.model.network import ingress_object, network_object, validate_create
from shoal.model.objects import new_node
from shoal.model.service import service_object, validate_service_spec
from shoal.model.task import with_status

NOW = "2026-01-01T00:00:00.000000000Z"
PER_SERVICE = 1000


def cluster(nodes: int, tasks: int) -> tuple[list[dict[str, Any]], ...]:
    ingress = ingress_object("ingressnet", NOW)
    body = {"Name": "scale-net", "IPAM": {"Config": [{"Subnet": "10.128.0.0/15"}]}}
    networks = [ingress, network_object("scalenet", validate_create(body, [ingress]), 4097, NOW)]
    node_objs = []
    for i in range(nodes):
        n = new_node(f"node{i:05d}", f"sim-{i:05d}", "worker", "10.213.0.12", NOW)
        n["Status"]["State"] = "ready"
        n["Description"]["Resources"] = {"NanoCPUs": 2_000_000_000, "MemoryBytes": 4 << 30}
        node_objs.append(n)
    services = []
    for s in range(max(1, tasks // PER_SERVICE)):
        template = {
            "ContainerSpec": {"Image": "shoal/host"},
            "Networks": [{"Target": "scalenet"}],
            "Resources": {"Reservations": {"NanoCPUs": 10_000_000, "MemoryBytes": 8 << 20}},
        }
        spec = {"Name": f"scale-{s}", "TaskTemplate": template, "Mode": {"Replicated": {"Replicas": PER_SERVICE}}}
        services.append(service_object(f"svc{s}", validate_service_spec(spec), NOW))
    return node_objs, services, networks


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    t0 = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    return (time.perf_counter() - t0) / repeat, out


def leader_pass(
    services: list[dict[str, Any]],
    tasks: list[Any],
    node_objs: list[dict[str, Any]],
    networks: list[dict[str, Any]],
    quiet: Quiet | None,
    loads: NodeLoads | None,
    watch: Watch | None = None,
) -> Any:
    """One orchestrator pass as the leader runs it (reconcile, allocate, place), with its quiet services,
    node loads and update watch kept by the caller between passes (None: a full pass)."""
    plan = reconcile(services, tasks, node_objs, NOW, time.time_ns(), 5, {}, watch or Watch(), quiet)
    allocate(plan, services, networks, tasks, node_objs)
    place(plan, tasks, node_objs, loads)
    return plan


def update_batch_passes(
    node_objs: list[dict[str, Any]], services: list[dict[str, Any]], networks: list[dict[str, Any]], tasks: list[Any]
) -> tuple[float, float]:
    """One pass of a rolling update (parallelism 100) of the first service, (full, incremental): the
    incremental one as the leader runs it, its quiet services, node loads and update watch from the pass before."""
    updated = copy.deepcopy(services[0])
    updated["Version"]["Index"] += 1
    updated["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] = "shoal/host:2"
    updated["Spec"]["UpdateConfig"] = {"Parallelism": 100}
    now = [updated, *services[1:]]

    def one(quiet: Quiet | None, loads: NodeLoads | None, watch: Watch | None) -> Any:
        return leader_pass(now, tasks, node_objs, networks, quiet, loads, watch)

    full, _ = timed(lambda: one(None, None, None))
    quiet, loads, watch = Quiet(), NodeLoads(), Watch()
    one(quiet, loads, watch)
    incremental, _ = timed(lambda: one(quiet, loads, watch))
    return full, incremental


def steady_incremental_pass(
    node_objs: list[dict[str, Any]], services: list[dict[str, Any]], networks: list[dict[str, Any]], tasks: list[Any]
) -> float:
    """The whole pass an idle leader runs (reconcile with its quiet services, allocate, place with the kept node
    loads) when nothing changed: the orchestrator's loop runs one every IDLE_PERIOD without store events."""
    quiet, loads = Quiet(), NodeLoads()

    def one() -> Any:
        return leader_pass(services, tasks, node_objs, networks, quiet, loads)

    one()
    cost, plan = timed(one, 3)
    assert not plan.changed(), "a steady pass decided something"
    return cost


def lose_pass(
    node_objs: list[dict[str, Any]], services: list[dict[str, Any]], networks: list[dict[str, Any]], tasks: list[Any]
) -> float:
    """The pass that replaces the tasks of 10 % of the nodes, Down at once, as the leader runs it (its quiet
    services and node loads from the steady pass before): bench/scale.py's loss, its orchestrator part."""
    quiet, loads = Quiet(), NodeLoads()

    def one(now_nodes: list[dict[str, Any]]) -> Any:
        return leader_pass(services, tasks, now_nodes, networks, quiet, loads)

    one(node_objs)
    down = [dict(n) for n in node_objs]
    for i, n in enumerate(down[: max(1, len(down) // 10)]):
        down[i] = {**n, "Status": {**n["Status"], "State": "down"}, "Version": {"Index": n["Version"]["Index"] + 1}}
    cost, plan = timed(lambda: one(down))
    assert plan.creates, "the loss replaced nothing"
    return cost


def measure(nodes: int, per_node: int) -> dict[str, float]:
    tasks_total = nodes * per_node
    node_objs, services, networks = cluster(nodes, tasks_total)
    tasks: list[dict[str, Any]] = []
    fig: dict[str, float] = {}
    for i, svc in enumerate(services):  # one service at a time, as the bench creates them

        def one_service(svc: dict[str, Any] = svc, now: list[dict[str, Any]] = tasks) -> Any:
            plan = reconcile([svc], [t for t in now if t["ServiceID"] == svc["ID"]], node_objs, NOW, time.time_ns())
            allocate(plan, services, networks, now, node_objs)
            place(plan, now, node_objs)
            return plan

        cost, plan = timed(one_service)
        if i == len(services) - 1:
            fig["create 1,000 tasks (last service)"] = cost
        tasks += [
            dict(with_status(t, "running", "started", NOW), Version={"Index": len(tasks) + j})
            for j, t in enumerate(plan.creates)
        ]
    fig["steady orchestrator pass"], _ = timed(lambda: reconcile(services, tasks, node_objs, NOW, time.time_ns()))
    fig["steady pass, incremental (idle leader)"] = steady_incremental_pass(node_objs, services, networks, tasks)
    fig["pass replacing 10 % lost nodes' tasks"] = lose_pass(node_objs, services, networks, tasks)
    fig["rolling-update batch pass, full"], fig["rolling-update batch pass, incremental"] = update_batch_passes(
        node_objs, services, networks, tasks
    )

    def build() -> Snapshot:
        snap = Snapshot(1, tasks, services, networks, node_objs)
        for net_id in snap.net.by_net:
            snap.net.network(net_id)
        _ = snap.by_node
        return snap

    fig["assignments snapshot"], snap = timed(build)
    sample = node_objs[: min(50, nodes)]
    for n in sample:  # the first signature hashes each task once; steady state is what repeats
        signature(snap, snap.by_node.get(n["ID"], []), snap.net.digest(n["ID"]))

    def answers() -> bytes:
        body = b""
        for n in sample:
            mine = snap.by_node.get(n["ID"], [])
            sig = signature(snap, mine, snap.net.digest(n["ID"]))
            net = JSONPieces.of(snap.net.for_node_json(n["ID"]))
            body = encode({"Signature": sig, "Epoch": 1, "Tasks": mine, "Services": snap.service_names, "Net": net})
        return body

    per, body = timed(answers)
    fig["one node's answer (ms)"] = per / len(sample) * 1000
    fig["answer size (KB)"] = len(body) / 1024
    fig["all nodes' answers, one round"] = per / len(sample) * nodes
    fig["answer parsed on a node (ms)"] = timed(lambda: json.loads(body), 3)[0] * 1000
    return fig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", default="100,300,1000")
    p.add_argument("--per-node", type=int, default=30)
    args = p.parse_args()
    sizes = [int(n) for n in args.nodes.split(",")]
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (1 min) before the run")
    figs = []
    for n in sizes:
        fig = measure(n, args.per_node)
        figs.append(fig)
        for label, value in fig.items():
            record(f"{n}n: {label}", value, unit="ms" if "(ms)" in label else "KB" if "KB" in label else "s")
    labels = list(figs[0])
    print(f"{'figure':40}" + "".join(f"{f'{n}n/{n * args.per_node}':>14}" for n in sizes))
    for label in labels:
        print(f"{label:40}" + "".join(f"{f[label]:14.3f}" for f in figs))
    if len(sizes) > 1:
        print(f"\ngrowth {sizes[0]} -> {sizes[-1]} nodes (x{sizes[-1] / sizes[0]:.0f}): figure ratio")
        for label in labels:
            a, b = figs[0][label], figs[-1][label]
            print(f"  {label:38} x{b / a:7.1f}" if a else f"  {label:38} -")


if __name__ == "__main__":
    main()
