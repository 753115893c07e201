"""Dispatcher, task side: status reports fold per task and only move states forward."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from functools import cached_property
from typing import Any

import pytest

from shoal.errors import Unavailable, VersionConflict
from shoal.manager.assignments import (
    _SNAPSHOTS,
    COALESCE,
    REBUILD_FACTOR,
    JSONPieces,
    Snapshot,
    _index,
    apply_reports,
    assignments,
    encode,
    fresh_in,
    net_only_change,
    node_signature,
    signature,
    snapshot,
    status_changes,
)


class FakeStore:
    """Reads only: the function under test is pure over `get`."""

    def __init__(self, tasks: list[dict[str, Any]]) -> None:
        self.tasks = {t["ID"]: t for t in tasks}

    def get(self, kind: str, obj_id: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.tasks.get(obj_id))

    def get_shared(self, kind: str, obj_id: str) -> dict[str, Any] | None:
        return self.tasks.get(obj_id)


def task(tid: str, node: str, state: str, version: int = 4) -> dict[str, Any]:
    return {
        "ID": tid,
        "NodeID": node,
        "Version": {"Index": version},
        "UpdatedAt": "t0",
        "Status": {"State": state, "Message": "", "Timestamp": "t0"},
    }


def test_reports_on_one_task_fold_into_one_change() -> None:
    store = FakeStore([task("a", "n1", "assigned")])
    reports = [
        {"ID": "a", "State": "accepted", "Message": "accepted", "Timestamp": "t1"},
        {"ID": "a", "State": "starting", "Message": "starting", "Timestamp": "t2"},
        {"ID": "a", "State": "running", "Message": "started", "Timestamp": "t3", "PID": 42},
    ]
    changes = status_changes(store, "n1", reports)
    assert len(changes) == 1
    change = changes[0]
    assert change.expected_version == 4
    assert change.obj["Status"]["State"] == "running"
    assert change.obj["Status"]["ContainerStatus"]["PID"] == 42


def test_reports_never_modify_the_stored_task() -> None:
    """The update shares the stored task's unchanged parts (no deep copy on the leader's loop),
    so it must build new dicts for what it changes: the stored object stays as it was."""
    stored = task("a", "n1", "assigned")
    stored["Spec"] = {"ContainerSpec": {"Image": "shoal/host"}}
    stored["Status"]["ContainerStatus"] = {"ExitCode": 0}
    before = copy.deepcopy(stored)
    store = FakeStore([stored])
    reports = [
        {"ID": "a", "State": "running", "Message": "started", "Timestamp": "t3", "PID": 42},
        {"ID": "a", "State": "failed", "Err": "boom", "Timestamp": "t4", "ExitCode": 3},
    ]
    (change,) = status_changes(store, "n1", reports)
    assert stored == before
    assert change.obj["Spec"] is stored["Spec"]  # shared, not copied
    status = change.obj["Status"]
    assert (status["State"], status["Err"], status["Timestamp"]) == ("failed", "boom", "t4")
    assert status["ContainerStatus"] == {"ExitCode": 3, "PID": 42, "ContainerID": "a"}
    assert change.obj["UpdatedAt"] == "t4"


def test_stale_foreign_and_unknown_reports_are_dropped() -> None:
    store = FakeStore([task("a", "n1", "running"), task("b", "n2", "assigned")])
    reports = [
        {"ID": "a", "State": "starting"},  # backwards
        {"ID": "b", "State": "running"},  # another node's task
        {"ID": "zz", "State": "running"},  # gone
        {"ID": "a", "State": "failed", "Err": "task: non-zero exit (137)", "ExitCode": 137},
    ]
    changes = status_changes(store, "n1", reports)
    assert [(c.obj_id, c.obj["Status"]["State"]) for c in changes] == [("a", "failed")]
    assert changes[0].obj["Status"]["Err"] == "task: non-zero exit (137)"


def snap(tasks: list[dict[str, Any]]) -> Snapshot:
    return Snapshot(1, tasks, [], [], [])


def test_signature_ignores_order_and_status_reports() -> None:
    a = [task("a", "n1", "assigned", 4), task("b", "n1", "assigned", 5)]
    s = snap(a)
    assert signature(s, a) == signature(s, list(reversed(a)))
    # a status report: new Version, UpdatedAt and Status, nothing the node acts on
    reported = dict(a[0], Version={"Index": 9}, UpdatedAt="t9", Status={"State": "running"})
    assert signature(s, [reported, a[1]]) == signature(s, a)


def test_signature_changes_with_what_the_node_acts_on() -> None:
    a = [task("a", "n1", "running", 4), task("b", "n1", "running", 5)]
    s = snap(a)
    base = signature(s, a)
    assert signature(s, [dict(a[0], DesiredState="shutdown", Version={"Index": 6}), a[1]]) != base
    assert signature(s, a[:1]) != base
    assert signature(s, a, {"net": 1}) != base


def test_a_nodes_signature_is_made_once_per_snapshot_and_key_ring() -> None:
    from unit.test_netstate import random_cluster

    tasks, services, nets, nodes = random_cluster(5)
    s = Snapshot(1, tasks, services, nets, nodes)
    mine = s.by_node.get("n0", [])
    first = node_signature(s, "n0", mine, [1])
    assert first == signature(s, mine, [s.net.digest("n0"), [1]])
    s.signatures[("n0", (1,))] = "cached"  # the same node and ring again: nothing is recomputed
    assert node_signature(s, "n0", mine, [1]) == "cached"
    assert node_signature(s, "n0", mine, [1, 2]) not in ("cached", first)  # a rotated ring: a new one
    assert node_signature(s, "n1", s.by_node.get("n1", []), [1]) != first


def test_each_task_version_is_hashed_once() -> None:
    t = task("a", "n1", "running", 4)
    s = snap([t])
    first = s.stable_hash(t)
    s.stable["a"] = (4, "cached")  # the same version again: the cache answers, nothing is rehashed
    assert s.stable_hash(t) == "cached"
    changed = dict(t, DesiredState="shutdown", Version={"Index": 5})
    assert s.stable_hash(changed) not in ("cached", first)
    assert s.stable["a"][0] == 5


def test_a_change_of_the_network_state_alone_is_told_apart() -> None:
    a = [task("a", "n1", "running", 4)]
    s = snap(a)
    base = signature(s, a, "net1")
    assert net_only_change(signature(s, a, "net2"), base)
    assert not net_only_change(signature(s, a[:0], "net2"), base)  # its tasks changed: answer at once
    assert not net_only_change(base, base) and not net_only_change(base, None)


def test_an_answer_encodes_with_its_network_state_spliced_in() -> None:
    answer = {"Signature": "a.b", "Epoch": 3, "Tasks": [{"ID": "t1"}], "Net": JSONPieces.of('{"Networks":{}}')}
    assert json.loads(encode(answer)) == {
        "Signature": "a.b",
        "Epoch": 3,
        "Tasks": [{"ID": "t1"}],
        "Net": {"Networks": {}},
    }
    assert json.loads(encode({"Net": {"LB": []}, "Tasks": []})) == {"Net": {"LB": []}, "Tasks": []}


class IndexStore:
    def __init__(self, index: int) -> None:
        self.applied_index = index


def test_a_snapshot_behind_the_store_is_rebuilt_after_twice_its_cost() -> None:
    s = snap([task("a", "n1", "running")])  # built at index 1
    s.built_at, s.cost = 100.0, 0.5
    assert fresh_in(s, IndexStore(1), 100.2) is None  # current: nothing to wait for
    assert fresh_in(s, IndexStore(2), 100.2) == pytest.approx(0.8)  # rebuilt 1 s after the last build
    assert fresh_in(s, IndexStore(2), 101.5) == 0.0
    s.cost = 0.001  # a small cluster: every index, after COALESCE at most
    assert fresh_in(s, IndexStore(2), 100.0) == pytest.approx(COALESCE)


class WaitingSnapshot(Snapshot):
    """A build that spends its time off the CPU, as a thread waiting for the GIL behind a busy loop."""

    @cached_property
    def by_node(self) -> dict[str, list[dict[str, Any]]]:
        time.sleep(0.3)
        return {}


def test_a_build_is_charged_its_cpu_and_the_next_counts_from_its_end() -> None:
    s = WaitingSnapshot(2, [], [], [], [], built_at=time.monotonic())
    started = time.monotonic()
    _index(s)
    assert s.cost < 0.1  # not the 0.3 s it waited
    assert s.built_at >= started + 0.3
    # the next build may start at most REBUILD_FACTOR x its CPU after this one ended
    assert fresh_in(s, IndexStore(3), s.built_at) == pytest.approx(max(COALESCE, REBUILD_FACTOR * s.cost))


class CommittingStore(FakeStore):
    """Commits fail with a version conflict `conflicts` times (None: always); `lag`: entries its
    replica is behind the leader's commits."""

    def __init__(self, tasks: list[dict[str, Any]], conflicts: int | None = 0, lag: int | None = 0) -> None:
        super().__init__(tasks)
        self.conflicts = conflicts
        self.lag = lag
        self.committed: list[Any] = []

    def replica_lag(self) -> int | None:
        return self.lag

    async def acommit(self, changes: list[Any], **_: Any) -> int:
        if self.conflicts is None or self.conflicts > 0:
            self.conflicts = None if self.conflicts is None else self.conflicts - 1
            raise VersionConflict("task changed")
        self.committed.append(changes)
        return 1


