"""Dispatcher, task side: which tasks a node must run, and the status it reports back.

Assignments are long-polled: a node sends the signature of the set it has; the manager answers at
once when the set differs, or when the next task event changes it, or after `wait` seconds.
Status reports are applied in one batch, and only when they move a task's state forward.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from shoal.errors import VersionConflict, WatchLost
from shoal.manager.netstate import node_netstate
from shoal.model.task import can_move
from shoal.store.changes import Change
from shoal.store.protocol import Store

REPORT_FIELDS = ("State", "Message", "Err", "ExitCode", "PID", "Timestamp")


# What a node acts on. A status report only moves Status (and the Version and UpdatedAt that come
# with any write): it changes nothing the node must do, so it does not re-send the node its whole
# task list (SwarmKit's TasksEqualStable compares tasks the same way).
UNSTABLE_FIELDS = frozenset({"Status", "Version", "UpdatedAt"})


@dataclass
class Snapshot:
    """The store as of one applied index, shared read-only by every waiting node: the stored
    objects themselves (`Store.list_shared`), never modified here, only serialized."""

    index: int
    tasks: list[dict[str, Any]]
    services: list[dict[str, Any]]
    networks: list[dict[str, Any]]
    nodes: list[dict[str, Any]]
    # task ID -> (Version.Index, hash of its stable fields): carried from one snapshot to the next,
    # so that each task version is hashed once
    stable: dict[str, tuple[int, str]] = field(default_factory=dict)

    def stable_hash(self, task: dict[str, Any]) -> str:
        version = task["Version"]["Index"]
        known = self.stable.get(task["ID"])
        if known is not None and known[0] == version:
            return known[1]
        body = {k: v for k, v in task.items() if k not in UNSTABLE_FIELDS}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
        digest = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
        self.stable[task["ID"]] = (version, digest)
        return digest


_SNAPSHOTS: dict[int, Snapshot] = {}
COALESCE = 0.02  # a burst of events (100 tasks starting) answers once, not once per event


def snapshot(store: Store) -> Snapshot:
    """One snapshot per applied index, shared by every waiting node: copying the task table for
    each node on each event saturated the manager's loop during large changes."""
    index = store.applied_index
    cached = _SNAPSHOTS.get(id(store))
    if cached is None or cached.index != index:
        tasks = store.list_shared("task")
        live = {t["ID"] for t in tasks}
        stable = {tid: known for tid, known in (cached.stable.items() if cached else ()) if tid in live}
        cached = Snapshot(
            index,
            tasks,
            store.list_shared("service"),
            store.list_shared("network"),
            store.list_shared("node"),
            stable,
        )
        _SNAPSHOTS[id(store)] = cached
    return cached


def node_tasks(tasks: list[dict[str, Any]], node_id: str) -> list[dict[str, Any]]:
    return [t for t in tasks if t.get("NodeID") == node_id and t["Status"]["State"] != "pending"]


def signature(snap: Snapshot, tasks: list[dict[str, Any]], extra: Any = None) -> str:
    """Changes when a task of the node is added, removed, or changed in a field it acts on, or when
    `extra` (the node's network state) changes; not on status reports."""
    text = ",".join(f"{t['ID']}:{snap.stable_hash(t)}" for t in sorted(tasks, key=lambda t: t["ID"]))
    text += json.dumps(extra, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


async def assignments(store: Store, node_id: str, since: str | None, wait: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    sub = store.subscribe(loop)
    try:
        while True:
            snap = snapshot(store)
            tasks = node_tasks(snap.tasks, node_id)
            services = snap.services
            net = node_netstate(node_id, snap.tasks, services, snap.networks, snap.nodes)
            sig = signature(snap, tasks, net)
            remaining = deadline - loop.time()
            if sig != since or remaining <= 0:
                names = {s["ID"]: s["Spec"]["Name"] for s in services}
                return {"Signature": sig, "Epoch": store.epoch, "Tasks": tasks, "Services": names, "Net": net}
            if await sub.wait(remaining):
                await asyncio.sleep(COALESCE)
                try:
                    sub.discard()
                except WatchLost:  # fell behind during a burst: watch again, then look again
                    sub.close()
                    sub = store.subscribe(loop)
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
