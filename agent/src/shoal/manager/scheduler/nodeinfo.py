"""NodeInfo: what the scheduler knows about one node and the tasks already on it.

Shaped after SwarmKit's scheduler/nodeinfo.go. A task on a node holds resources and host
ports from ASSIGNED until it reaches a terminal state, but only counts for spreading and
MaxReplicas while its *desired* state is still RUNNING or earlier: a task being shut down
(stop-first update, scale down) is on its way out and must not push new replicas away.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from shoal.model.constraints import dig
from shoal.model.task import TASK_STATES  # one order of task states, shared with the model

_ORDER = {s: i for i, s in enumerate(TASK_STATES)}
_ASSIGNED = _ORDER["assigned"]
_RUNNING = _ORDER["running"]

HostPort = tuple[str, int]  # (protocol, published port)


def on_node(task: Mapping[str, Any]) -> bool:
    """True when the task occupies its node: it has one and is between ASSIGNED and RUNNING.

    NEW/PENDING tasks with a NodeID (global services) are not there yet: the scheduler
    still has to confirm that they fit, so they go through `schedule` instead.
    """
    state = _ORDER.get(dig(task, "Status", "State") or "new", 0)
    return bool(task.get("NodeID")) and _ASSIGNED <= state <= _RUNNING


def is_active(task: Mapping[str, Any]) -> bool:
    """Desired state RUNNING or earlier, or a job's COMPLETE while it has not completed: the task counts
    for spread and MaxReplicas (and its node's resources)."""
    desired = task.get("DesiredState") or "running"
    if desired == "complete":
        return _ORDER.get(dig(task, "Status", "State") or "new", 0) <= _RUNNING
    return _ORDER.get(desired, _RUNNING) <= _RUNNING


def reservations(task: Mapping[str, Any]) -> tuple[int, int]:
    """(NanoCPUs, MemoryBytes) reserved by the task's spec."""
    r = dig(task, "Spec", "Resources", "Reservations") or {}
    return int(r.get("NanoCPUs") or 0), int(r.get("MemoryBytes") or 0)


def host_ports(task: Mapping[str, Any]) -> frozenset[HostPort]:
    """Published ports in host mode that the task needs on its node.

    Docker's Task has no endpoint; like SwarmKit's, ours carries the service's `Endpoint`
    (allocated ports) or, before allocation, its `EndpointSpec`. PublishedPort 0 means
    "pick any free port on the node", which cannot conflict.
    """
    ports = dig(task, "Endpoint", "Ports") or dig(task, "EndpointSpec", "Ports") or ()
    return frozenset(
        ((p.get("Protocol") or "tcp").lower(), int(p["PublishedPort"]))
        for p in ports
        if p.get("PublishMode") == "host" and p.get("PublishedPort")
    )


class TaskUse(NamedTuple):
    """What one task takes from its node, kept so that removing it gives back exactly that."""

    service_id: str
    active: bool
    nano_cpus: int
    memory_bytes: int
    ports: frozenset[HostPort]


def task_use(task: Mapping[str, Any]) -> TaskUse:
    """What the task will take from the node it goes to."""
    return TaskUse(task.get("ServiceID") or "", is_active(task), *reservations(task), host_ports(task))


class NodeInfo:
    """A node (Docker Node dict, never modified: make a new NodeInfo when the node changes)
    plus the load of its tasks. Cheap to copy."""

    __slots__ = (
        "available_memory",
        "available_nano_cpus",
        "host_ports",
        "id",
        "node",
        "service_counts",
        "tasks",
        "total",
        "verdicts",
    )

    def __init__(self, node: Mapping[str, Any], tasks: Iterable[Mapping[str, Any]] = ()) -> None:
        self.node = node
        self.id: str = node["ID"]
        res = dig(node, "Description", "Resources") or {}
        self.available_nano_cpus: int = int(res.get("NanoCPUs") or 0)
        self.available_memory: int = int(res.get("MemoryBytes") or 0)
        self.tasks: dict[str, TaskUse] = {}
        self.service_counts: dict[str, int] = {}  # active tasks per ServiceID
        self.total = 0  # active tasks of every service
        self.host_ports: dict[HostPort, int] = {}  # port -> number of tasks holding it
        # Static filter verdicts by placement; they depend on `node` only, so copies share them.
        self.verdicts: dict[str, bool] = {}
        for t in tasks:
            if on_node(t) and t.get("NodeID") == self.id:
                self.add_task(t)

    def __repr__(self) -> str:
        return (
            f"NodeInfo({self.id!r}, total={self.total}, cpus={self.available_nano_cpus}, mem={self.available_memory})"
        )

    def copy(self) -> NodeInfo:
        c = NodeInfo.__new__(NodeInfo)
        c.node, c.id, c.total, c.verdicts = self.node, self.id, self.total, self.verdicts
        c.available_nano_cpus, c.available_memory = self.available_nano_cpus, self.available_memory
        c.tasks, c.service_counts, c.host_ports = dict(self.tasks), dict(self.service_counts), dict(self.host_ports)
        return c

    def with_node(self, node: Mapping[str, Any]) -> NodeInfo:
        """The same tasks on an updated Node (availability, labels, resources changed)."""
        fresh = NodeInfo(node)
        for task_id, use in self.tasks.items():
            fresh.place(task_id, use)
        return fresh

    def add_task(self, task: Mapping[str, Any]) -> bool:
        """Account for a task on this node (or an update of one). Returns True if anything changed."""
        use = task_use(task)
        old = self.tasks.get(task["ID"])
        if old == use:
            return False
        if old is not None:
            self._release(task["ID"])
        self.place(task["ID"], use)
        return True

    def remove_task(self, task_id: str) -> bool:
        """Forget a task (it reached a terminal state, moved, or was deleted)."""
        if task_id not in self.tasks:
            return False
        self._release(task_id)
        return True

    def place(self, task_id: str, use: TaskUse) -> None:
        """Add a task known not to be here yet (the scheduler's fast path)."""
        self.tasks[task_id] = use
        self.available_nano_cpus -= use.nano_cpus
        self.available_memory -= use.memory_bytes
        for p in use.ports:
            self.host_ports[p] = self.host_ports.get(p, 0) + 1
        if use.active:
            self.total += 1
            self.service_counts[use.service_id] = self.service_counts.get(use.service_id, 0) + 1

    def _release(self, task_id: str) -> None:
        use = self.tasks.pop(task_id)
        self.available_nano_cpus += use.nano_cpus
        self.available_memory += use.memory_bytes
        for p in use.ports:
            left = self.host_ports.get(p, 0) - 1
            if left > 0:
                self.host_ports[p] = left
            else:
                self.host_ports.pop(p, None)
        if use.active:
            self.total -= 1
            left = self.service_counts.get(use.service_id, 0) - 1
            if left > 0:
                self.service_counts[use.service_id] = left
            else:
                self.service_counts.pop(use.service_id, None)


def build_node_infos(nodes: Iterable[Mapping[str, Any]], tasks: Iterable[Mapping[str, Any]] = ()) -> list[NodeInfo]:
    """NodeInfos for Node dicts, ordered by node ID, loaded with the tasks that are on them."""
    by_node: dict[str, list[Mapping[str, Any]]] = {}
    for t in tasks:
        if on_node(t):
            by_node.setdefault(t["NodeID"], []).append(t)
    return sorted((NodeInfo(n, by_node.get(n["ID"], ())) for n in nodes), key=lambda i: i.id)
