"""One pure reconcile pass over every service (SwarmKit's replicated and global orchestrators,
restart supervisor, updater and task reaper), producing a Plan the caller commits in one batch."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from shoal.manager.orchestrator import update
from shoal.manager.orchestrator.common import by_age, ended, live, node_usable
from shoal.manager.orchestrator.jobs import reconcile_job
from shoal.manager.orchestrator.plan import Plan
from shoal.manager.orchestrator.quiet import Quiet, may_stay_quiet, nodes_key, service_key
from shoal.manager.orchestrator.restart import handle_ended
from shoal.manager.scheduler import eligible_nodes
from shoal.model.jobs import is_job
from shoal.model.task import history_to_prune, is_terminal


def reconcile(
    services: list[dict[str, Any]],
    tasks: list[dict[str, Any]],
    nodes: list[dict[str, Any]],
    now: str,
    now_ns: int,
    history_limit: int = 5,
    last_batch: dict[str, int] | None = None,
    watch: update.Watch | None = None,
    quiet: Quiet | None = None,
) -> Plan:
    """`quiet` (kept by the caller between passes): skip the services whose inputs did not change
    since a reconcile of theirs decided nothing (quiet.py)."""
    plan = Plan(now=now)
    last_batch = last_batch if last_batch is not None else {}
    nodes_by_id = {n["ID"]: n for n in nodes}
    by_service: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in tasks:
        by_service[t["ServiceID"]].append(t)
    every_node = nodes_key(nodes) if quiet is not None else None
    skipped = 0
    for service in services:
        mine = by_service.pop(service["ID"], [])
        if is_job(service["Spec"]):  # jobs are never rolled out: no update step
            reconcile_job(plan, service, mine, nodes, nodes_by_id, now_ns)
            _prune(plan, [plan.updates.get(t["ID"], t) for t in mine], history_limit)
            continue
        if quiet is None:
            _reconcile_service(plan, service, mine, nodes, nodes_by_id, now_ns, history_limit, last_batch, watch)
            continue
        key = service_key(service, mine, every_node, history_limit)
        if quiet.is_quiet(service["ID"], key):
            skipped += 1
            continue
        before = plan.mark()
        _reconcile_service(plan, service, mine, nodes, nodes_by_id, now_ns, history_limit, last_batch, watch)
        unchanged = plan.mark() == before and may_stay_quiet(service)
        quiet.remember(service["ID"], key if unchanged else None)
    if quiet is not None:
        quiet.skipped = skipped
        quiet.keep_only({s["ID"] for s in services})
    for orphans in by_service.values():  # tasks of removed services
        for t in orphans:
            if ended(t) or not node_usable(nodes_by_id.get(t.get("NodeID", ""))):
                plan.deletes.add(t["ID"])
            else:
                plan.shutdown(t, "remove", "service removed")
    return plan


def _reconcile_service(
    plan: Plan,
    service: dict[str, Any],
    mine: list[dict[str, Any]],
    nodes: list[dict[str, Any]],
    nodes_by_id: dict[str, dict[str, Any]],
    now_ns: int,
    history_limit: int,
    last_batch: dict[str, int],
    watch: update.Watch | None,
) -> None:
    first_create = len(plan.creates)  # what this service creates is appended from here
    if "Global" in service["Spec"]["Mode"]:
        units = _global(plan, service, mine, nodes, nodes_by_id, now_ns)
    else:
        units = _replicated(plan, service, mine, nodes_by_id, now_ns)
    replacing, batch = update.step(plan, service, units, now_ns, last_batch.get(service["ID"]), mine, watch)
    if batch:
        last_batch[service["ID"]] = now_ns
    _finish_start_first(plan, units, replacing)
    # prune on what this pass leaves behind: the tasks it just ended count as history already
    after = [plan.updates.get(t["ID"], t) for t in mine] + plan.creates[first_create:]
    _prune(plan, after, history_limit)


def _replicated(
    plan: Plan,
    service: dict[str, Any],
    tasks: list[dict[str, Any]],
    nodes_by_id: dict[str, dict[str, Any]],
    now_ns: int,
) -> dict[Any, list[dict[str, Any]]]:
    replicas = int(service["Spec"]["Mode"]["Replicated"].get("Replicas", 1))
    slots: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for t in tasks:
        slots[int(t.get("Slot") or 0)].append(t)
    units: dict[Any, list[dict[str, Any]]] = {}
    for slot in sorted(set(slots) | set(range(1, replicas + 1))):
        history = by_age(slots.get(slot, []))
        running = by_age(live(history))
        if slot > replicas or slot < 1:
            for t in running:
                plan.shutdown(t, "remove", "scaled down")
            continue
        if not running:
            # empty slot: new, or left empty on purpose by the restart policy (refill after a spec change)
            latest = history[-1] if history else None
            if latest is None or latest["DesiredState"] == "remove" or _older_spec(latest, service):
                plan.create(service, slot, None)
            continue
        units[slot] = _keep_newest(plan, running)
        current = units[slot][-1]
        if current.get("NodeID") and not node_usable(nodes_by_id.get(current["NodeID"])):
            # drained or Down node: replace at once, no restart delay (the worker stops it if it comes back)
            plan.shutdown(current)
            plan.create(service, slot, None)
            units[slot] = []
        elif ended(current):
            handle_ended(plan, service, current, history, now_ns, slot, None)
            units[slot] = []
    return units


def _global(
    plan: Plan,
    service: dict[str, Any],
    tasks: list[dict[str, Any]],
    nodes: list[dict[str, Any]],
    nodes_by_id: dict[str, dict[str, Any]],
    now_ns: int,
) -> dict[Any, list[dict[str, Any]]]:
    eligible = set(eligible_nodes(service, nodes))
    per_node: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in tasks:
        per_node[t.get("NodeID") or ""].append(t)
    units: dict[Any, list[dict[str, Any]]] = {}
    for node_id in sorted(eligible | set(per_node)):
        history = by_age(per_node.get(node_id, []))
        running = by_age(live(history))
        if node_id not in eligible:
            for t in running:
                plan.shutdown(t, "shutdown", "node not eligible")
            continue
        if not running:
            latest = history[-1] if history else None
            if latest is None or latest["DesiredState"] == "remove" or _older_spec(latest, service):
                plan.create(service, None, node_id)
            continue
        units[node_id] = _keep_newest(plan, running)
        current = units[node_id][-1]
        if ended(current):
            handle_ended(plan, service, current, history, now_ns, None, node_id)
            units[node_id] = []
    return units


def _keep_newest(plan: Plan, running: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """More than one task should run in a unit only during a start-first update."""
    newest = running[-1]
    if len(running) > 1 and newest["Status"]["State"] == "running":
        for old in running[:-1]:
            plan.shutdown(old)
        return [newest]
    return running


def _finish_start_first(plan: Plan, units: dict[Any, list[dict[str, Any]]], replacing: set[Any]) -> None:
    for unit, ts in units.items():
        if unit in replacing or len(ts) < 2:
            continue
        if ts[-1]["Status"]["State"] == "running":
            for old in ts[:-1]:
                plan.shutdown(old)


def _older_spec(task: dict[str, Any], service: dict[str, Any]) -> bool:
    return int((task.get("SpecVersion") or {}).get("Index", 0)) < int(service["Version"]["Index"])


def _prune(plan: Plan, tasks: list[dict[str, Any]], limit: int) -> None:
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for t in tasks:
        groups[t.get("Slot") or t.get("NodeID")].append(t)
    for group in groups.values():
        for task_id in history_to_prune(group, limit):
            plan.deletes.add(task_id)
    for t in tasks:
        if t["DesiredState"] == "remove" and is_terminal(t["Status"]["State"]):
            plan.deletes.add(t["ID"])
