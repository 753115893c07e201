"""Placement decisions: SwarmKit's scheduleTaskGroup, as pure functions.

Identical tasks (same service, same placement-relevant spec) form a group that is decided
at once: the filters run once per node, then tasks go one by one to the least-loaded
eligible node, kept in a heap keyed on (tasks of this service, total tasks, node ID).
After each placement only the dynamic filters (resources, host ports, max replicas) are
re-checked, on that one node. Placement preferences (`spread=node.labels.X`) build a tree
of label values above the heaps; each task descends into the branch holding the fewest
tasks of the service, so branches fill evenly whatever their node counts (as SwarmKit,
nodes without the label form a branch of their own, the value "").
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shoal.model.constraints import attribute_getter, dig, spread_descriptors

from .filters import (
    ConstraintFilter,
    Filter,
    Pipeline,
    PlatformFilter,
    ReadyFilter,
    encrypted_networks,
    no_suitable_node,
)
from .nodeinfo import NodeInfo, TaskUse, host_ports, is_active, on_node, reservations, task_use

ASSIGNED_MESSAGE = "scheduler assigned task to node"  # Status.Message of an assigned task, as Docker

NodeEntry = tuple[int, int, str, NodeInfo]  # (service tasks, total tasks, node ID, info): heap order


@dataclass
class Decisions:
    """The outcome of one `schedule` call.

    assignments: task ID -> node ID, for tasks to move to ASSIGNED.
    unplaced: task ID -> reason, for tasks that stay PENDING with Status.Err = reason.
    nodes: node ID -> NodeInfo including the assignments (feed it to the next call).
    """

    assignments: dict[str, str] = field(default_factory=dict)
    unplaced: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, NodeInfo] = field(default_factory=dict)


class _Branch:
    """One label value at one preference level; a leaf holds the heap of eligible nodes."""

    __slots__ = ("children", "heap", "open", "tasks")

    def __init__(self) -> None:
        self.tasks = 0  # active tasks of the service under this branch, eligible nodes or not
        self.children: dict[str, _Branch] = {}
        self.heap: list[NodeEntry] = []
        self.open: list[tuple[int, str, _Branch]] = []  # children that may still have room

    def seal(self) -> None:
        if self.children:
            self.open = [(c.tasks, v, c) for v, c in self.children.items()]
            heapq.heapify(self.open)
            for c in self.children.values():
                c.seal()
        else:
            heapq.heapify(self.heap)


class _Work:
    """State of one `schedule` call: the NodeInfos and the decisions so far.

    Unless in_place, a NodeInfo is copied the first time a task lands on it, so that the
    caller's objects stay as they were and untouched nodes cost nothing.
    """

    def __init__(self, infos: dict[str, NodeInfo], in_place: bool) -> None:
        self.infos = infos
        self.owned: set[str] | None = None if in_place else set()
        self.out = Decisions(nodes=infos)

    def mine(self, info: NodeInfo) -> NodeInfo:
        if self.owned is None or info.id in self.owned:
            return info
        info = self.infos[info.id] = info.copy()
        self.owned.add(info.id)
        return info


class _Group:
    """Places the tasks of one group; `dynamic` filters are re-checked after each placement."""

    def __init__(self, tasks: Sequence[Mapping[str, Any]], dynamic: list[Filter], use: TaskUse, work: _Work):
        self.ids: Iterator[str] = (t["ID"] for t in tasks)
        self.dynamic, self.use, self.work = dynamic, use, work

    def on_leaf(self, leaf: _Branch, n: int) -> int:
        heap, dynamic, use, work = leaf.heap, self.dynamic, self.use, self.work
        assignments = work.out.assignments
        done = 0
        while done < n and heap:
            svc, total, node_id, info = heap[0]
            info = work.mine(info)
            task_id = next(self.ids)
            info.place(task_id, use)
            assignments[task_id] = node_id
            done += 1
            if dynamic and not all(f.check(info) for f in dynamic):
                heapq.heappop(heap)  # full for this group: resources, port or max replicas
            else:
                heapq.heapreplace(heap, (svc + 1, total + 1, node_id, info))
        leaf.tasks += done
        return done

    def one(self, branch: _Branch) -> bool:
        if not branch.children:
            return self.on_leaf(branch, 1) == 1
        heap = branch.open
        while heap:
            tasks, value, child = heap[0]
            if self.one(child):
                heapq.heapreplace(heap, (tasks + 1, value, child))
                branch.tasks += 1
                return True
            heapq.heappop(heap)  # no eligible node left anywhere under this value
        return False


def _placement_key(task: Mapping[str, Any]) -> str:
    """What the filters and the strategy read from a task, apart from its ServiceID."""
    return json.dumps(
        [dig(task, "Spec", "Placement"), reservations(task), sorted(host_ports(task)), encrypted_networks(task)],
        sort_keys=True,
        default=str,
    )


def _groups(tasks: Iterable[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """Group identical tasks, keeping input order inside groups and between them."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    keys: dict[tuple[int, int, int], str] = {}  # tasks of a service usually share spec objects
    for t in tasks:
        ident = (id(t.get("Spec")), id(t.get("Endpoint")), id(t.get("EndpointSpec")))
        k = keys.get(ident)
        if k is None:
            k = keys[ident] = _placement_key(t)
        groups.setdefault((t.get("ServiceID") or "", k), []).append(t)
    return list(groups.values())


