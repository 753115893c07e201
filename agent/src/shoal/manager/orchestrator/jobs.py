"""The jobs orchestrator (SwarmKit's manager/orchestrator/jobs/{replicated,global}), one pure pass
over one job service, writing into the reconcile pass's Plan.

Tasks of a job are made with DesiredState complete, as SwarmKit makes them (`service ps` shows
`Complete  Running ...` while one runs, `Complete  Complete ...` once done); the scheduler places them
and the worker runs them as any task (model/task.py `wants_run`). A completed task is never restarted
(a task made by an older shoal with DesiredState running gets complete once it completes).
A failed task is restarted per the restart policy (on-failure, Docker's default for jobs). Tasks
of an earlier iteration (before an update) that still run are shut down; the ended ones stay as
history.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from shoal.manager.orchestrator.common import by_age, ended, node_usable
from shoal.manager.orchestrator.plan import Plan
from shoal.manager.orchestrator.restart import handle_ended
from shoal.manager.scheduler import eligible_nodes
from shoal.model.jobs import job_iteration
from shoal.model.task import wants_run

COMPLETE = "complete"


def reconcile_job(
    plan: Plan,
    service: dict[str, Any],
    tasks: list[dict[str, Any]],
    nodes: list[dict[str, Any]],
    nodes_by_id: dict[str, dict[str, Any]],
    now_ns: int,
) -> None:
    iteration = job_iteration(service)
    current: list[dict[str, Any]] = []
    for t in tasks:
        if job_iteration(t) == iteration:
            current.append(t)
        elif _completed(t):
            _mark_complete(plan, t)
        elif wants_run(t):
            plan.shutdown(t, "shutdown", "job iteration ended")  # the job was updated: this run is over
    first_new = len(plan.creates)
    if "ReplicatedJob" in service["Spec"]["Mode"]:
        _replicated_job(plan, service, current, nodes_by_id, now_ns)
    else:
        _global_job(plan, service, current, nodes, nodes_by_id, now_ns)
    for created in plan.creates[first_new:]:  # restarts included: handle_ended creates them
        if created["ServiceID"] == service["ID"]:
            created["JobIteration"] = {"Index": iteration}


def _completed(task: dict[str, Any]) -> bool:
    return task["Status"]["State"] == COMPLETE


def _mark_complete(plan: Plan, task: dict[str, Any]) -> None:
    if task["DesiredState"] == "running":
        plan.shutdown(task, COMPLETE)


def _supervise(
    plan: Plan,
    service: dict[str, Any],
    history: list[dict[str, Any]],
    nodes_by_id: dict[str, dict[str, Any]],
    now_ns: int,
    slot: int | None,
    node_id: str | None,
) -> bool:
    """One unit (slot or node) that has tasks and no completion: keep, replace or restart its newest
    task. True when the unit still occupies a run (a task runs, or a restart is due)."""
    newest = history[-1]
    if not wants_run(newest):
        return False  # given up (restart policy exhausted) or stopped on purpose
    if not ended(newest):
        if newest.get("NodeID") and not node_usable(nodes_by_id.get(newest["NodeID"])):
            plan.shutdown(newest)  # drained or Down: run it elsewhere (a global job: nowhere)
            if slot is not None:
                plan.create(service, slot, None)
                return True
            return False
        return True
    # ended and wanted running: failed, rejected or shut down under it; a job never reruns a completion
    creates = len(plan.creates)
    handle_ended(plan, service, newest, history, now_ns, slot, node_id)
    restarting = len(plan.creates) > creates or wants_run(plan.updates.get(newest["ID"], newest))
    return restarting


def _replicated_job(
    plan: Plan,
    service: dict[str, Any],
    tasks: list[dict[str, Any]],
    nodes_by_id: dict[str, dict[str, Any]],
    now_ns: int,
) -> None:
    """Slots 0..TotalCompletions-1 (SwarmKit's: the docker CLI's job progress counts slots from 0),
    each run until one of its tasks completes; at most MaxConcurrent slots run at once, lowest slots
    first (SwarmKit's replicated job reconciler)."""
    job = service["Spec"]["Mode"]["ReplicatedJob"]
    total, concurrent = int(job["TotalCompletions"]), int(job["MaxConcurrent"])
    slots: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for t in tasks:
        slots[int(t.get("Slot") or 0)].append(t)
    occupied = 0
    for slot, ts in sorted(slots.items()):
        history = by_age(ts)
        done = [t for t in history if _completed(t)]
        for t in done:
            _mark_complete(plan, t)
        if done:
            continue
        if _supervise(plan, service, history, nodes_by_id, now_ns, slot, None):
            occupied += 1
    for slot in range(total):
        if occupied >= concurrent:
            break
        if slot not in slots:
            plan.create(service, slot, None)
            occupied += 1


def _global_job(
    plan: Plan,
    service: dict[str, Any],
    tasks: list[dict[str, Any]],
    nodes: list[dict[str, Any]],
    nodes_by_id: dict[str, dict[str, Any]],
    now_ns: int,
) -> None:
    """One completion on every eligible node, nodes that join later included (SwarmKit's global job
    reconciler). A node that stops being eligible has its running task stopped."""
    eligible = set(eligible_nodes(service, nodes))
    per_node: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in tasks:
        per_node[t.get("NodeID") or ""].append(t)
    for node_id in sorted(eligible | set(per_node)):
        history = by_age(per_node.get(node_id, []))
        done = [t for t in history if _completed(t)]
        for t in done:
            _mark_complete(plan, t)
        if done:
            continue
        if node_id not in eligible:
            for t in history:
                if wants_run(t):
                    plan.shutdown(t, "shutdown", "node not eligible")
            continue
        if not history:
            plan.create(service, None, node_id)
            continue
        _supervise(plan, service, history, nodes_by_id, now_ns, None, node_id)
