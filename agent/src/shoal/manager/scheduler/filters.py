"""Scheduler filters and the pipeline that runs them, in SwarmKit's order.

A filter is set up once per task (group) with `set_task`, which says whether it applies at
all, then `check`s nodes. `explain(n)` is the failure text for n nodes, in Docker's words,
so that a pending task tells the user why (`no suitable node (...)`).

Static filters look only at the node and the spec; dynamic ones also at the node's load,
which changes as the scheduler places tasks. The batch path filters every node once and,
after each placement, re-checks only the dynamic filters on the node that took the task.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from shoal.model.constraints import ConstraintError, dig, node_matches, parse_constraints
from shoal.model.network import is_encrypted

from .nodeinfo import NodeInfo, host_ports, reservations


def _nodes(n: int) -> str:
    return "1 node" if n == 1 else f"{n} nodes"


class Filter:
    name = "filter"
    dynamic = False  # True when the verdict depends on the tasks already on the node
    # A static filter's verdict depends only on the node and on `key`, which set_task sets
    # to everything it read from the task: NodeInfo caches verdicts under the keys.
    key: Any = None

    def set_task(self, task: Mapping[str, Any]) -> bool:
        raise NotImplementedError

    def check(self, info: NodeInfo) -> bool:
        raise NotImplementedError

    def explain(self, nodes: int) -> str:
        raise NotImplementedError


class ReadyFilter(Filter):
    """The node is up and its availability lets it take new tasks (not pause, not drain)."""

    name = "ready"

    def set_task(self, task: Mapping[str, Any]) -> bool:
        self.key = "ready"
        return True

    def check(self, info: NodeInfo) -> bool:
        n = info.node
        return dig(n, "Status", "State") == "ready" and dig(n, "Spec", "Availability") == "active"

    def explain(self, nodes: int) -> str:
        return f"{_nodes(nodes)} not available for new tasks"


class ResourceFilter(Filter):
    """Reservations (NanoCPUs, MemoryBytes) fit in what the node has left."""

    name = "resources"
    dynamic = True

    def set_task(self, task: Mapping[str, Any]) -> bool:
        self.nano_cpus, self.memory_bytes = reservations(task)
        return bool(self.nano_cpus or self.memory_bytes)

    def check(self, info: NodeInfo) -> bool:
        return self.nano_cpus <= info.available_nano_cpus and self.memory_bytes <= info.available_memory

    def explain(self, nodes: int) -> str:
        return f"insufficient resources on {_nodes(nodes)}"


class ConstraintFilter(Filter):
    """Placement.Constraints, all of them."""

    name = "constraints"

    def set_task(self, task: Mapping[str, Any]) -> bool:
        exprs = dig(task, "Spec", "Placement", "Constraints")
        if not exprs:
            return False
        self.key = list(exprs)
        try:
            self.constraints = parse_constraints(exprs)
            self.invalid = False
        except ConstraintError:
            # The API rejects these; one that got stored anyway places nothing rather than
            # placing anywhere (SwarmKit ignores it, which could break an exclusion).
            self.constraints, self.invalid = [], True
        return True

    def check(self, info: NodeInfo) -> bool:
        return not self.invalid and node_matches(self.constraints, info.node)

    def explain(self, nodes: int) -> str:
        return f"{_nodes(nodes)} did not satisfy constraints"


def _arch(a: str) -> str:
    return "amd64" if a == "x86_64" else a  # nodes report uname's name, images Go's


class PlatformFilter(Filter):
    """Placement.Platforms (the image's platforms), when the service has any."""

    name = "platform"

    def set_task(self, task: Mapping[str, Any]) -> bool:
        self.platforms = [
            (_arch(p.get("Architecture") or ""), p.get("OS") or "")
            for p in dig(task, "Spec", "Placement", "Platforms") or ()
        ]
        self.key = self.platforms
        return bool(self.platforms)

    def check(self, info: NodeInfo) -> bool:
        plat = dig(info.node, "Description", "Platform") or {}
        arch, os_ = _arch(plat.get("Architecture") or ""), plat.get("OS") or ""
        return any((not a or a == arch) and (not o or o == os_) for a, o in self.platforms)

    def explain(self, nodes: int) -> str:
        return f"unsupported platform on {_nodes(nodes)}"


class HostPortFilter(Filter):
    """Ports published in host mode are free on the node."""

    name = "host ports"
    dynamic = True

    def set_task(self, task: Mapping[str, Any]) -> bool:
        self.ports = host_ports(task)
        return bool(self.ports)

    def check(self, info: NodeInfo) -> bool:
        used = info.host_ports
        return not any(p in used for p in self.ports)

    def explain(self, nodes: int) -> str:
        return f"host-mode port already in use on {_nodes(nodes)}"


class MaxReplicasFilter(Filter):
    """Placement.MaxReplicas: at most that many active tasks of the service per node."""

    name = "max replicas"
    dynamic = True

    def set_task(self, task: Mapping[str, Any]) -> bool:
        self.service_id = task.get("ServiceID") or ""
        self.max = int(dig(task, "Spec", "Placement", "MaxReplicas") or 0)
        return self.max > 0

    def check(self, info: NodeInfo) -> bool:
        return info.service_counts.get(self.service_id, 0) < self.max

    def explain(self, nodes: int) -> str:
        return "max replicas per node limit exceed"  # Docker's wording, count-free


def encrypted_networks(task: Mapping[str, Any]) -> list[str]:
    """Names of the encrypted overlays the task is attached to."""
    return sorted(
        a["Network"]["Spec"]["Name"] for a in task.get("NetworksAttachments") or () if is_encrypted(a["Network"])
    )


class EncryptionFilter(Filter):
    """A task on an encrypted overlay goes only to nodes whose kernel can do IPsec ESP with
    AES-GCM (as they reported at join): never to one where its traffic would be plain (Docker
    would fail the task there; here it stays pending and says why)."""

    name = "encrypted overlay"

    def set_task(self, task: Mapping[str, Any]) -> bool:
        self.key = encrypted_networks(task)
        return bool(self.key)

    def check(self, info: NodeInfo) -> bool:
        return bool(dig(info.node, "Description", "Dataplane", "EncryptedOverlay"))

    def explain(self, nodes: int) -> str:
        return f"no IPsec ESP with AES-GCM for encrypted networks on {_nodes(nodes)}"


def default_filters() -> list[Filter]:
    # SwarmKit's order (its plugin and volume filters have no counterpart here). It matters:
    # a node failing several filters is blamed on the first one.
    return [
        ReadyFilter(),
        ResourceFilter(),
        ConstraintFilter(),
        PlatformFilter(),
        HostPortFilter(),
        MaxReplicasFilter(),
        EncryptionFilter(),
    ]


class Pipeline:
    """The filters enabled for one task; checks nodes and explains failures."""

    def __init__(self, filters: Sequence[Filter] | None = None) -> None:
        self.filters = list(filters) if filters is not None else default_filters()
        self.enabled: list[Filter] = []
        self.static: list[Filter] = []
        self.dynamic: list[Filter] = []
        self.static_key = ""

    def set_task(self, task: Mapping[str, Any]) -> None:
        self.enabled = [f for f in self.filters if f.set_task(task)]
        self.static = [f for f in self.enabled if not f.dynamic]
        self.dynamic = [f for f in self.enabled if f.dynamic]
        self.static_key = json.dumps([[f.name, f.key] for f in self.static])

    def static_ok(self, info: NodeInfo) -> bool:
        """The static filters' verdict, computed once per node and placement (the hot loop
        of a batch would otherwise re-match every constraint on every node for every group)."""
        ok = info.verdicts.get(self.static_key)
        if ok is None:
            if len(info.verdicts) >= 1024:  # placements churn over a leader's life: stay bounded
                info.verdicts.clear()
            ok = info.verdicts[self.static_key] = all(f.check(info) for f in self.static)
        return ok

    def first_failure(self, info: NodeInfo) -> Filter | None:
        for f in self.enabled:
            if not f.check(info):
                return f
        return None

    def process(self, info: NodeInfo) -> bool:
        return self.first_failure(info) is None

    def explain(self, infos: Iterable[NodeInfo]) -> str:
        """Why no node fits: each failing node counted once, against its first failing filter.

        As SwarmKit, the filters failing most nodes come first; ties keep pipeline order.
        """
        counts: dict[Filter, int] = {}
        for info in infos:
            f = self.first_failure(info)
            if f is not None:
                counts[f] = counts.get(f, 0) + 1
        ranked = sorted(((f, counts[f]) for f in self.enabled if f in counts), key=lambda fn: -fn[1])
        return "; ".join(f.explain(n) for f, n in ranked)  # sorted() is stable: ties keep pipeline order


def no_suitable_node(explanation: str) -> str:
    return f"no suitable node ({explanation})" if explanation else "no suitable node"
