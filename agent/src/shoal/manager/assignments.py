"""Dispatcher, task side: which tasks a node must run, and the status it reports back.

Assignments are long-polled: a node sends the signature of the set it has; the manager answers at
once when the set differs, or when the next task event changes it, or after `wait` seconds.
Status reports are applied in one batch, and only when they move a task's state forward.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from shoal.errors import VersionConflict
from shoal.manager.netstate import node_netstate
from shoal.model.task import can_move
from shoal.store.changes import Change
from shoal.store.protocol import Store

REPORT_FIELDS = ("State", "Message", "Err", "ExitCode", "PID", "Timestamp")


@dataclass
class Snapshot:
    index: int
    tasks: list[dict[str, Any]]
    services: list[dict[str, Any]]
    networks: list[dict[str, Any]]
    nodes: list[dict[str, Any]]


_SNAPSHOTS: dict[int, Snapshot] = {}
COALESCE = 0.02  # a burst of events (100 tasks starting) answers once, not once per event


def snapshot(store: Store) -> Snapshot:
    """One read-only copy of the store per applied index, shared by every waiting node: copying the
    task table for each node on each event saturated the manager's loop during large changes."""
    index = store.applied_index
    cached = _SNAPSHOTS.get(id(store))
    if cached is None or cached.index != index:
        cached = Snapshot(index, store.list("task"), store.list("service"), store.list("network"), store.list("node"))
        _SNAPSHOTS[id(store)] = cached
    return cached


def node_tasks(tasks: list[dict[str, Any]], node_id: str) -> list[dict[str, Any]]:
    return [t for t in tasks if t.get("NodeID") == node_id and t["Status"]["State"] != "pending"]


def signature(tasks: list[dict[str, Any]], extra: Any = None) -> str:
    text = ",".join(f"{t['ID']}:{t['Version']['Index']}" for t in sorted(tasks, key=lambda t: t["ID"]))
    text += json.dumps(extra, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


async def assignments(store: Store, node_id: str, since: str | None, wait: float) -> dict[str, Any]:
    sub = store.subscribe(asyncio.get_running_loop())
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            snap = snapshot(store)
            tasks = node_tasks(snap.tasks, node_id)
            services = snap.services
            net = node_netstate(node_id, snap.tasks, services, snap.networks, snap.nodes)
            sig = signature(tasks, net)
            remaining = deadline - loop.time()
            if sig != since or remaining <= 0:
                names = {s["ID"]: s["Spec"]["Name"] for s in services}
                return {"Signature": sig, "Epoch": store.epoch, "Tasks": tasks, "Services": names, "Net": net}
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sub.aget(), remaining)
                await asyncio.sleep(COALESCE)
                while sub.get_nowait() is not None:
                    pass
    finally:
        sub.close()


def status_changes(store: Store, node_id: str, reports: list[dict[str, Any]]) -> list[Change]:
    """Task updates for the reports that move a task of this node forward (others are stale).

    Several reports on one task (accepted, starting, running) fold into one change: a batch may
    change each object once.
    """
    originals: dict[str, dict[str, Any]] = {}
    updated: dict[str, dict[str, Any]] = {}
    for report in reports:
        task_id = str(report.get("ID", ""))
        task = updated.get(task_id) or store.get("task", task_id)
        if task is None or task.get("NodeID") != node_id:
            continue
        state = report.get("State")
        if not isinstance(state, str) or not can_move(task["Status"]["State"], state):
            continue
        originals.setdefault(task_id, task)
        task = copy.deepcopy(task)
        status = task["Status"]
        status.update({k: report[k] for k in ("State", "Message", "Timestamp") if k in report})
        if report.get("Err"):
            status["Err"] = report["Err"]
        container = dict(status.get("ContainerStatus") or {})
        if "PID" in report:
            container["PID"] = report["PID"]
            container["ContainerID"] = task_id
        if "ExitCode" in report:
            container["ExitCode"] = report["ExitCode"]
        status["ContainerStatus"] = container
        task["UpdatedAt"] = report.get("Timestamp") or task["UpdatedAt"]
        updated[task_id] = task
    return [
        Change(
            op="update", kind="task", obj=task, obj_id=task_id, expected_version=originals[task_id]["Version"]["Index"]
        )
        for task_id, task in updated.items()
    ]


async def apply_reports(store: Store, node_id: str, reports: list[dict[str, Any]]) -> int:
    for _ in range(5):  # the orchestrator may have touched a task meanwhile: re-read and retry
        batch = status_changes(store, node_id, reports)
        if not batch:
            return 0
        try:
            await store.acommit(batch)
            return len(batch)
        except VersionConflict:
            await asyncio.sleep(0.02)
    return 0
