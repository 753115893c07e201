"""The leader's incremental pass (services skipped while quiet, node loads kept between passes) decides
exactly what a full pass decides, pass after pass, through a seeded run of what a cluster sees: tasks
starting, failing and restarting after a delay, rolling updates with a monitor window, scaling, nodes
drained, going Down and coming back, services removed and created. The objects are versioned as the
store versions them (every write bumps Version.Index), which is all the incremental pass relies on."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from shoal.manager.orchestrator.pipeline import allocate, place
from shoal.manager.orchestrator.plan import Plan
from shoal.manager.orchestrator.quiet import Quiet
from shoal.manager.orchestrator.reconcile import reconcile
from shoal.manager.orchestrator.update import Watch
from shoal.manager.scheduler.loads import NodeLoads
from shoal.model.ids import format_rfc3339
from shoal.model.objects import new_node
from shoal.model.service import service_object, validate_service_spec
from shoal.model.task import with_status

T0 = 1_800_000_000 * 10**9
S = 10**9


class VersionedStore:
    """Tables of objects where every write stores a copy with the next Version.Index."""

    def __init__(self) -> None:
        self.index = 0
        self.tables: dict[str, dict[str, dict[str, Any]]] = {"service": {}, "task": {}, "node": {}}

    def put(self, kind: str, obj: dict[str, Any]) -> None:
        self.index += 1
        stored = copy.deepcopy(obj)
        stored["Version"] = {"Index": self.index}
        self.tables[kind][stored["ID"]] = stored

    def delete(self, kind: str, obj_id: str) -> None:
        self.index += 1
        self.tables[kind].pop(obj_id, None)

    def list(self, kind: str) -> list[dict[str, Any]]:
        return list(self.tables[kind].values())

    def apply(self, plan: Plan) -> None:
        for task in plan.creates:
            self.put("task", task)
        for task in plan.updates.values():
            self.put("task", task)
        for task_id in plan.deletes:
            self.delete("task", task_id)
        for service in plan.service_updates.values():
            self.put("service", service)
        for node in plan.node_updates.values():
            self.put("node", node)


class Leader:
    """One orchestrator's state between passes; incremental or not."""

    def __init__(self, incremental: bool) -> None:
        self.watch = Watch(since_ns=T0)
        self.last_batch: dict[str, int] = {}
        self.quiet = Quiet() if incremental else None
        self.loads = NodeLoads() if incremental else None

    def decide(self, store: VersionedStore, now_ns: int) -> Plan:
        services, tasks, nodes = store.list("service"), store.list("task"), store.list("node")
        before = copy.deepcopy((services, tasks, nodes))
        plan = reconcile(
            services, tasks, nodes, format_rfc3339(now_ns), now_ns, 3, self.last_batch, self.watch, self.quiet
        )
        allocate(plan, services, [], tasks, nodes)
        place(plan, tasks, nodes, self.loads)
        assert (services, tasks, nodes) == before, "a pass modified the stored objects"
        return plan


def summary(plan: Plan) -> dict[str, Any]:
    """A plan without its random task IDs."""
    creates = sorted(
        (
            str(t["ServiceID"]),
            str(t.get("Slot")),
            str(t.get("NodeID")),
            t["Status"]["State"],
            str(t["Status"].get("Err")),
        )
        for t in plan.creates
    )
    return {
        "creates": creates,
        "updates": {k: (t["DesiredState"], t["Status"]["State"], t.get("NodeID")) for k, t in plan.updates.items()},
        "deletes": sorted(plan.deletes),
        "services": {k: (s.get("UpdateStatus") or {}).get("State") for k, s in plan.service_updates.items()},
        "nodes": sorted(plan.node_updates),
        "wake": plan.wake_at_ns,
    }


