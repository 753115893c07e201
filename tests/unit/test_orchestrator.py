"""The orchestrator's pure pass: replicated/global reconcile, restarts, drain/down, updates, reaping."""

from __future__ import annotations

import copy
from typing import Any

from shoal.manager.orchestrator.pipeline import CHANGES_PER_COMMIT, allocate, changes, place, split
from shoal.manager.orchestrator.plan import Plan
from shoal.manager.orchestrator.reconcile import reconcile
from shoal.manager.orchestrator.update import Watch
from shoal.model.ids import format_rfc3339
from shoal.model.objects import new_node
from shoal.model.service import service_object, validate_service_spec
from shoal.model.task import new_task, with_status

T0 = 1_800_000_000 * 10**9
S = 10**9


def nodes(n: int = 3) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        node = new_node(
            f"node{i}",
            f"swarm0{i}",
            "worker",
            f"10.0.0.{i}",
            "2026-01-01T00:00:00Z",
            resources={"NanoCPUs": 2 * S, "MemoryBytes": 1 << 30},
        )
        node["Version"]["Index"] = 1
        out.append(node)
    return out


def service(replicas: int | None = 3, version: int = 10, **template: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": "shoal/host"}, **template}}
    spec["Mode"] = {"Global": {}} if replicas is None else {"Replicated": {"Replicas": replicas}}
    svc = service_object("svc1", validate_service_spec(spec), format_rfc3339(T0))
    svc["Version"]["Index"] = version
    return svc


def run(services: list[dict], tasks: list[dict], ns: list[dict], now_ns: int = T0, **kw: Any) -> Plan:
    """One pass; it must leave its inputs as they were: the orchestrator hands it the stored
    objects themselves (`Store.list_shared`)."""
    before = copy.deepcopy((services, tasks, ns))
    plan = reconcile(services, tasks, ns, format_rfc3339(now_ns), now_ns, **kw)
    allocate(plan, services, [], tasks, ns)
    place(plan, tasks, ns)
    assert (services, tasks, ns) == before, "a pass modified the stored objects it was given"
    return plan


def commit(tasks: list[dict], plan: Plan) -> list[dict]:
    """Apply a plan to a task list the way the store would (for multi-pass scenarios)."""
    by_id = {t["ID"]: t for t in tasks}
    by_id.update({k: v for k, v in plan.updates.items()})
    for t in plan.creates:
        by_id[t["ID"]] = copy.deepcopy(t)
    for tid in plan.deletes:
        by_id.pop(tid, None)
    return list(by_id.values())


def set_state(tasks: list[dict], state: str, pick=lambda t: True, exit_code: int | None = None) -> None:
    for t in tasks:
        if pick(t) and t["DesiredState"] == "running":
            t["Status"]["State"] = state
            if exit_code is not None:
                t["Status"]["ContainerStatus"] = {"ExitCode": exit_code}


def test_replicated_creates_slots_and_spreads() -> None:
    plan = run([service(3)], [], nodes())
    assert sorted(t["Slot"] for t in plan.creates) == [1, 2, 3]
    assert sorted(t["NodeID"] for t in plan.creates) == ["node0", "node1", "node2"]
    assert {t["Status"]["State"] for t in plan.creates} == {"assigned"}


def test_hundred_tasks_one_pass() -> None:
    plan = run([service(100)], [], nodes())
    assert len(plan.creates) == 100
    per_node = sorted(sum(1 for t in plan.creates if t["NodeID"] == n) for n in ("node0", "node1", "node2"))
    assert per_node == [33, 33, 34]


def test_converged_service_needs_nothing() -> None:
    ns = nodes()
    tasks = commit([], run([service(3)], [], ns))
    set_state(tasks, "running")
    assert not run([service(3)], tasks, ns).changed()


def test_scale_down_removes_highest_slots_and_scale_up_refills() -> None:
    ns = nodes()
    tasks = commit([], run([service(3)], [], ns))
    set_state(tasks, "running")
    plan = run([service(1, version=11)], tasks, ns)
    assert sorted(t["Slot"] for t in plan.updates.values() if t["DesiredState"] == "remove") == [2, 3]
    tasks = commit(tasks, plan)
    set_state(tasks, "shutdown", lambda t: False)
    for t in tasks:
        if t["DesiredState"] == "remove":
            t["Status"]["State"] = "shutdown"
    plan = run([service(3, version=12)], tasks, ns)
    assert sorted(t["Slot"] for t in plan.creates) == [2, 3]


def test_failed_task_restarts_after_delay_and_history_is_kept() -> None:
    ns = nodes()
    svc = service(1, RestartPolicy={"Condition": "any", "Delay": 5 * S})
    tasks = commit([], run([svc], [], ns))
    set_state(tasks, "failed", exit_code=137)
    early = run([svc], tasks, ns, now_ns=T0 + 1 * S)
    assert not early.creates and early.wake_at_ns is not None and early.wake_at_ns <= T0 + 6 * S
    late = run([svc], tasks, ns, now_ns=T0 + 10 * S)
    assert len(late.creates) == 1 and late.creates[0]["Slot"] == 1
    assert [t["DesiredState"] for t in late.updates.values()] == ["shutdown"]


def test_restart_condition_none_leaves_slot_empty() -> None:
    ns = nodes()
    svc = service(1, RestartPolicy={"Condition": "none"})
    tasks = commit([], run([svc], [], ns))
    set_state(tasks, "failed", exit_code=1)
    plan = run([svc], tasks, ns, now_ns=T0 + 60 * S)
    assert not plan.creates
    tasks = commit(tasks, plan)
    assert not run([svc], tasks, ns, now_ns=T0 + 120 * S).creates


def test_down_or_drained_node_tasks_replaced_at_once() -> None:
    ns = nodes()
    tasks = commit([], run([service(3)], [], ns))
    set_state(tasks, "running")
    ns[1]["Status"]["State"] = "down"
    ns[2]["Spec"]["Availability"] = "drain"
    plan = run([service(3)], tasks, ns)
    moved = {t["ID"] for t in plan.updates.values() if t["DesiredState"] == "shutdown"}
    assert len(moved) == 2 and len(plan.creates) == 2
    assert {t["NodeID"] for t in plan.creates} == {"node0"}


def test_paused_node_gets_nothing_new() -> None:
    ns = nodes()
    ns[0]["Spec"]["Availability"] = "pause"
    plan = run([service(4)], [], ns)
    assert "node0" not in {t["NodeID"] for t in plan.creates}


def test_unplaceable_task_stays_pending_with_reason() -> None:
    ns = nodes()
    plan = run([service(1, Placement={"Constraints": ["node.hostname==nowhere"]})], [], ns)
    task = plan.creates[0]
    assert task["Status"]["State"] == "pending"
    assert task["Status"]["Err"].startswith("no suitable node (3 nodes did not satisfy constraints")
    # a node that satisfies it arrives: the stored pending task is placed (the stored one untouched)
    tasks = commit([], plan)
    ns[1]["Description"]["Hostname"] = "nowhere"
    later = run([service(1, Placement={"Constraints": ["node.hostname==nowhere"]})], tasks, ns)
    assert [(t["NodeID"], t["Status"]["State"]) for t in later.updates.values()] == [("node1", "assigned")]


def test_global_one_per_eligible_node() -> None:
    ns = nodes()
    ns[2]["Spec"]["Availability"] = "drain"
    plan = run([service(None)], [], ns)
    assert sorted(t["NodeID"] for t in plan.creates) == ["node0", "node1"]


def test_removed_service_tasks_go() -> None:
    ns = nodes()
    tasks = commit([], run([service(2)], [], ns))
    set_state(tasks, "running")
    plan = run([], tasks, ns)
    assert {t["DesiredState"] for t in plan.updates.values()} == {"remove"}
    tasks = commit(tasks, plan)
    for t in tasks:
        t["Status"]["State"] = "shutdown"
    assert len(run([], tasks, ns).deletes) == 2


def test_rolling_update_parallelism_one() -> None:
    ns = nodes()
    old = service(3)
    tasks = commit([], run([old], [], ns))
    set_state(tasks, "running")
    new = service(3, version=20)
    new["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] = "shoal/hello"
    plan = run([new], tasks, ns, now_ns=T0 + S)
    assert len(plan.creates) == 1  # parallelism 1
    assert plan.service_updates["svc1"]["UpdateStatus"]["State"] == "updating"
    new = plan.service_updates["svc1"]
    tasks = commit(tasks, plan)
    # the new task is not running yet: nothing more starts
    assert not run([new], tasks, ns, now_ns=T0 + 2 * S).creates
    set_state(tasks, "running", lambda t: t["Spec"]["ContainerSpec"]["Image"] == "shoal/hello")
    assert len(run([new], tasks, ns, now_ns=T0 + 3 * S).creates) == 1


def test_update_completes_only_after_the_monitor_period() -> None:
    # The docker CLI stops following an update when it reads "completed": SwarmKit's updater says so
    # only after the last new task has run for Monitor (default 5s) without failing.
    ns = nodes(1)
    old = service(1)
    tasks = commit([], run([old], [], ns))
    set_state(tasks, "running")
    new = service(1, version=20)
    new["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] = "shoal/hello"
    plan = run([new], tasks, ns, now_ns=T0 + S)
    new, tasks = plan.service_updates["svc1"], commit(tasks, plan)
    fresh = [t for t in tasks if t["Spec"]["ContainerSpec"]["Image"] == "shoal/hello"]
    set_state(tasks, "running", lambda t: t in fresh)
    fresh[0]["Status"]["Timestamp"] = format_rfc3339(T0 + 2 * S)
    early = run([new], tasks, ns, now_ns=T0 + 3 * S)
    assert "svc1" not in early.service_updates  # still "updating"
    assert early.wake_at_ns == T0 + 7 * S  # running since T0+2s, Monitor 5s
    done = run([new], tasks, ns, now_ns=T0 + 7 * S)
    assert done.service_updates["svc1"]["UpdateStatus"]["State"] == "completed"


def test_history_is_pruned_to_limit() -> None:
    ns = nodes()
    svc = service(1, RestartPolicy={"Condition": "any", "Delay": 0})
    tasks = commit([], run([svc], [], ns))
    for i in range(8):
        set_state(tasks, "failed", exit_code=1)
        plan = run([svc], tasks, ns, now_ns=T0 + (i + 1) * S, history_limit=5)
        tasks = commit(tasks, plan)
    assert len(tasks) <= 5


def monitored_update(watch: Watch) -> tuple[dict, list[dict], list[dict], dict]:
    """A 2-replica service being updated (Monitor 10s, pause on failure); its first new task ran from T0+2s.
    Returns the service, the tasks, the nodes and that new task."""
    ns = nodes(2)
    old = service(2)
    tasks = commit([], run([old], [], ns))
    set_state(tasks, "running")
    new = service(2, version=20)
    new["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] = "shoal/hello"
    new["Spec"]["UpdateConfig"] = {**new["Spec"]["UpdateConfig"], "Monitor": 10 * S, "FailureAction": "pause"}
    plan = run([new], tasks, ns, now_ns=T0 + S, watch=watch)
    new, tasks = plan.service_updates["svc1"], commit(tasks, plan)
    (fresh,) = [t for t in tasks if t["Spec"]["ContainerSpec"]["Image"] == "shoal/hello"]
    fresh["Status"].update(State="running", Timestamp=format_rfc3339(T0 + 2 * S))
    plan = run([new], tasks, ns, now_ns=T0 + 3 * S, watch=watch)  # the updater sees it run; the next batch starts
    assert len(plan.creates) == 1 and "svc1" not in plan.service_updates
    return new, commit(tasks, plan), ns, fresh


def fail(task: dict, at_ns: int) -> None:
    task["Status"].update(State="failed", Err="task: non-zero exit (1)", Timestamp=format_rfc3339(at_ns))
    task["Status"]["ContainerStatus"] = {"ExitCode": 1}


def test_a_failure_inside_the_monitor_window_pauses_the_update() -> None:
    watch = Watch()
    new, tasks, ns, fresh = monitored_update(watch)
    fail(fresh, T0 + 11 * S)  # 9 s after it started to run: inside Monitor (10 s)
    plan = run([new], tasks, ns, now_ns=T0 + 12 * S, watch=watch)
    status = plan.service_updates["svc1"]["UpdateStatus"]
    assert status["State"] == "paused" and fresh["ID"] in status["Message"], status


def test_a_failure_after_the_monitor_window_does_not_count() -> None:
    watch = Watch()
    new, tasks, ns, fresh = monitored_update(watch)
    fail(fresh, T0 + 13 * S)  # 11 s after it started to run: the window had closed
    plan = run([new], tasks, ns, now_ns=T0 + 14 * S, watch=watch)
    assert "svc1" not in plan.service_updates  # still updating, not paused
    # the restart policy replaces it (after its 5 s delay), with the current spec
    plan = run([new], tasks, ns, now_ns=T0 + 19 * S, watch=watch)
    assert "svc1" not in plan.service_updates
    assert [t["Slot"] for t in plan.creates] == [fresh["Slot"]]
    assert plan.creates[0]["Spec"]["ContainerSpec"]["Image"] == "shoal/hello"


def test_a_new_task_that_fails_before_running_counts() -> None:
    watch = Watch()
    new, tasks, ns, _ = monitored_update(watch)
    (second,) = [
        t for t in tasks if t["Spec"]["ContainerSpec"]["Image"] == "shoal/hello" and t["Status"]["State"] != "running"
    ]
    plan = run([new], tasks, ns, now_ns=T0 + 4 * S, watch=watch)  # seen pending
    fail(second, T0 + 60 * S)  # long after its creation, but it never ran
    plan = run([new], tasks, ns, now_ns=T0 + 61 * S, watch=watch)
    assert plan.service_updates["svc1"]["UpdateStatus"]["State"] == "paused"


def test_a_new_leader_does_not_count_failures_from_before_it_led() -> None:
    new, tasks, ns, fresh = monitored_update(Watch())
    fail(fresh, T0 + 5 * S)
    later = Watch(since_ns=T0 + 30 * S)  # a leader elected after that failure, with an empty memory
    plan = run([new], tasks, ns, now_ns=T0 + 31 * S, watch=later)
    assert "svc1" not in plan.service_updates
    assert (
        run([new], tasks, ns, now_ns=T0 + 31 * S, watch=Watch()).service_updates["svc1"]["UpdateStatus"]["State"]
        == "paused"
    )  # the same failure, seen by the leader that ran the update


def test_a_large_pass_commits_in_bounded_entries_in_order() -> None:
    """1,200 creates, and a scale-down to 400: entries of at most CHANGES_PER_COMMIT changes,
    every change once, in the pass's order (creates before updates before deletes)."""
    ns = nodes(40)
    tasks = commit([], run([service(1200)], [], ns))
    small = service(400, version=11)  # 800 tasks told to shut down
    plan = run([small], tasks, ns)
    batch = changes(plan, {t["ID"]: t for t in tasks}, {small["ID"]: small})
    entries = split(batch)
    assert len(batch) > CHANGES_PER_COMMIT
    assert all(0 < len(e) <= CHANGES_PER_COMMIT for e in entries)
    assert [c for e in entries for c in e] == batch
    assert len(entries) == -(-len(batch) // CHANGES_PER_COMMIT)
    big = changes(run([service(1200)], [], ns), {}, {})
    assert [len(e) for e in split(big)] == [500, 500, 200]
    assert split([]) == []


def test_a_nodes_new_tasks_come_in_one_entry() -> None:
    """Each node's new tasks in one entry: each node is answered once for them, not per entry."""
    ns = nodes(40)
    entries = split(changes(run([service(1200)], [], ns), {}, {}))
    entry_of: dict[str, set[int]] = {}
    for i, entry in enumerate(entries):
        for change in entry:
            entry_of.setdefault(change.obj["NodeID"], set()).add(i)
    assert len(entry_of) == 40
    assert sum(len(seen) > 1 for seen in entry_of.values()) <= len(entries) - 1  # only at entry boundaries


def test_the_update_watch_remembers_freshness_per_task_and_service_object() -> None:
    """A task's freshness is compared again for a new object of the task or of its service (a
    service update, a task's new state), never read from an older pair."""
    spec = validate_service_spec({"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": "shoal/hello"}}})
    svc = service_object("s1", spec, "2026-01-01T00:00:00Z")
    task = new_task(svc, 1, None, "2026-01-01T00:00:00Z", task_id="t1")
    watch = Watch()
    assert watch.up_to_date(task, svc)
    updated = copy.deepcopy(svc)
    updated["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] = "shoal/hello:2"
    assert not watch.up_to_date(task, updated)  # the service's new object: compared again
    replacement = new_task(updated, 1, None, "2026-01-01T00:00:01Z", task_id="t1")
    assert watch.up_to_date(replacement, updated)  # the task's new object too
    assert not watch.up_to_date(with_status(task, "running", "x", "2026-01-01T00:00:02Z"), updated)
