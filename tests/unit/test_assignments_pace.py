"""The two parts of an assignments snapshot are paced apart (manager/assignments.py): the task
index at its own small cost, the network view at its own. Between two views, a node's new task is
answered at once with the view before; the new endpoints follow, network-only, once the view is
rebuilt. Driven through `assignments()` polls, the node applying each answer as a worker does."""

from __future__ import annotations

import asyncio
import time

import pytest

from shoal.manager import assignments
from shoal.model.taskdelta import tasks_version
from unit.test_assignments_deferral import WAIT, burst, changed_networks, node_on_overlays, own_ids
from unit.test_netdelta import full

VIEW_COST = 1.0  # CPU seconds the view is said to take: rebuilt 2 s after the last one at the earliest


def test_a_new_task_is_answered_with_the_view_before_and_its_endpoints_follow(monkeypatch: pytest.MonkeyPatch) -> None:
    store, node, held = node_on_overlays(monkeypatch)
    monkeypatch.setattr(assignments, "DEFER_NET_BYTES", 1 << 40)  # no change is held back: the pace alone
    view_before = assignments._SNAPSHOTS[id(store)]
    view_before.net_cost, view_before.net_built_at = VIEW_COST, time.monotonic()
    since = node.since
    tasks, moved = burst(store.lists["task"], node.id, held, set())
    store.put_tasks(tasks)
    time.sleep(2 * assignments.COALESCE)  # the task index may be rebuilt; the view may not

    answer, took = asyncio.run(node.poll(store))
    assert took < WAIT / 2
    assert moved in {t["ID"] for t in answer["TaskParts"]["Set"]}
    assert node.task_ids() == own_ids(store, node.id)  # it runs its new task now
    snap = assignments._SNAPSHOTS[id(store)]
    assert snap.index == store.applied_index and snap.net is view_before.net  # the view carried
    assert snap.net_index < snap.index
    assert answer["NetParts"]["Changes"] == {}
    assert node.state == full(view_before.net, node.id)  # the network state of the view before
    behind = {n: node.nets.have()[n] for n in changed_networks(store, node)}
    assert behind, "the burst changed none of the node's networks"
    assert tasks_version(answer["Signature"]) != tasks_version(since)

    snap.net_built_at -= 2 * VIEW_COST * assignments.REBUILD_FACTOR  # the view is due now
    answer, took = asyncio.run(node.poll(store))
    assert took < WAIT / 2
    assert answer["TaskParts"] == {"From": tasks_version(node.since), "Set": [], "Del": []}  # network-only
    changes = answer["NetParts"]["Changes"]
    assert set(behind) <= set(changes)
    assert all(changes[n]["From"] == version for n, version in behind.items())  # increments
    rebuilt = assignments._SNAPSHOTS[id(store)]
    assert rebuilt.net is not view_before.net and rebuilt.net_index == store.applied_index
    assert node.state == full(store.view(), node.id)  # exactly the full network state
    assert node.task_ids() == own_ids(store, node.id)
