"""Allocation and scheduling of a plan's tasks, then the store changes for one commit (pure)."""

from __future__ import annotations

import copy
from typing import Any

from shoal.manager.allocator.addresses import used_addresses
from shoal.manager.allocator.endpoints import node_ingress_attachment, publishes_ingress, task_attachments
from shoal.manager.orchestrator.plan import Plan
from shoal.manager.scheduler import schedule
from shoal.manager.scheduler.loads import NodeLoads
from shoal.model.task import is_terminal, wants_run, with_status
from shoal.store.changes import Change

ASSIGNED = "scheduler assigned task to node"


def allocate(
    plan: Plan,
    services: list[dict[str, Any]] | None = None,
    networks: list[dict[str, Any]] | None = None,
    tasks: list[dict[str, Any]] | None = None,
    nodes: list[dict[str, Any]] | None = None,
) -> None:
    """NEW → PENDING with an address on each of the service's networks (SwarmKit's allocator); and an
    ingress address for every node's ingress sandbox while some service publishes through the mesh."""
    services, networks, tasks, nodes = services or [], networks or [], tasks or [], nodes or []
    mesh = any(publishes_ingress(s["Spec"]) for s in services)
    if not plan.creates and not (mesh and any(not n.get("Attachments") for n in nodes)):
        # nothing takes an address: the scan of every task's (O(tasks)) is for passes that do; most
        # passes of a rolling update or a loss wait for status reports and create nothing
        return
    used = used_addresses([*tasks, *plan.creates], services, nodes)
    by_service = {s["ID"]: s for s in services}
    allocated = []
    for task in plan.creates:
        service = by_service.get(task["ServiceID"])
        if service is not None and networks:
            task = {**task, "NetworksAttachments": task_attachments(service, networks, used)}
        allocated.append(with_status(task, "pending", "pending task scheduling", plan.now))
    plan.creates = allocated
    if mesh:
        for node in nodes:
            if not node.get("Attachments"):
                attachment = node_ingress_attachment(networks, used)
                if attachment is not None:
                    plan.node_updates[node["ID"]] = {
                        **copy.deepcopy(node),
                        "Attachments": [attachment],
                        "UpdatedAt": plan.now,
                    }


def place(plan: Plan, tasks: list[dict[str, Any]], nodes: list[dict[str, Any]], loads: NodeLoads | None = None) -> None:
    """Assign every PENDING task that should run, as SwarmKit's scheduler does, in one batch decision.
    `loads` (kept by the caller between passes): the nodes' loads as of the store's `tasks`, caught up
    here, instead of counting every task on its node again."""
    # the stored tasks pending as this plan leaves them, in store order: a dict of every task with
    # the plan laid over it was a fifth of a rolling update's pass at 30,000 tasks
    current: dict[str, dict[str, Any]] = {}
    for t in tasks:
        task_id = t["ID"]
        if (t["Status"]["State"] == "pending" or task_id in plan.updates) and task_id not in plan.deletes:
            now = plan.updates.get(task_id, t)
            if now["Status"]["State"] == "pending":
                current[task_id] = now
    created = {t["ID"]: t for t in plan.creates}
    pending = [t for t in [*current.values(), *plan.creates] if t["Status"]["State"] == "pending" and wants_run(t)]
    if loads is not None:
        loads.refresh(nodes, tasks)
    if not pending:
        return
    if loads is not None:
        decisions = schedule(pending, loads.view(plan.updates, plan.deletes))
    else:
        on_nodes = [
            t
            for t in (plan.updates.get(t["ID"], t) for t in tasks if t["ID"] not in plan.deletes)
            if t.get("NodeID") and not is_terminal(t["Status"]["State"]) and t["Status"]["State"] != "pending"
        ]
        decisions = schedule(pending, nodes, on_nodes)
    placed: dict[str, dict[str, Any]] = {}  # new tasks as decided: plan.creates is rebuilt once, below
    for task_id, node_id in decisions.assignments.items():
        task = with_status(created.get(task_id) or current[task_id], "assigned", ASSIGNED, plan.now)
        task["NodeID"] = node_id  # on with_status's new top level
        _put(plan, placed, task, task_id in created)
    for task_id, reason in decisions.unplaced.items():
        task = created.get(task_id) or current[task_id]
        if task["Status"].get("Err") == reason:
            continue
        task = with_status(task, "pending", "pending task scheduling", plan.now, err=reason)
        _put(plan, placed, task, task_id in created)
    if placed:
        # one pass over the creates, not one per placed task (10,000 replicas: 10^8 steps)
        plan.creates = [placed.get(t["ID"], t) for t in plan.creates]


def _put(plan: Plan, placed: dict[str, dict[str, Any]], task: dict[str, Any], is_new: bool) -> None:
    if is_new:
        placed[task["ID"]] = task
    else:
        plan.updates[task["ID"]] = task


def changes(
    plan: Plan, tasks_by_id: dict[str, dict[str, Any]], services_by_id: dict[str, dict[str, Any]]
) -> list[Change]:
    # creates grouped by node: split into several entries (`split`), each node's new tasks come in
    # one entry, so that each node is answered once for them, not once per entry
    creates = sorted(plan.creates, key=lambda t: t.get("NodeID") or "")
    out = [Change(op="create", kind="task", obj=t) for t in creates]
    for task_id, task in plan.updates.items():
        if task_id in plan.deletes:
            continue
        version = tasks_by_id[task_id]["Version"]["Index"]
        out.append(Change(op="update", kind="task", obj=task, obj_id=task_id, expected_version=version))
    for task_id in sorted(plan.deletes):
        out.append(Change(op="delete", kind="task", obj_id=task_id))
    for node_id, node in plan.node_updates.items():
        out.append(
            Change(op="update", kind="node", obj=node, obj_id=node_id, expected_version=node["Version"]["Index"])
        )
    for service_id, service in plan.service_updates.items():
        version = services_by_id[service_id]["Version"]["Index"]
        out.append(Change(op="update", kind="service", obj=service, obj_id=service_id, expected_version=version))
    return out


# Changes per Raft entry when a pass commits many (SwarmKit's store.Batch splits its transactions the
# same way, at 200): a pass that creates 5,000 tasks was one entry of several MB, pickled twice on
# the leader's event loop in one step (2.5 s at load 7, heartbeats unread meanwhile) and near the
# store's 8 MB bound for one entry. Each entry is all-or-nothing; a pass is not: what a failed entry
# left out, the next pass (which re-reads the store) decides again.
CHANGES_PER_COMMIT = 500


def split(batch: list[Change], size: int = CHANGES_PER_COMMIT) -> list[list[Change]]:
    """`batch` in order, as entries of at most `size` changes."""
    return [batch[i : i + size] for i in range(0, len(batch), size)]
