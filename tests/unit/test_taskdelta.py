"""Task lists as increments (model/taskdelta.py): a node that applies the changes it is sent holds
exactly the task list a node asking for whole lists gets (each task as of its last change in a
field the node acts on), whatever answers it missed or which manager answered."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

from shoal.manager import assignments
from shoal.manager.assignments import TASK_HISTORY, UNSTABLE_FIELDS, Snapshot, encode, signature, task_answer
from shoal.model.taskdelta import HeldTasks, change, tasks_version
from shoal.worker.taskloop import TaskLoop
from unit.test_netdelta import churn, install
from unit.test_netstate import random_cluster
from unit.test_taskloop_stale import run_assignments_until


class FakeStore:
    """Only its identity matters: the task lists sent are remembered per store (per manager)."""


def answer(store: FakeStore, snap: Snapshot, node_id: str, since: str | None) -> dict[str, Any]:
    """The task part of an answer as the node receives it (encoded, then parsed)."""
    tasks = snap.by_node.get(node_id, [])
    sig = signature(snap, tasks)
    return json.loads(encode({"Signature": sig, **task_answer(store, snap, node_id, tasks, sig, since)}))


def acted_on(task: dict[str, Any]) -> str:
    """The fields of a task the node acts on (not the snapshot's hash cache: the point is to compare)."""
    return json.dumps({k: v for k, v in task.items() if k not in UNSTABLE_FIELDS}, sort_keys=True, default=str)


def reference(snap: Snapshot, node_id: str) -> dict[str, str]:
    """What the whole list says."""
    return {t["ID"]: acted_on(t) for t in snap.by_node.get(node_id, [])}


def held_as(held: list[dict[str, Any]]) -> dict[str, str]:
    return {t["ID"]: acted_on(json.loads(json.dumps(t))) for t in held}


def desire(rng: random.Random, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Some tasks are told to stop, or to run again, on the node they are on (a field it acts on)."""
    out = []
    for t in tasks:
        if rng.random() < 0.15:  # a write: a new version
            t = dict(t, DesiredState=rng.choice(["running", "shutdown"]), Version={"Index": t["Version"]["Index"] + 1})
        out.append(t)
    return out


def test_increments_applied_equal_the_whole_list_on_random_clusters() -> None:
    for seed in range(30):
        rng = random.Random(seed)
        tasks, services, nets, nodes = random_cluster(seed)
        managers = [FakeStore(), FakeStore()]  # a leader and a follower, each with its own history
        held = {n["ID"]: HeldTasks() for n in nodes}
        since: dict[str, str | None] = {n["ID"]: None for n in nodes}
        increments = 0
        for step in range(10):
            store = rng.choice(managers)
            snap = install(store, tasks, services, nets, nodes, step)  # type: ignore[arg-type]
            for node in nodes:
                nid = node["ID"]
                if rng.random() < 0.3:
                    continue  # this node skips an answer: it is further behind at the next one
                got = answer(store, snap, nid, since[nid])
                parts = got["TaskParts"]
                assert "Tasks" not in got
                if parts["From"] is not None:
                    increments += 1
                    assert parts["From"] == tasks_version(since[nid])
                applied = held[nid].apply(parts, tasks_version(got["Signature"]))
                assert applied is not None, (seed, step, nid)
                fresh = Snapshot(step, tasks, services, nets, nodes)  # hashes from scratch
                assert held_as(applied) == reference(fresh, nid), (seed, step, nid)
                since[nid] = got["Signature"]
            tasks = desire(rng, churn(rng, tasks))
        assert increments > 0, seed  # the property held over changes, not only over whole lists


def test_a_task_changed_only_in_its_status_is_not_sent_again() -> None:
    tasks, services, nets, nodes = random_cluster(3)
    store = FakeStore()
    snap = install(store, tasks, services, nets, nodes, 1)  # type: ignore[arg-type]
    node = next(n["ID"] for n in nodes if snap.by_node.get(n["ID"]))
    first = answer(store, snap, node, None)
    held = HeldTasks()
    assert held.apply(first["TaskParts"], tasks_version(first["Signature"])) is not None
    assert first["TaskParts"]["From"] is None and len(first["TaskParts"]["Set"]) == len(snap.by_node[node])
    mine = {t["ID"] for t in snap.by_node[node]}
    reported = [dict(t, Status={**t["Status"], "Message": "reported"}) if t["ID"] in mine else t for t in tasks]
    snap = install(store, reported, services, nets, nodes, 2)  # type: ignore[arg-type]
    again = answer(store, snap, node, first["Signature"])
    assert again["TaskParts"] == {"From": tasks_version(first["Signature"]), "Set": [], "Del": []}
    gone = sorted(mine)[0]
    snap = install(store, [t for t in reported if t["ID"] != gone], services, nets, nodes, 3)  # type: ignore[arg-type]
    third = answer(store, snap, node, again["Signature"])
    assert third["TaskParts"]["Set"] == [] and third["TaskParts"]["Del"] == [gone]
    applied = held.apply(third["TaskParts"], tasks_version(third["Signature"]))
    assert applied is not None and {t["ID"] for t in applied} == mine - {gone}


def test_a_list_the_manager_does_not_keep_is_sent_whole() -> None:
    tasks, services, nets, nodes = random_cluster(5)
    leader, follower = FakeStore(), FakeStore()
    snap = install(leader, tasks, services, nets, nodes, 1)  # type: ignore[arg-type]
    node = next(n["ID"] for n in nodes if snap.by_node.get(n["ID"]))
    first = answer(leader, snap, node, None)
    # the follower never sent this node a list: it cannot know what the node holds
    assert answer(follower, snap, node, first["Signature"])["TaskParts"]["From"] is None
    # more lists sent to the node than the leader keeps: the oldest is gone
    mine = snap.by_node[node][0]["ID"]
    for i in range(TASK_HISTORY):  # each a new list: one of its tasks changed in a field it acts on
        changed = [dict(t, Annotations={"step": i}) if t["ID"] == mine else t for t in tasks]
        answer(leader, install(leader, changed, services, nets, nodes, 2 + i), node, None)  # type: ignore[arg-type]
    assert tasks_version(first["Signature"]) not in assignments._TASKS_SENT[id(leader)][node]
    assert answer(leader, snap, node, first["Signature"])["TaskParts"]["From"] is None


def test_a_change_from_another_list_than_held_is_not_applied() -> None:
    held = HeldTasks()
    assert held.apply({"From": None, "Set": [{"ID": "a"}, {"ID": "b"}], "Del": []}, "v1") is not None
    assert held.apply({"From": "v0", "Set": [], "Del": ["a"]}, "v2") is None
    assert held.version is None and held.tasks == {}  # the next poll asks for the whole list
    assert held.apply({"From": "v1", "Set": [], "Del": []}, "v3") is None  # nothing held to follow


def test_change_sends_new_and_changed_tasks_and_the_ids_gone() -> None:
    tasks = [{"ID": "a"}, {"ID": "c"}]
    parts = change({"a": "h1", "b": "h2"}, "v1", tasks, {"a": "h1x", "c": "h3"})
    assert parts == {"From": "v1", "Set": [{"ID": "a"}, {"ID": "c"}], "Del": ["b"]}
    assert change({"a": "h1"}, "v1", tasks[:1], {"a": "h1"}) == {"From": "v1", "Set": [], "Del": []}
    assert change(None, "v1", tasks, {})["From"] is None


class Executor:
    driver = None

    def __init__(self) -> None:
        self.applied: list[list[str]] = []

    def apply(self, tasks: list[dict[str, Any]], services: dict[str, str]) -> None:
        self.applied.append(sorted(t["ID"] for t in tasks))


class Client:
    """Answers in turn, and records what each poll asked."""

    def __init__(self, answers: list[dict[str, Any]]) -> None:
        self.answers = answers
        self.bodies: list[dict[str, Any]] = []

    async def call_any(self, addrs: list[str], method: str, path: str, body: Any, **kw: Any) -> tuple[str, Any]:
        self.bodies.append(dict(body))
        if not self.answers:
            await asyncio.sleep(3600)
        return addrs[0], self.answers.pop(0)

    async def poll_any(self, addrs: list[str], method: str, path: str, body: Any, **kw: Any) -> tuple[str, Any]:
        return await self.call_any(addrs, method, path, body)


def test_a_node_never_acts_on_a_change_that_does_not_follow_its_list() -> None:
    answers = [
        {"Signature": "v1.n", "Epoch": 1, "Index": 10, "TaskParts": {"From": None, "Set": [{"ID": "a"}, {"ID": "b"}]}},
        {"Signature": "v2.n", "Epoch": 1, "Index": 11, "TaskParts": {"From": None, "Set": [{"ID": "c"}]}},
        # a change from a list the node does not hold: applied, it would stop "a" and "b"
        {"Signature": "v3.n", "Epoch": 1, "Index": 12, "TaskParts": {"From": "v9", "Set": [], "Del": ["a"]}},
        {"Signature": "v3.n", "Epoch": 1, "Index": 12, "TaskParts": {"From": None, "Set": [{"ID": "b"}]}},
        {"Signature": "v4.n", "Epoch": 1, "Index": 13, "TaskParts": {"From": "v3", "Set": [{"ID": "d"}], "Del": []}},
    ]
    answers[1]["TaskParts"] = {"From": "v1", "Set": [{"ID": "c"}], "Del": ["a"]}
    executor, client = Executor(), Client(answers)
    loop = TaskLoop(executor, lambda: client, lambda: ["m1"], lambda: None)  # type: ignore[arg-type]

    run_assignments_until(loop, lambda: len(client.bodies) >= 6)
    assert executor.applied == [["a", "b"], ["b", "c"], ["b"], ["b", "d"]]
    assert [b["Since"] for b in client.bodies] == [None, "v1.n", "v2.n", None, "v3.n", "v4.n"]
    assert all(b["TaskIncrements"] is True for b in client.bodies)
