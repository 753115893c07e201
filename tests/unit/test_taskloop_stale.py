"""A node never acts on an older replica's assignments after a newer one (a leader kill at 200
simulated nodes: nodes turned to a follower stuck behind, got task sets without the tasks they ran,
stopped them, and the orchestrator replaced them)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from shoal.errors import ShoalError, Unavailable
from shoal.store.leadership import Leadership
from shoal.worker import taskloop
from shoal.worker.taskloop import TaskLoop, newer


def run_assignments_until(loop: TaskLoop, done: Callable[[], bool]) -> None:
    """Run the loop's assignments long poll until `done()` (at most 2 s), then cancel it."""

    async def main() -> None:
        task = asyncio.create_task(loop._assignments())
        for _ in range(200):
            if done():
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_an_answer_is_applied_only_when_its_epoch_and_index_are_not_older() -> None:
    assert newer({"Epoch": 2, "Index": 50}, 2, 40) == (2, 50)
    assert newer({"Epoch": 2, "Index": 30}, 2, 40) is None  # a replica behind, same term
    assert newer({"Epoch": 1, "Index": 90}, 2, 40) is None  # a deposed leader's replica
    assert newer({"Epoch": 3, "Index": 41}, 2, 40) == (3, 41)  # a new term
    assert newer({"Epoch": 2}, 2, 40) == (2, 40)  # a manager from before "Index": epoch only


class Executor:
    driver = None

    def __init__(self) -> None:
        self.applied: list[list[str]] = []

    def apply(self, tasks: list[dict[str, Any]], services: dict[str, str]) -> None:
        self.applied.append([t["ID"] for t in tasks])


class Client:
    """The leader answers first; then the leader is gone and a follower stuck behind answers."""

    def __init__(self, answers: list[dict[str, Any]]) -> None:
        self.answers = answers
        self.calls = 0

    async def call_any(self, addrs: list[str], method: str, path: str, body: Any, **kw: Any) -> tuple[str, Any]:
        self.calls += 1
        if not self.answers:
            await asyncio.sleep(3600)
        return addrs[0], self.answers.pop(0)

    async def poll_any(self, addrs: list[str], method: str, path: str, body: Any, **kw: Any) -> tuple[str, Any]:
        return await self.call_any(addrs, method, path, body)


def test_a_follower_behind_never_makes_a_node_stop_the_tasks_the_leader_gave_it(monkeypatch: Any) -> None:
    monkeypatch.setattr(taskloop, "STALE_PAUSE", 0.01)
    t1, t2 = {"ID": "t1"}, {"ID": "t2"}
    answers = [
        {"Signature": "a", "Epoch": 4, "Index": 900, "Tasks": [t1, t2]},  # the leader
        {"Signature": "b", "Epoch": 4, "Index": 120, "Tasks": [t1]},  # the follower, stuck at 120
        {"Signature": "b", "Epoch": 4, "Index": 120, "Tasks": []},
        {"Signature": "c", "Epoch": 5, "Index": 905, "Tasks": [t1, t2]},  # the new leader
    ]
    executor, client = Executor(), Client(answers)
    loop = TaskLoop(executor, lambda: client, lambda: ["m1", "m2"], lambda: None)  # type: ignore[arg-type]

    run_assignments_until(loop, lambda: client.calls >= 5)
    assert executor.applied == [["t1", "t2"], ["t1", "t2"]]
    assert (loop.epoch, loop.index, loop.signature) == (5, 905, "c")


class Refusing:
    """call() as ClusterClient's: a follower behind answers 503, another manager is unreachable."""

    def __init__(self, outcomes: dict[str, Any]) -> None:
        self.outcomes = outcomes

    async def call(self, addr: str, *args: Any, **kw: Any) -> Any:
        outcome = self.outcomes[addr]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def test_call_any_skips_managers_that_answer_503_but_not_other_errors() -> None:
    from shoal.clusterclient import ClusterClient

    behind = ShoalError("this manager's replica is 4000 entries behind the leader's commits", 503)
    outcomes = {"m1": Unavailable("cannot reach manager m1"), "m2": behind, "m3": {"ok": True}}
    client = Refusing(outcomes)
    assert asyncio.run(ClusterClient.call_any(client, ["m1", "m2", "m3"], "POST", "/x")) == ("m3", {"ok": True})  # type: ignore[arg-type]
    outcomes["m2"] = ShoalError("bad request", 400)
    try:
        asyncio.run(ClusterClient.call_any(client, ["m1", "m2", "m3"], "POST", "/x"))  # type: ignore[arg-type]
    except ShoalError as exc:
        assert exc.status == 400
    else:
        raise AssertionError("a 400 is an answer, not a manager to skip")


class Sync:
    def __init__(self, leader: bool, status: dict[str, int | None]) -> None:
        self.leader, self.status = leader, status

    def _isLeader(self) -> bool:
        return self.leader

    def getStatus(self) -> dict[str, int]:
        return self.status


def test_a_follower_far_behind_the_leaders_commits_refuses_assignments_with_503() -> None:
    from shoal.manager.manager import REPLICA_MAX_LAG, ManagerRole
    from shoal.store.replicated import ReplicatedStore

    store = ReplicatedStore.__new__(ReplicatedStore)
    manager = ManagerRole.__new__(ManagerRole)
    manager.store = store
    store._sync = Sync(False, {"leader_commit_idx": 5000, "last_applied": 5000 - REPLICA_MAX_LAG})
    manager.check_replica_current()  # a follower applying a burst: current enough
    store._sync = Sync(False, {"leader_commit_idx": 5000, "last_applied": 1200})  # a snapshot it cannot load
    try:
        manager.check_replica_current()
    except Unavailable as exc:
        assert exc.status == 503 and exc.message == "this manager's replica is 3800 entries behind the leader's commits"
    else:
        raise AssertionError("a follower 3,800 entries behind answered assignments")
    store._leadership = Leadership("m1", None, None)  # type: ignore[arg-type]
    store._leadership.leading = True
    store._sync = Sync(True, {"leader_commit_idx": 0, "last_applied": 1200})
    manager.check_replica_current()  # a leader whose epoch is applied has every committed entry


def refusal(manager: Any) -> str:
    try:
        manager.check_replica_current()
    except Unavailable as exc:
        assert exc.status == 503
        return exc.message
    raise AssertionError("a replica not known current answered assignments")


def test_a_replica_not_known_current_refuses_assignments_with_503() -> None:
    """A restarted manager applies only up to the commit index its journal saved (once a second):
    answered from that, a restarted node finds its newest task missing and stops it, then starts
    it again once the leader's commit brings it back (a new process for the same task)."""
    from shoal.manager.manager import ManagerRole
    from shoal.store.replicated import ReplicatedStore

    store = ReplicatedStore.__new__(ReplicatedStore)
    manager = ManagerRole.__new__(ManagerRole)
    manager.store = store
    store._leadership = Leadership("m1", None, None)  # type: ignore[arg-type]
    store._sync = Sync(False, {"leader_commit_idx": None, "last_applied": 12})  # no leader spoke yet
    assert refusal(manager) == "this manager's replica is not known to be current yet (it is starting or taking over)"
    store._sync = Sync(True, {"leader_commit_idx": 12, "last_applied": 12})  # elected, its epoch not applied
    assert refusal(manager) == "this manager's replica is not known to be current yet (it is starting or taking over)"
    store._leadership.leading = True
    manager.check_replica_current()
    store._sync = Sync(False, {"leader_commit_idx": 14, "last_applied": 14})  # a follower a leader spoke to
    manager.check_replica_current()
