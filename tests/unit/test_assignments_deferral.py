"""A node's own new tasks are not held up by a large change of an overlay it is on
(manager/assignments.py, DEFER_NET_BYTES): the answer that brings them holds the change back and
says so in its signature ("TASKS.deferred"), and the node's next poll gets it, network-only and
coalesced. Driven end to end through `assignments()` polls, the node applying each answer as a
worker does (model/taskdelta.py, model/netdelta.py)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from shoal.manager import assignments
from shoal.manager.netstate import NetView
from shoal.model.netdelta import Held
from shoal.model.task import with_status
from shoal.model.taskdelta import HeldTasks, tasks_version
from unit.test_netdelta import full
from unit.test_netstate import NOW, random_cluster

SEED, NODE = 34, "n4"  # a cluster with six running tasks elsewhere on the node's overlays
WAIT = 1.0  # each poll's long-poll bound; every answer here must come well before it
COALESCED = 0.02  # how long a change of a node's network state alone waits for more


class MemoryStore:
    """The store as `assignments()` reads it, in memory: shared lists at an applied index that
    `put` moves, and a notice that never fires (a poll looks again when its pause ends)."""

    epoch = 1

    def __init__(
        self,
        tasks: list[dict[str, Any]],
        services: list[dict[str, Any]],
        nets: list[dict[str, Any]],
        nodes: list[dict[str, Any]],
    ) -> None:
        self.applied_index = 1
        self.lists: dict[str, list[dict[str, Any]]] = {
            "task": tasks,
            "service": services,
            "network": nets,
            "node": nodes,
        }

    def put_tasks(self, tasks: list[dict[str, Any]]) -> None:
        """A commit that changes tasks."""
        self.lists["task"] = tasks
        self.applied_index += 1

    def read_shared(self, kinds: tuple[str, ...]) -> tuple[int, dict[str, list[dict[str, Any]]]]:
        return self.applied_index, {k: list(self.lists.get(k, [])) for k in kinds}

    def list_shared(self, kind: str) -> list[dict[str, Any]]:
        return self.lists.get(kind, [])

    def get(self, kind: str, obj_id: str) -> dict[str, Any] | None:
        return None  # no network key ring, no cluster object

    def view(self) -> NetView:
        """The network state as of now, from scratch (what a node asking for whole sets gets)."""
        return NetView(self.lists["task"], self.lists["service"], self.lists["network"], self.lists["node"])

    def notice(self, loop: asyncio.AbstractEventLoop) -> MemoryStore:
        return self

    async def wait(self, timeout: float) -> bool:
        await asyncio.sleep(timeout)
        return False

    def discard(self) -> None:
        pass

    def close(self) -> None:
        pass


class Node:
    """A worker's side: the task list and the network versions it holds, and the signature it
    sends as `since`."""

    def __init__(self, node_id: str) -> None:
        self.id = node_id
        self.tasks = HeldTasks()
        self.nets = Held()
        self.since: str | None = None
        self.state: dict[str, Any] | None = None

    async def poll(self, store: MemoryStore) -> tuple[dict[str, Any], float]:
        """One assignments poll, its answer as the node receives it (encoded, then parsed) and
        applied; and the seconds it took."""
        t0 = time.monotonic()
        answer = await asyncio.wait_for(
            assignments.assignments(
                store,  # type: ignore[arg-type]
                self.id,
                self.since,
                WAIT,
                have=self.nets.have(),  # {} at first: every network whole
                task_increments=True,
            ),
            timeout=2 * WAIT,
        )
        took = time.monotonic() - t0
        assert answer is not None
        got = json.loads(assignments.encode(answer))
        assert "Tasks" not in got and "Net" not in got
        assert self.tasks.apply(got["TaskParts"], tasks_version(got["Signature"])) is not None
        self.state = self.nets.apply(got["NetParts"])
        assert self.state is not None  # every network it is on is held, at some version
        self.since = got["Signature"]
        return got, took

    def task_ids(self) -> set[str]:
        return set(self.tasks.tasks)


def forget(store: MemoryStore) -> None:
    """Nothing remembered under this store's id() from an object gone before it."""
    for kept in (assignments._SNAPSHOTS, assignments._NET_HISTORY, assignments._TASKS_SENT):
        kept.pop(id(store), None)


def own_ids(store: MemoryStore, node_id: str) -> set[str]:
    """The node's tasks as the whole list says (assigned to it, past pending)."""
    return {t["ID"] for t in store.lists["task"] if t.get("NodeID") == node_id and t["Status"]["State"] != "pending"}


def burst(
    tasks: list[dict[str, Any]], node_id: str, nets: set[str], taken: set[str]
) -> tuple[list[dict[str, Any]], str]:
    """A new task for `node_id` (one running elsewhere, on networks it holds, moved to it: a new
    version) while two other tasks on those networks fail: its overlays change."""

    def on_held(t: dict[str, Any]) -> bool:
        attached = {a["Network"]["ID"] for a in t.get("NetworksAttachments") or []}
        return bool(attached) and attached <= nets

    others = [
        t
        for t in tasks
        if t["ID"] not in taken
        and t.get("NodeID") not in (node_id, "gone")
        and t["Status"]["State"] == "running"
        and t.get("DesiredState", "running") == "running"
        and on_held(t)
    ]
    assert len(others) >= 3, "the cluster has too few running tasks on the node's overlays"
    moved, failed = others[0], {t["ID"] for t in others[1:3]}
    taken |= {moved["ID"], *failed}
    out = []
    for t in tasks:
        if t is moved:
            t = dict(t, NodeID=node_id, Version={"Index": t["Version"]["Index"] + 100})
        elif t["ID"] in failed:
            t = with_status(t, "failed", "x", NOW)
        out.append(t)
    return out, moved["ID"]


