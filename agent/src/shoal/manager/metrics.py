"""Scrape-time metrics of a manager: cluster objects by state and its Raft replica.

Read from this manager's replica when Prometheus scrapes, so nothing is kept up to date between
scrapes. Pure counting in `object_families` (unit-tested); the collector adds Raft's figures.
Never exports a field that could hold a secret (join tokens, keys, credentials): only counts,
states and indexes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shoal.manager import assignments

DUMP_FILE = "raft.dump"  # store/config.py's name (importing the store here would load pysyncobj on workers)


def object_families(
    nodes: list[dict[str, Any]], services: list[dict[str, Any]], tasks: list[dict[str, Any]]
) -> list[GaugeMetricFamily]:
    by_node: Counter[tuple[str, str, str]] = Counter()
    for node in nodes:
        spec, status = node.get("Spec") or {}, node.get("Status") or {}
        by_node[(spec.get("Availability", ""), status.get("State", ""), spec.get("Role", ""))] += 1
    node_family = GaugeMetricFamily(
        "shoal_nodes", "Nodes of the cluster by availability, state and role.", labels=["availability", "state", "role"]
    )
    for labels, count in sorted(by_node.items()):
        node_family.add_metric(list(labels), count)
    by_task: Counter[str] = Counter((t.get("Status") or {}).get("State", "") for t in tasks)
    task_family = GaugeMetricFamily("shoal_tasks", "Tasks of the cluster by observed state.", labels=["state"])
    for state, count in sorted(by_task.items()):
        task_family.add_metric([state], count)
    by_mode: Counter[str] = Counter(
        "global" if "Global" in ((s.get("Spec") or {}).get("Mode") or {}) else "replicated" for s in services
    )
    service_family = GaugeMetricFamily("shoal_services", "Services of the cluster by mode.", labels=["mode"])
    for mode in ("replicated", "global"):
        service_family.add_metric([mode], by_mode.get(mode, 0))
    return [node_family, task_family, service_family]


def raft_families(status: dict[str, Any], leading: bool, snapshot_bytes: int) -> list[GaugeMetricFamily]:
    def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, value=value)

    return [
        gauge("shoal_raft_term", "Current Raft term of this manager.", float(status.get("raft_term", 0))),
        gauge("shoal_raft_leader", "1 if this manager is the Raft leader, else 0.", 1.0 if leading else 0.0),
        gauge("shoal_raft_commit_index", "Highest log index known committed.", float(status.get("commit_idx", 0))),
        gauge("shoal_raft_applied_index", "Highest log index applied here.", float(status.get("last_applied", 0))),
        gauge(
            "shoal_raft_has_quorum",
            "1 if this manager can commit writes now (as far as it can tell).",
            1.0 if status.get("has_quorum") else 0.0,
        ),
        gauge(
            "shoal_raft_members",
            "Voting members of the Raft group.",
            float(status.get("partner_nodes_count", 0)) + 1.0,
        ),
        gauge("shoal_raft_snapshot_size_bytes", "Size of this manager's last Raft snapshot on disk.", snapshot_bytes),
    ]


def held_family(held: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "shoal_manager_held",
        "Items this manager holds in memory, by structure: what grows when its memory does.",
        labels=["what"],
    )
    for what, value in sorted(held.items()):
        family.add_metric([what], float(value))
    return family


class ManagerCollector(Collector):
    """Registered once; answers nothing while this node is not a manager."""

    def __init__(self, manager_of: Callable[[], Any]) -> None:
        self.manager_of = manager_of

    def collect(self) -> Iterator[GaugeMetricFamily]:
        manager = self.manager_of()
        if manager is None:
            return
        store = manager.store
        # shared references, read only: a deep copy of 30,000 tasks per scrape held the loop
        yield from object_families(store.list_shared("node"), store.list_shared("service"), store.list_shared("task"))
        yield held_family({**store.held(), **assignments.held(store)})
        raft = store.raft
        if raft is None:
            return
        try:
            status = raft.getStatus()
        except Exception:  # closing: skip Raft this scrape
            return
        dump = Path(store.cfg.data_dir) / DUMP_FILE
        size = dump.stat().st_size if dump.exists() else 0
        yield from raft_families(status, store.is_leader(), size)
        sessions = getattr(manager.dispatcher, "live_sessions", None)
        if callable(sessions):
            family = GaugeMetricFamily(
                "shoal_dispatcher_sessions", "Nodes with a live session to this leader's dispatcher.", value=sessions()
            )
            yield family