def _node_infos(
    nodes: Iterable[NodeInfo | Mapping[str, Any]], node_tasks: Iterable[Mapping[str, Any]]
) -> dict[str, NodeInfo]:
    by_node: dict[str, list[Mapping[str, Any]]] = {}
    for t in node_tasks:
        if on_node(t):
            by_node.setdefault(t["NodeID"], []).append(t)
    infos = [n if isinstance(n, NodeInfo) else NodeInfo(n, by_node.get(n["ID"], ())) for n in nodes]
    infos.sort(key=lambda i: i.id)  # node ID is the last tie-break: keep every pass in that order
    return {i.id: i for i in infos}


def schedule(
    tasks: Iterable[Mapping[str, Any]],
    nodes: Iterable[NodeInfo | Mapping[str, Any]],
    node_tasks: Iterable[Mapping[str, Any]] = (),
    *,
    in_place: bool = False,
) -> Decisions:
    """Decide where tasks waiting for a node go.

    tasks: PENDING tasks to place. A task with a NodeID (global service) is only checked
        against that node. Tasks whose DesiredState is past RUNNING are skipped.
    nodes: NodeInfos or Node dicts; Node dicts are loaded from node_tasks (every task of
        the cluster will do: those on a node between ASSIGNED and RUNNING count).
    in_place: update the given NodeInfos (a leader keeping them between calls). Otherwise
        they are left alone and Decisions.nodes holds copies of the ones that took tasks
        (and the untouched originals, shared).
    """
    work = _Work(_node_infos(nodes, node_tasks), in_place)
    pipeline = Pipeline()
    seen: set[str] = set()
    free: list[Mapping[str, Any]] = []
    for t in tasks:
        if t["ID"] in seen or not is_active(t):
            continue
        seen.add(t["ID"])
        if t.get("NodeID"):
            _check_preassigned(t, pipeline, work)
        else:
            free.append(t)
    for group in _groups(free):
        _schedule_group(group, pipeline, work)
    return work.out


def _check_preassigned(task: Mapping[str, Any], pipeline: Pipeline, work: _Work) -> None:
    # As SwarmKit's processPreassignedTasks: the orchestrator chose the node, the filters
    # still decide whether the task may start there now (paused node, resources, ports).
    info = work.infos.get(task["NodeID"])
    if info is None:
        work.out.unplaced[task["ID"]] = no_suitable_node(ReadyFilter().explain(1))
        return
    pipeline.set_task(task)
    if pipeline.process(info):
        work.mine(info).place(task["ID"], task_use(task))
        work.out.assignments[task["ID"]] = info.id
    else:
        work.out.unplaced[task["ID"]] = no_suitable_node(pipeline.explain([info]))


def _schedule_group(tasks: list[Mapping[str, Any]], pipeline: Pipeline, work: _Work) -> None:
    first = tasks[0]
    service_id = first.get("ServiceID") or ""
    pipeline.set_task(first)
    static_ok, dynamic = pipeline.static_ok, pipeline.dynamic
    getters = [attribute_getter(d) for d in spread_descriptors(dig(first, "Spec", "Placement", "Preferences"))]
    infos = list(work.infos.values())

    # Filter every node once for the whole group, sorting the eligible ones into the leaf
    # of their label values. This loop is the per-group cost: keep it lean.
    root = _Branch()
    for info in infos:
        count = info.service_counts.get(service_id, 0)
        branch = root
        for get in getters:
            branch.tasks += count
            value = get(info.node) if get else ""
            branch = branch.children.get(value) or branch.children.setdefault(value, _Branch())
        branch.tasks += count
        if static_ok(info) and (not dynamic or all(f.check(info) for f in dynamic)):
            branch.heap.append((count, info.total, info.id, info))
    root.seal()

    group = _Group(tasks, dynamic, task_use(first), work)
    if not root.children:
        placed = group.on_leaf(root, len(tasks))
    else:
        placed = 0
        while placed < len(tasks) and group.one(root):
            placed += 1
    if placed < len(tasks):
        reason = no_suitable_node(pipeline.explain(work.infos.values()))
        for t in tasks[placed:]:
            work.out.unplaced[t["ID"]] = reason


def eligible_nodes(service: Mapping[str, Any], nodes: Iterable[NodeInfo | Mapping[str, Any]]) -> list[str]:
    """Node IDs where a global service should have a task (sorted).

    As SwarmKit's global orchestrator: every node that is not drained and not down and
    matches the constraints and platforms. A paused or not-yet-ready node is included; its
    task is created with that NodeID and `schedule` keeps it PENDING with the reason
    ("1 node not available for new tasks") until the node can take it, as Docker shows.
    """
    probe = {"ID": "", "ServiceID": service.get("ID") or "", "Spec": dig(service, "Spec", "TaskTemplate") or {}}
    filters = [f for f in (ConstraintFilter(), PlatformFilter()) if f.set_task(probe)]
    out = []
    for n in nodes:
        info = n if isinstance(n, NodeInfo) else NodeInfo(n)
        node = info.node
        if dig(node, "Status", "State") == "down" or dig(node, "Spec", "Availability") == "drain":
            continue
        if all(f.check(info) for f in filters):
            out.append(info.id)
    return sorted(out)
