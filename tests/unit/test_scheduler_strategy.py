"""Placement decisions: spread, preferences, limits and reasons (shoal.manager.scheduler.schedule)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from shoal.manager.scheduler import (
    ASSIGNED_MESSAGE,
    ConstraintFilter,
    NodeInfo,
    build_node_infos,
    eligible_nodes,
    schedule,
)
from unit.test_scheduler_filters import host_port, node, running, task


def tasks(n: int, service: str = "svc", prefix: str = "t", **kw: Any) -> list[dict[str, Any]]:
    """n tasks of one service sharing one Spec object, as the orchestrator makes them."""
    template = task(service=service, **kw)
    return [{**template, "ID": f"{prefix}{i:04d}"} for i in range(n)]


def per_node(assignments: dict[str, str]) -> dict[str, int]:
    return dict(sorted(Counter(assignments.values()).items()))


def test_100_identical_tasks_on_3_nodes_split_34_33_33() -> None:
    d = schedule(tasks(100), [node("a"), node("b"), node("c")])
    assert per_node(d.assignments) == {"a": 34, "b": 33, "c": 33}
    assert d.unplaced == {}
    assert (d.nodes["a"].service_counts["svc"], d.nodes["a"].total) == (34, 34)


def test_existing_tasks_of_the_service_are_counted() -> None:
    existing = [running(f"old{i}", "a") for i in range(10)] + [running("old-b", "b")]
    d = schedule(tasks(20), [node("a"), node("b"), node("c")], existing)
    assert per_node(d.assignments) == {"a": 1, "b": 9, "c": 10}  # ends 11/10/10


def test_ties_on_the_service_go_to_the_node_with_fewer_tasks_then_by_id() -> None:
    other = [running(f"o{i}", "a", service="other") for i in range(3)] + [running("o9", "c", service="other")]
    d = schedule(tasks(2), [node("c"), node("a"), node("b")], other)
    assert d.assignments == {"t0000": "b", "t0001": "c"}
    d = schedule(tasks(4), [node("c"), node("a"), node("b")], other)
    assert per_node(d.assignments) == {"a": 1, "b": 2, "c": 1}


def test_constraints_limit_the_nodes() -> None:
    nodes = [node("a", labels={"disk": "ssd"}), node("b"), node("c", labels={"disk": "ssd"})]
    d = schedule(tasks(5, placement={"Constraints": ["node.labels.disk==ssd"]}), nodes)
    assert per_node(d.assignments) == {"a": 3, "c": 2}


def test_spread_preference_over_two_zones_with_unequal_node_counts() -> None:
    nodes = [node("a1", labels={"zone": "a"})] + [node(f"b{i}", labels={"zone": "b"}) for i in range(3)]
    prefs = {"Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}]}
    d = schedule(tasks(8, placement=prefs), nodes)
    assert per_node(d.assignments) == {"a1": 4, "b0": 2, "b1": 1, "b2": 1}


def test_spread_preference_counts_existing_tasks_per_zone() -> None:
    nodes = [node("a1", labels={"zone": "a"}), node("b1", labels={"zone": "b"}), node("b2", labels={"zone": "b"})]
    existing = [running(f"old{i}", "a1") for i in range(4)]
    prefs = {"Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}]}
    d = schedule(tasks(6, placement=prefs), nodes, existing)
    assert per_node(d.assignments) == {"a1": 1, "b1": 3, "b2": 2}  # 5 and 5 per zone


def test_nodes_missing_the_label_form_their_own_group() -> None:
    nodes = [node("a1", labels={"zone": "a"}), node("b1", labels={"zone": "b"}), node("x1"), node("x2")]
    prefs = {"Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}]}
    d = schedule(tasks(6, placement=prefs), nodes)
    assert per_node(d.assignments) == {"a1": 2, "b1": 2, "x1": 1, "x2": 1}


def test_spread_skips_a_zone_without_eligible_nodes() -> None:
    nodes = [node("a1", labels={"zone": "a"}, availability="drain"), node("b1", labels={"zone": "b"})]
    prefs = {"Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}]}
    d = schedule(tasks(3, placement=prefs), nodes)
    assert per_node(d.assignments) == {"b1": 3}


def test_nested_spread_preferences() -> None:
    nodes = [
        node("a-r1", labels={"dc": "a", "rack": "1"}),
        node("a-r2", labels={"dc": "a", "rack": "2"}),
        node("b-r1", labels={"dc": "b", "rack": "1"}),
    ]
    prefs = {
        "Preferences": [
            {"Spread": {"SpreadDescriptor": "node.labels.dc"}},
            {"Spread": {"SpreadDescriptor": "node.labels.rack"}},
        ]
    }
    d = schedule(tasks(8, placement=prefs), nodes)
    assert per_node(d.assignments) == {"a-r1": 2, "a-r2": 2, "b-r1": 4}


def test_max_replicas_per_node() -> None:
    d = schedule(tasks(10, placement={"MaxReplicas": 2}), [node("a"), node("b"), node("c")])
    assert per_node(d.assignments) == {"a": 2, "b": 2, "c": 2}
    assert len(d.unplaced) == 4
    assert set(d.unplaced.values()) == {"no suitable node (max replicas per node limit exceed)"}


def test_host_mode_port_conflicts() -> None:
    existing = [running("web-old", "a", service="other", ports=[host_port(80)])]
    d = schedule(tasks(3, ports=[host_port(80)]), [node("a"), node("b"), node("c")], existing)
    assert per_node(d.assignments) == {"b": 1, "c": 1}
    assert list(d.unplaced.values()) == ["no suitable node (host-mode port already in use on 3 nodes)"]
    assert d.nodes["b"].host_ports == {("tcp", 80): 1}


def test_resource_exhaustion() -> None:
    nodes = [node("a", cpus=2), node("b", cpus=2), node("c", cpus=1)]
    d = schedule(tasks(7, cpus=1), nodes)
    assert per_node(d.assignments) == {"a": 2, "b": 2, "c": 1}
    assert set(d.unplaced.values()) == {"no suitable node (insufficient resources on 3 nodes)"}
    assert all(i.available_nano_cpus == 0 for i in d.nodes.values())


def test_reason_lists_filters_by_failures() -> None:
    nodes = [node("down", state="down"), node("b1", labels={"zone": "b"}), node("b2", labels={"zone": "b"})]
    d = schedule(tasks(1, placement={"Constraints": ["node.labels.zone==a"]}), nodes)
    assert d.assignments == {}
    assert d.unplaced == {
        "t0000": "no suitable node (2 nodes did not satisfy constraints; 1 node not available for new tasks)"
    }


def test_reason_singular_and_paused_node() -> None:
    d = schedule(tasks(2), [node("p", availability="pause")])
    assert set(d.unplaced.values()) == {"no suitable node (1 node not available for new tasks)"}


def test_no_nodes_at_all() -> None:
    d = schedule(tasks(1), [])
    assert d.unplaced == {"t0000": "no suitable node"}


def test_preassigned_tasks_are_checked_on_their_node() -> None:
    nodes = [node("a", cpus=1), node("p", availability="pause")]
    ok, paused, gone = (
        task("g-a", "glob", node_id="a", cpus=1),
        task("g-p", "glob", node_id="p"),
        task("g-x", node_id="x"),
    )
    too_big = task("g-a2", "glob2", node_id="a", cpus=1)
    d = schedule([ok, paused, gone, too_big], nodes)
    assert d.assignments == {"g-a": "a"}
    assert d.unplaced == {
        "g-p": "no suitable node (1 node not available for new tasks)",
        "g-x": "no suitable node (1 node not available for new tasks)",
        "g-a2": "no suitable node (insufficient resources on 1 node)",
    }


def test_groups_are_per_service_and_spec() -> None:
    batch = tasks(4, "s1", "x") + tasks(4, "s2", "y") + tasks(2, "s1", "z", placement={"MaxReplicas": 2})
    d = schedule(batch, [node("a"), node("b")])
    assert {nid: info.service_counts for nid, info in d.nodes.items()} == {
        "a": {"s1": 2, "s2": 2},
        "b": {"s1": 2, "s2": 2},
    }
    # the new spec's limit counts the service's tasks of every version, as SwarmKit
    assert d.unplaced == dict.fromkeys(["z0000", "z0001"], "no suitable node (max replicas per node limit exceed)")


def test_inputs_are_not_mutated_and_decisions_chain() -> None:
    infos = build_node_infos([node("a"), node("b")])
    d1 = schedule(tasks(3, prefix="x"), infos)
    assert [i.total for i in infos] == [0, 0]
    d2 = schedule(tasks(3, prefix="y"), list(d1.nodes.values()))
    assert {i.id: i.total for i in d2.nodes.values()} == {"a": 3, "b": 3}
    d3 = schedule(tasks(2, prefix="z"), infos, in_place=True)
    assert [i.total for i in infos] == [1, 1]
    assert d3.nodes["a"] is infos[0]


def test_copies_only_the_nodes_that_take_tasks() -> None:
    infos = build_node_infos([node("a"), node("b", availability="drain")])
    d = schedule(tasks(2), infos)
    assert d.nodes["b"] is infos[1]  # untouched: shared, not copied
    assert d.nodes["a"] is not infos[0] and d.nodes["a"].total == 2 and infos[0].total == 0


def test_a_group_is_filtered_once_per_node(monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[str] = []
    check = ConstraintFilter.check
    monkeypatch.setattr(ConstraintFilter, "check", lambda f, info: checked.append(info.id) or check(f, info))
    infos = build_node_infos([node("a"), node("b"), node("c")])
    d = schedule(tasks(100, placement={"Constraints": ["node.role==worker"]}), infos)
    assert len(d.assignments) == 100
    assert sorted(checked) == ["a", "b", "c"]
    # the verdicts are kept on the NodeInfos: a second batch of the same spec checks nothing
    schedule(tasks(100, prefix="u", placement={"Constraints": ["node.role==worker"]}), list(d.nodes.values()))
    assert len(checked) == 3


def test_a_changed_node_gets_fresh_verdicts() -> None:
    infos = build_node_infos([node("a", labels={"zone": "a"})], [running("old", "a")])
    want_b = {"Constraints": ["node.labels.zone==b"]}
    assert schedule(tasks(1, placement=want_b), infos).assignments == {}
    moved = infos[0].with_node(node("a", labels={"zone": "b"}))
    assert (moved.total, moved.service_counts) == (1, {"svc": 1})
    assert schedule(tasks(1, placement=want_b), [moved]).assignments == {"t0000": "a"}


def test_skips_duplicates_and_tasks_not_meant_to_run() -> None:
    t = tasks(1)[0]
    stopping = task("s", desired="shutdown")
    d = schedule([t, t, stopping], [node("a")])
    assert d.assignments == {"t0000": "a"}
    assert d.unplaced == {}


def test_deterministic() -> None:
    nodes = [node(f"n{i}", labels={"zone": "ab"[i % 2]}) for i in range(7)]
    prefs = {"Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}]}
    assert (
        schedule(tasks(50, placement=prefs), nodes).assignments
        == schedule(tasks(50, placement=prefs), nodes).assignments
    )


def test_assigned_message_is_dockers() -> None:
    assert ASSIGNED_MESSAGE == "scheduler assigned task to node"


# --- global services ---------------------------------------------------------------------


def service(constraints: list[str] | None = None, **placement: Any) -> dict[str, Any]:
    return {
        "ID": "glob",
        "Spec": {
            "Name": "g",
            "Mode": {"Global": {}},
            "TaskTemplate": {"Placement": {"Constraints": constraints or [], **placement}},
        },
    }


def test_eligible_nodes_for_a_global_service() -> None:
    nodes = [
        node("ready"),
        node("paused", availability="pause"),  # its task waits PENDING, as Docker
        node("drained", availability="drain"),
        node("down", state="down"),
        node("mgr"),
    ]
    nodes[-1]["Spec"]["Role"] = "manager"
    assert eligible_nodes(service(), nodes) == ["mgr", "paused", "ready"]
    assert eligible_nodes(service(["node.role==worker"]), nodes) == ["paused", "ready"]
    assert eligible_nodes(service(["node.role==worker"]), [NodeInfo(n) for n in nodes]) == ["paused", "ready"]
    assert eligible_nodes(service(Platforms=[{"OS": "windows"}]), nodes) == []
    assert eligible_nodes(service(["node.bogus==1"]), nodes) == []