RUNNING = [{"ID": "a", "State": "running", "Message": "started", "PID": 42}]


def test_a_report_that_conflicts_once_is_read_again_and_applied() -> None:
    store = CommittingStore([task("a", "n1", "accepted")], conflicts=1)
    assert asyncio.run(apply_reports(store, "n1", RUNNING)) == 1  # type: ignore[arg-type]
    assert store.committed[0][0].obj["Status"]["State"] == "running"


def test_a_report_never_applied_is_a_503_not_a_silent_drop() -> None:
    """The node takes any answer as delivered and never sends that state again (issue 12)."""
    store = CommittingStore([task("a", "n1", "accepted")], conflicts=None)
    with pytest.raises(Unavailable, match="task status not applied"):
        asyncio.run(apply_reports(store, "n1", RUNNING))  # type: ignore[arg-type]
    assert store.committed == []


def test_a_lagging_replica_that_lacks_the_task_answers_503() -> None:
    for lag in (3, None):  # None: not known current (restarted, or a leader before its epoch applied)
        store = CommittingStore([], lag=lag)
        with pytest.raises(Unavailable, match="replica lacks"):
            asyncio.run(apply_reports(store, "n1", RUNNING))  # type: ignore[arg-type]
    # a current replica (the leader's): a task it lacks is gone, and its report dropped
    assert asyncio.run(apply_reports(CommittingStore([]), "n1", RUNNING)) == 0  # type: ignore[arg-type]