def new_service(sid: str, mode: dict[str, Any], **template: Any) -> dict[str, Any]:
    spec = {
        "Name": sid,
        "Mode": mode,
        "TaskTemplate": {
            "ContainerSpec": {"Image": "shoal/host"},
            "Resources": {"Reservations": {"NanoCPUs": S // 10, "MemoryBytes": 64 << 20}},
            **template,
        },
        "UpdateConfig": {"Parallelism": 2, "Monitor": 2 * S, "FailureAction": "continue"},
    }
    return service_object(sid, validate_service_spec(spec), format_rfc3339(T0))


def cluster(store: VersionedStore) -> None:
    for i in range(5):
        node = new_node(
            f"node{i}",
            f"host{i}",
            "worker",
            f"10.0.0.{i + 1}",
            format_rfc3339(T0),
            resources={"NanoCPUs": 2 * S, "MemoryBytes": 2 << 30},
        )
        node["Status"]["State"] = "ready"
        store.put("node", node)
    store.put("service", new_service("web", {"Replicated": {"Replicas": 6}}, RestartPolicy={"Delay": 3 * S}))
    store.put("service", new_service("agent", {"Global": {}}))
    store.put("service", new_service("api", {"Replicated": {"Replicas": 4}}, RestartPolicy={"Condition": "on-failure"}))


def workers(store: VersionedStore, rng: random.Random, now_ns: int) -> None:
    """What nodes report: assigned tasks start (mostly), tasks told to stop stop, a few running fail."""
    stamp = format_rfc3339(now_ns)
    nodes = store.tables["node"]
    for task in store.list("task"):
        state, node = task["Status"]["State"], nodes.get(task.get("NodeID") or "")
        if node is None or node["Status"]["State"] == "down":
            continue
        if task["DesiredState"] != "running" and state in ("assigned", "running"):
            store.put("task", with_status(task, "shutdown", "shutdown", stamp))
        elif state == "assigned" and rng.random() < 0.7:
            store.put("task", with_status(task, "running", "started", stamp))
        elif state == "running" and rng.random() < 0.04:
            failed = with_status(task, "failed", "task: non-zero exit (1)", stamp, err="task: non-zero exit (1)")
            store.put("task", failed)


def operator(store: VersionedStore, rng: random.Random, step: int) -> None:
    """One change an operator or the fleet makes now and then."""
    roll = rng.random()
    services, nodes = store.tables["service"], store.list("node")
    if roll < 0.12 and services:  # a rolling update: a new image
        service = copy.deepcopy(rng.choice(sorted(services.values(), key=lambda s: s["ID"])))
        service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] = f"shoal/host:{step}"
        service["PreviousSpec"] = copy.deepcopy(services[service["ID"]]["Spec"])
        store.put("service", service)
    elif roll < 0.2 and "web" in services:  # scale
        service = copy.deepcopy(services["web"])
        service["Spec"]["Mode"]["Replicated"]["Replicas"] = rng.randint(2, 9)
        store.put("service", service)
    elif roll < 0.28:  # drain or activate a node
        node = copy.deepcopy(rng.choice(nodes))
        node["Spec"]["Availability"] = "active" if node["Spec"]["Availability"] == "drain" else "drain"
        store.put("node", node)
    elif roll < 0.36:  # a node goes Down or comes back
        node = copy.deepcopy(rng.choice(nodes))
        node["Status"]["State"] = "ready" if node["Status"]["State"] == "down" else "down"
        store.put("node", node)
    elif roll < 0.4 and "api" in services:
        store.delete("service", "api")
    elif roll < 0.45 and "api" not in services:
        store.put("service", new_service("api", {"Replicated": {"Replicas": 4}}))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_incremental_pass_decides_what_a_full_pass_decides(seed: int) -> None:
    rng = random.Random(seed)
    store = VersionedStore()
    cluster(store)
    full, incremental = Leader(incremental=False), Leader(incremental=True)
    skipped = 0
    for step in range(120):
        now_ns = T0 + step * S // 2
        expected = full.decide(store, now_ns)
        got = incremental.decide(store, now_ns)
        assert summary(got) == summary(expected), f"step {step}"
        assert incremental.quiet is not None
        skipped += incremental.quiet.skipped
        store.apply(expected)
        workers(store, rng, now_ns)
        operator(store, rng, step)
    assert skipped > 50  # quiet services were skipped: the comparison covered the incremental path


def test_node_loads_count_what_the_store_holds_after_each_pass() -> None:
    """The loads kept between passes equal loads built afresh from the store."""
    rng = random.Random(7)
    store = VersionedStore()
    cluster(store)
    leader, loads = Leader(incremental=False), NodeLoads()
    for step in range(60):
        now_ns = T0 + step * S // 2
        store.apply(leader.decide(store, now_ns))
        workers(store, rng, now_ns)
        operator(store, rng, step)
        loads.refresh(store.list("node"), store.list("task"))
        fresh = NodeLoads()
        fresh.refresh(store.list("node"), store.list("task"))
        assert {i: (n.tasks, n.available_memory, n.total) for i, n in loads.infos.items()} == {
            i: (n.tasks, n.available_memory, n.total) for i, n in fresh.infos.items()
        }, f"step {step}"