def node_on_overlays(monkeypatch: pytest.MonkeyPatch) -> tuple[MemoryStore, Node, set[str]]:
    """Every network change is large, coalescing is short; a node on overlays that holds its task
    list and its networks (first poll, whole)."""
    monkeypatch.setattr(assignments, "DEFER_NET_BYTES", 0)
    monkeypatch.setattr(assignments, "NET_COALESCE_PER_ENDPOINT", 0.0)
    monkeypatch.setattr(assignments, "NET_COALESCE_PER_NODE", COALESCED / 5)  # 5 nodes
    monkeypatch.setattr(assignments, "NET_COALESCE_MAX", 0.05)
    tasks, services, nets, nodes = random_cluster(SEED)
    store = MemoryStore(tasks, services, nets, nodes)
    forget(store)
    node = Node(NODE)
    first, _ = asyncio.run(node.poll(store))
    assert first["TaskParts"]["From"] is None and not first["Signature"].endswith(f".{assignments.DEFERRED}")
    held = set(node.nets.have())
    assert {"appnet", "dbnet"} & held, held  # on an overlay
    assert node.state == full(store.view(), node.id)
    return store, node, held


def changed_networks(store: MemoryStore, node: Node) -> set[str]:
    """The networks the node holds at a version that is no longer current."""
    view = store.view()
    return {n for n, version in node.nets.have().items() if view.network(n)["digest"] != version}


def deferred_answer(store: MemoryStore, node: Node, held: set[str], taken: set[str]) -> dict[str, Any]:
    """The node's new task, polled for: sent at once, the overlays' change held back."""
    before = node.since
    assert before is not None
    tasks, moved = burst(store.lists["task"], node.id, held, taken)
    store.put_tasks(tasks)
    answer, took = asyncio.run(node.poll(store))
    assert answer["Signature"].endswith(f".{assignments.DEFERRED}")
    assert answer["Signature"] == assignments.deferred_signature(answer["Signature"])
    assert tasks_version(answer["Signature"]) != tasks_version(before)  # its tasks changed
    assert answer["TaskParts"]["From"] == tasks_version(before)
    assert moved in {t["ID"] for t in answer["TaskParts"]["Set"]}
    assert node.task_ids() == own_ids(store, node.id)  # it runs its new task now
    behind = changed_networks(store, node)
    assert behind, "the burst changed none of the node's networks"
    assert not behind & set(answer["NetParts"]["Changes"])  # held back: it keeps the version it holds
    assert node.state != full(store.view(), node.id)
    assert took < WAIT / 2  # not held up by the network change
    return answer


def test_a_deferred_network_change_follows_in_the_next_network_only_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    store, node, held = node_on_overlays(monkeypatch)
    deferred = deferred_answer(store, node, held, set())
    behind = {n: node.nets.have()[n] for n in changed_networks(store, node)}
    # the next poll (since: the deferred signature; have: the versions it holds) sees a change of
    # its network state alone: answered once coalesced, well before the poll's bound
    answer, took = asyncio.run(node.poll(store))
    assert COALESCED / 2 <= took < WAIT / 2
    assert not answer["Signature"].endswith(f".{assignments.DEFERRED}")
    assert tasks_version(answer["Signature"]) == tasks_version(deferred["Signature"])
    assert answer["TaskParts"] == {"From": tasks_version(deferred["Signature"]), "Set": [], "Del": []}
    changes = answer["NetParts"]["Changes"]
    assert set(behind) <= set(changes)
    assert all(changes[n]["From"] == version for n, version in behind.items())  # increments, not wholes
    assert changed_networks(store, node) == set()
    assert node.state == full(store.view(), node.id)  # exactly the full network state
    assert node.task_ids() == own_ids(store, node.id)
    snap = assignments._SNAPSHOTS[id(store)]  # the snapshot the answers came from says the same
    assert node.state == full(snap.net, node.id)


def test_an_answer_after_a_deferred_one_is_not_deferred_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """New tasks again right after a deferred answer: sent with every network change, held back
    ones included, so that a node whose tasks keep changing is not left on an old network state."""
    store, node, held = node_on_overlays(monkeypatch)
    taken: set[str] = set()
    deferred = deferred_answer(store, node, held, taken)
    tasks, moved = burst(store.lists["task"], node.id, held, taken)
    store.put_tasks(tasks)
    behind = {n: node.nets.have()[n] for n in changed_networks(store, node)}
    answer, took = asyncio.run(node.poll(store))
    assert took < WAIT / 2
    assert not answer["Signature"].endswith(f".{assignments.DEFERRED}")
    assert tasks_version(answer["Signature"]) != tasks_version(deferred["Signature"])  # not network-only
    assert moved in {t["ID"] for t in answer["TaskParts"]["Set"]}
    changes = answer["NetParts"]["Changes"]
    assert set(behind) <= set(changes)
    assert all(changes[n]["From"] == version for n, version in behind.items())
    assert node.state == full(store.view(), node.id)
    assert node.task_ids() == own_ids(store, node.id)