class IdleStore:
    """An empty store that never changes: what `assignments` reads while it waits."""

    applied_index = 1
    epoch = 1

    def list_shared(self, kind: str) -> list[dict[str, Any]]:
        return []

    def read_shared(self, kinds: tuple[str, ...]) -> tuple[int, dict[str, list[dict[str, Any]]]]:
        return self.applied_index, {k: [] for k in kinds}

    def notice(self, loop: asyncio.AbstractEventLoop) -> IdleStore:
        return self

    async def wait(self, timeout: float) -> bool:
        await asyncio.sleep(timeout)
        return False

    def close(self) -> None:
        pass


def test_an_answer_is_not_built_for_a_node_that_stopped_waiting() -> None:
    store: Any = IdleStore()
    answer = asyncio.run(assignments(store, "n1", None, 0.2))
    assert answer is not None and answer["Index"] == 1  # a node still waiting is answered
    assert asyncio.run(assignments(store, "n1", None, 0.2, gone=lambda: True)) is None
    # and one that gives up while the poll waits (nothing changed for it) gets none at the deadline
    polls = [False, True]
    sig = answer["Signature"]
    assert asyncio.run(assignments(store, "n1", sig, 0.2, gone=lambda: polls.pop(0) if polls else True)) is None


class CommitBetweenReads:
    """A store whose one commit (index 2: task "a" assigned to n1) is applied right after the
    first read of the tasks: separate reads of the tasks and of the index straddle it."""

    def __init__(self) -> None:
        self.applied_index = 1
        self.tasks_at = {1: [], 2: [{**task("a", "n1", "assigned", version=2), "DesiredState": "running"}]}

    def list_shared(self, kind: str) -> list[dict[str, Any]]:
        tasks = self.tasks_at[self.applied_index] if kind == "task" else []
        self.applied_index = 2
        return tasks

    def read_shared(self, kinds: tuple[str, ...]) -> tuple[int, dict[str, list[dict[str, Any]]]]:
        index = self.applied_index
        out = {k: list(self.tasks_at[index]) if k == "task" else [] for k in kinds}
        self.applied_index = 2
        return index, out


