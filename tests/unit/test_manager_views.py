"""Heartbeat answers name the leader and the managers without reading every node per beat."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from shoal.manager.dispatcher import Dispatcher
from shoal.manager.manager import ManagerRole


class CountingStore:
    def __init__(self, nodes: list[dict[str, Any]]) -> None:
        self.nodes = nodes
        self.applied_index = 7
        self.reads = 0

    def list_shared(self, kind: str) -> list[dict[str, Any]]:
        self.reads += 1
        return self.nodes

    def leader(self) -> str:
        return "10.0.0.2:2378"


def role(store: CountingStore) -> ManagerRole:
    manager = ManagerRole.__new__(ManagerRole)  # only the views: no Raft
    manager.store = store  # type: ignore[assignment]
    manager._managers = (-1, [])
    return manager


def test_manager_views_read_the_nodes_once_per_applied_index() -> None:
    nodes = [{"ID": f"w{i}"} for i in range(1000)]
    nodes += [
        {"ID": f"m{i}", "ManagerStatus": {"RaftAddr": f"10.0.0.{i}:2378", "Addr": f"10.0.0.{i}:2377"}} for i in (1, 2)
    ]
    store = CountingStore(nodes)
    manager = role(store)
    for _ in range(100):
        assert manager.leader_cluster_addr() == "10.0.0.2:2377"
        assert manager.manager_addrs() == ["10.0.0.1:2377", "10.0.0.2:2377"]
    assert store.reads == 1
    nodes[-1] = {"ID": "m2", "ManagerStatus": {"RaftAddr": "10.0.0.2:2378", "Addr": "10.0.0.9:2377"}}
    store.applied_index = 8  # a committed change: read again
    assert manager.leader_cluster_addr() == "10.0.0.9:2377" and store.reads == 2


class Loops:
    """Stands in for the dispatcher, role manager and orchestrator: a stop takes a while."""

    def __init__(self) -> None:
        self.running = False

    def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        await asyncio.sleep(0.01)
        self.running = False


def test_leadership_lost_and_regained_at_once_leaves_the_leader_loops_running() -> None:
    async def run() -> None:
        store = CountingStore([])
        manager = role(store)
        manager._leading, manager._transition = False, None
        manager.dispatcher, manager.roles, manager.orchestrator = Loops(), Loops(), Loops()  # type: ignore[assignment]
        manager.ca_reconciler = Loops()  # type: ignore[assignment]
        manager.network_keys = Loops()  # type: ignore[assignment]
        store.epoch = 1  # type: ignore[attr-defined]
        for leading in (True, False, True):  # the stop is still running when leadership returns
            store.leading = leading  # type: ignore[attr-defined]
            manager._sync_leader_loops()
            await asyncio.sleep(0)
        await manager._transition  # type: ignore[misc]
        assert manager.orchestrator.running and manager.dispatcher.running  # type: ignore[attr-defined]
        store.leading = False  # type: ignore[attr-defined]
        manager._sync_leader_loops()
        await manager._transition  # type: ignore[misc]
        assert not manager.orchestrator.running  # type: ignore[attr-defined]

    asyncio.run(run())


class NodeStore:
    epoch = 1

    def __init__(self, nodes: list[dict[str, Any]]) -> None:
        self.nodes = nodes

    def list_shared(self, kind: str) -> list[dict[str, Any]]:
        return self.nodes


def test_a_new_term_gives_every_node_a_full_grace_period() -> None:
    node = {"ID": "w1", "Version": {"Index": 3}, "Status": {"State": "ready", "Addr": "10.0.0.5"}}
    dispatcher = Dispatcher(NodeStore([node]), "m1", 5.0)  # type: ignore[arg-type]
    dispatcher.last_seen["w1"] = time.monotonic() - 3600  # heard in an earlier term of this manager
    dispatcher._loop = type("NoLoop", (), {"start": lambda self: None})()  # type: ignore[assignment]
    dispatcher.start()
    assert dispatcher.liveness_round(time.monotonic()) == []  # not Down at once
    # not heard from in this term: twice the 3 periods (SwarmKit's "unknown" state)
    assert dispatcher.liveness_round(time.monotonic() + 29) == []
    assert dispatcher.liveness_round(time.monotonic() + 31)[0].obj["Status"]["State"] == "down"