def test_a_snapshot_is_labelled_with_the_index_its_objects_are_as_of() -> None:
    """Labelled 2 with the tasks of 1, it would never be rebuilt while nothing more is committed,
    and n1 would never be sent task "a"."""
    store: Any = CommitBetweenReads()
    _SNAPSHOTS.pop(id(store), None)  # keyed by id(): none left by an object gone before this one
    first = snapshot(store)
    assert (first.index, first.by_node) == (1, {})
    time.sleep(2 * COALESCE)  # a snapshot behind the store is rebuilt after COALESCE at least
    second = snapshot(store)  # behind the store now: rebuilt, with the commit
    assert second.index == 2 and [t["ID"] for t in second.by_node["n1"]] == ["a"]


class ListStore:
    """The lists of a random cluster at an applied index the test moves."""

    def __init__(self, lists: dict[str, list[dict[str, Any]]]) -> None:
        self.applied_index = 1
        self.lists = lists

    def read_shared(self, kinds: tuple[str, ...]) -> tuple[int, dict[str, list[dict[str, Any]]]]:
        return self.applied_index, {k: list(self.lists[k]) for k in kinds}


def test_a_snapshot_reuses_the_previous_ones_texts_of_unchanged_network_items() -> None:
    """Encoding every item of every overlay again at each snapshot was most of its cost at 30,000
    endpoints: the next snapshot takes the texts of the items whose value did not change."""
    from unit.test_netstate import random_cluster

    tasks, services, nets, nodes = random_cluster(5)
    store: Any = ListStore({"task": tasks, "service": services, "network": nets, "node": nodes})
    _SNAPSHOTS.pop(id(store), None)
    first = snapshot(store)
    before = {n: dict(first.net.network(n)["items"]) for n in first.net.by_net}
    moved = next(t for t in tasks if t["Status"]["State"] == "running" and t.get("NetworksAttachments"))
    store.lists["task"] = [dict(t, DesiredState="shutdown") if t is moved else t for t in tasks]
    store.applied_index = 2
    time.sleep(2 * COALESCE)
    second = snapshot(store)
    assert second.index == 2
    reused = changed = 0
    for net_id, items in before.items():
        for key, text in second.net.network(net_id)["items"].items():
            if key in items and items[key] == text:
                reused += text is items[key]  # the very text, not one encoded again
                changed += text is not items[key]
    assert reused > 0 and changed == 0


def test_the_stable_hash_cache_is_shared_by_snapshots_and_pruned_once_it_holds_many_tasks_gone() -> None:
    from unit.test_netstate import random_cluster

    tasks, services, nets, nodes = random_cluster(5)
    store: Any = ListStore({"task": tasks, "service": services, "network": nets, "node": nodes})
    _SNAPSHOTS.pop(id(store), None)
    first = snapshot(store)
    for t in tasks:
        first.stable_hash(t)
    first.stable.update({f"gone{i}": (1, "x") for i in range(100)})  # under the slack: kept
    store.applied_index = 2
    time.sleep(2 * COALESCE)
    second = snapshot(store)
    assert second.index == 2 and second.stable is first.stable
    second.stable.update({f"gone{i}": (1, "x") for i in range(100, 2000)})  # past it: pruned
    store.applied_index = 3
    time.sleep(2 * COALESCE)
    third = snapshot(store)
    assert third.index == 3 and set(third.stable) == {t["ID"] for t in tasks}
