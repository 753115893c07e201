"""shoal.model.task: states, the Task object, names, restart policy timing, history pruning."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.manager.scheduler.nodeinfo import TASK_STATES as SCHEDULER_STATES
from shoal.model.ids import format_rfc3339
from shoal.model.service import service_object, validate_service_spec
from shoal.model.task import (
    DEFAULT_HISTORY_LIMIT,
    TASK_STATES,
    can_move,
    exit_message,
    history_to_prune,
    is_terminal,
    new_task,
    restart_decision,
    state_rank,
    task_dirty,
    task_name,
    with_status,
)

S = 1_000_000_000
T0 = 1_800_000_000 * S  # an arbitrary wall clock, in ns
NOW = format_rfc3339(T0)


def at(seconds: float) -> str:
    return format_rfc3339(T0 + int(seconds * S))


def service(mode: dict[str, Any] | None = None, **template: Any) -> dict[str, Any]:
    tt = {"ContainerSpec": {"Image": "shoal/hello"}, **template}
    spec = validate_service_spec({"Name": "web", "TaskTemplate": tt, "Mode": mode or {"Replicated": {"Replicas": 2}}})
    svc = service_object("svc1", spec, NOW)
    svc["Version"]["Index"] = 42
    return svc


# --- states -------------------------------------------------------------------------------------


def test_states_in_swarmkit_order_and_same_as_the_scheduler() -> None:
    assert TASK_STATES == SCHEDULER_STATES
    order = ["new", "pending", "assigned", "accepted", "preparing", "starting", "running", "complete"]
    order += ["shutdown", "failed", "rejected", "remove", "orphaned"]
    ranks = [state_rank(s) for s in order]
    assert ranks == sorted(ranks)


def test_state_rank_unknown() -> None:
    with pytest.raises(ValueError, match="unknown task state 'exploded'"):
        state_rank("exploded")


@pytest.mark.parametrize("state", ["complete", "shutdown", "failed", "rejected", "remove", "orphaned"])
def test_terminal(state: str) -> None:
    assert is_terminal(state)


@pytest.mark.parametrize("state", ["new", "pending", "assigned", "accepted", "preparing", "starting", "running"])
def test_not_terminal(state: str) -> None:
    assert not is_terminal(state)


def test_can_move_only_forward() -> None:
    assert can_move("new", "pending")
    assert can_move("assigned", "running")
    assert can_move("running", "failed")
    assert can_move("running", "running")  # a repeat may carry details (pid)
    assert not can_move("running", "starting")  # a late report
    assert not can_move("failed", "running")
    assert not can_move("shutdown", "complete")
    with pytest.raises(ValueError):
        can_move("running", "bogus")


# --- the Task object ----------------------------------------------------------------------------


def test_new_replicated_task() -> None:
    svc = service()
    t = new_task(svc, 1, None, NOW, task_id="task1")
    assert t == {
        "ID": "task1",
        "Version": {"Index": 0},
        "CreatedAt": NOW,
        "UpdatedAt": NOW,
        "Labels": {},
        "Spec": svc["Spec"]["TaskTemplate"],
        "ServiceID": "svc1",
        "Slot": 1,
        "ServiceAnnotations": {"Name": "web"},
        "DesiredState": "running",
        "Status": {"Timestamp": NOW, "State": "new", "Message": "created"},
        "Endpoint": svc["Endpoint"],
        "SpecVersion": {"Index": 42},
    }
    t["Spec"]["ContainerSpec"]["Image"] = "changed"
    t["Endpoint"]["Ports"].append({})
    assert svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] == "shoal/hello"  # deep copies
    assert svc["Endpoint"]["Ports"] == []


def test_new_global_task_and_generated_id() -> None:
    t = new_task(service({"Global": {}}), None, "node1", NOW)
    assert t["NodeID"] == "node1"
    assert "Slot" not in t
    assert len(t["ID"]) == 25
    assert new_task(service(), 1, None, NOW)["ID"] != t["ID"]


def test_new_task_endpoint_carries_ports_for_the_scheduler() -> None:
    spec = validate_service_spec(
        {
            "Name": "web",
            "TaskTemplate": {"ContainerSpec": {"Image": "i"}},
            "EndpointSpec": {"Ports": [{"TargetPort": 80, "PublishedPort": 8080, "PublishMode": "host"}]},
        }
    )
    svc = service_object("s", spec, NOW)
    svc["Endpoint"]["Ports"] = spec["EndpointSpec"]["Ports"]
    from shoal.manager.scheduler import host_ports

    assert host_ports(new_task(svc, 1, None, NOW)) == frozenset({("tcp", 8080)})


def test_new_task_needs_slot_or_node() -> None:
    with pytest.raises(ValueError):
        new_task(service(), None, None, NOW)


def test_task_names() -> None:
    rep = {"ID": "tid", "Slot": 3, "NodeID": "nid"}
    glob = {"ID": "tid", "NodeID": "nid"}
    assert task_name(rep, "web") == "web.3"
    assert task_name(rep, "web", full=True) == "web.3.tid"
    assert task_name(glob, "mon") == "mon.nid"
    assert task_name(glob, "mon", full=True) == "mon.nid.tid"


def test_with_status_copies_and_keeps_container_status() -> None:
    t = new_task(service(), 1, None, NOW, task_id="t")
    running = with_status(t, "running", "started", at(1), pid=1234)
    assert running["Status"] == {
        "Timestamp": at(1),
        "State": "running",
        "Message": "started",
        "ContainerStatus": {"PID": 1234},
    }
    assert running["UpdatedAt"] == at(1)
    assert t["Status"]["State"] == "new" and t["UpdatedAt"] == NOW  # input untouched
    failed = with_status(running, "failed", "failed", at(2), err=exit_message(137), exit_code=137)
    assert failed["Status"] == {
        "Timestamp": at(2),
        "State": "failed",
        "Message": "failed",
        "Err": "task: non-zero exit (137)",
        "ContainerStatus": {"PID": 0, "ExitCode": 137},
    }
    assert running["Status"]["ContainerStatus"] == {"PID": 1234}


def test_with_status_keeps_port_status_and_refuses_unknown_states() -> None:
    t = {"ID": "t", "Status": {"State": "running", "PortStatus": {"Ports": [{"PublishedPort": 30000}]}}}
    assert with_status(t, "shutdown", "shutdown", NOW)["Status"]["PortStatus"] == {"Ports": [{"PublishedPort": 30000}]}
    with pytest.raises(ValueError):
        with_status(t, "zombie", "", NOW)


def test_exit_message() -> None:
    assert exit_message(137) == "task: non-zero exit (137)"
    assert exit_message(1) == "task: non-zero exit (1)"
    assert exit_message(0) == ""


def test_task_dirty() -> None:
    svc = service()
    t = new_task(svc, 1, None, NOW)
    assert not task_dirty(svc, t)
    scaled = {**svc, "Spec": {**svc["Spec"], "Mode": {"Replicated": {"Replicas": 9}}}}
    assert not task_dirty(scaled, t)
    new_image = service(ContainerSpec={"Image": "v2"})
    assert task_dirty(new_image, t)
    ported = {**svc, "Spec": {**svc["Spec"], "EndpointSpec": {"Mode": "vip", "Ports": [{"TargetPort": 1}]}}}
    assert task_dirty(ported, t)
    assert not task_dirty(ported, {k: v for k, v in t.items() if k != "Endpoint"})


# --- restart policy -----------------------------------------------------------------------------


def stopped(
    state: str = "failed", created: float = 0, ended: float = 10, tid: str = "t", **spec: Any
) -> dict[str, Any]:
    return {
        "ID": tid,
        "CreatedAt": at(created),
        "DesiredState": "running",
        "Spec": spec or {"ContainerSpec": {"Image": "i"}},
        "Status": {"State": state, "Timestamp": at(ended)},
    }


def test_restart_defaults_any_5s_after_the_task_stopped() -> None:
    now = T0 + 11 * S  # the task stopped at T0 + 10 s
    assert restart_decision(None, stopped("failed"), [], now) == (True, T0 + 15 * S)
    assert restart_decision(None, stopped("complete"), [], now) == (True, T0 + 15 * S)
    assert restart_decision({}, stopped("rejected"), [], now) == (True, T0 + 15 * S)


def test_restart_not_before_is_stable_across_calls() -> None:
    """A reconcile loop asks again and again; the answer must not move with the clock."""
    t = stopped("failed", ended=10)
    answers = {restart_decision({"Delay": 5 * S}, t, [], T0 + s * S)[1] for s in (10, 11, 14, 20)}
    assert answers == {T0 + 15 * S}


def test_restart_delay_with_a_clock_ahead_or_no_timestamp() -> None:
    ahead = stopped("failed", ended=100)  # stamped by a node whose clock runs 90 s ahead
    assert restart_decision({"Delay": 5 * S}, ahead, [], T0 + 10 * S) == (True, T0 + 15 * S)
    lost = {**stopped(), "Status": {"State": "running"}}
    assert restart_decision({"Delay": 5 * S}, lost, [], T0) == (True, T0 + 5 * S)


def test_task_running_on_a_lost_node_is_replaced_at_once() -> None:
    running_long = {**stopped(), "Status": {"State": "running", "Timestamp": at(0)}}
    assert restart_decision(None, running_long, [], T0 + 60 * S) == (True, T0 + 5 * S)


def test_restart_condition_none() -> None:
    assert restart_decision({"Condition": "none"}, stopped("failed"), [], T0) == (False, 0)


def test_restart_on_failure() -> None:
    policy = {"Condition": "on-failure", "Delay": 0}
    assert restart_decision(policy, stopped("failed"), [], T0) == (True, T0)
    assert restart_decision(policy, stopped("complete"), [], T0) == (False, 0)
    assert restart_decision(policy, stopped("rejected"), [], T0) == (True, T0)
    # a running task on a lost node has not completed: it is replaced
    assert restart_decision(policy, stopped("running"), [], T0) == (True, T0)


def test_no_restart_when_desired_state_was_changed() -> None:
    t = stopped("failed")
    for desired in ("shutdown", "remove"):
        assert restart_decision({"Condition": "any"}, {**t, "DesiredState": desired}, [], T0) == (False, 0)
    # a delayed restart (desired "ready") is still wanted
    assert restart_decision({"Condition": "any"}, {**t, "DesiredState": "ready"}, [], T0)[0]


def test_restart_delay_and_drain() -> None:
    now = T0 + 10 * S  # when the task stopped
    assert restart_decision({"Delay": 2 * S}, stopped(), [], now) == (True, now + 2 * S)
    assert restart_decision({"Delay": "1m"}, stopped(), [], now) == (True, now + 60 * S)  # Go strings too
    assert restart_decision({"Delay": 0}, stopped(), [], now + S) == (True, now)
    assert restart_decision({"Delay": 2 * S}, stopped(), [], now + S, drained=True) == (True, now + S)


def chain(n: int, spacing: float = 10, **spec: Any) -> list[dict[str, Any]]:
    """n tasks of one slot, each created when the previous one failed (the first is the original)."""
    return [stopped("failed", created=i * spacing, ended=i * spacing + 5, tid=f"t{i}", **spec) for i in range(n)]


def test_max_attempts_without_window() -> None:
    policy = {"MaxAttempts": 2, "Delay": 0}
    history = chain(3)  # original + 2 restarts
    assert restart_decision(policy, history[0], history[:1], T0)[0]  # 0 restarts so far
    assert restart_decision(policy, history[1], history[:2], T0)[0]  # 1 restart so far
    assert not restart_decision(policy, history[2], history, T0)[0]  # 2 restarts: done
    # history may or may not include the task itself
    assert not restart_decision(policy, history[2], history[:2], T0)[0]


def test_max_attempts_counted_per_spec() -> None:
    policy = {"MaxAttempts": 1, "Delay": 0}
    old = chain(3)
    new_spec = {"ContainerSpec": {"Image": "v2"}}
    updated = stopped("failed", created=100, ended=105, tid="u0", **new_spec)
    # the update's first task has not been restarted yet, whatever the old spec did
    assert restart_decision(policy, updated, [*old, updated], T0)[0]
    again = stopped("failed", created=110, ended=115, tid="u1", **new_spec)
    assert not restart_decision(policy, again, [*old, updated, again], T0)[0]


def test_max_attempts_within_window() -> None:
    policy = {"MaxAttempts": 2, "Window": 30 * S, "Delay": 0}
    # restarts created at 10 and 20 (tasks t1, t2); t2 ended at 25: both within 30 s before → stop
    history = chain(3)
    assert not restart_decision(policy, history[2], history, T0 + 26 * S)[0]
    # slower failures: restarts at 100 and 200; t2 ended at 205, window (175, 205] holds one
    slow = chain(3, spacing=100)
    assert restart_decision(policy, slow[2], slow, T0 + 206 * S)[0]
    # without the window the same history is exhausted
    assert not restart_decision({"MaxAttempts": 2}, slow[2], slow, T0)[0]


def test_window_uses_now_when_the_task_has_no_timestamp() -> None:
    policy = {"MaxAttempts": 1, "Window": 10 * S, "Delay": 0}
    history = chain(2)  # restart created at 10
    lost = {**history[1], "Status": {"State": "running"}}
    assert not restart_decision(policy, lost, history, T0 + 15 * S)[0]
    assert restart_decision(policy, lost, history, T0 + 25 * S)[0]


# --- history ------------------------------------------------------------------------------------


def hist(i: int, state: str = "failed", desired: str = "shutdown", **spec: Any) -> dict[str, Any]:
    return {
        "ID": f"t{i}",
        "CreatedAt": at(i * 10),
        "DesiredState": desired,
        "Spec": spec or {"ContainerSpec": {"Image": "i"}},
        "Status": {"State": state, "Timestamp": at(i * 10 + 5)},
    }


def test_history_default_limit_keeps_five_oldest_go_first() -> None:
    assert DEFAULT_HISTORY_LIMIT == 5
    tasks = [hist(i) for i in range(7)] + [hist(7, "running", "running")]
    assert history_to_prune(reversed(tasks), 5) == ["t0", "t1", "t2"]
    assert history_to_prune(tasks[:5], 5) == []


def test_history_never_prunes_wanted_or_running_tasks() -> None:
    tasks = [hist(0, "running", "running"), hist(1, "running", "shutdown"), hist(2), hist(3)]
    # only t2, t3 may go; a shutting-down task that still runs stays
    assert history_to_prune(tasks, 1) == ["t2", "t3"]
    assert history_to_prune(tasks, 3) == ["t2"]


def test_history_prunes_tasks_that_never_reached_a_node() -> None:
    tasks = [hist(0, "pending", "shutdown"), hist(1, "assigned", "shutdown"), hist(2, "running", "running")]
    assert history_to_prune(tasks, 1) == ["t0"]


def test_history_limits() -> None:
    tasks = [hist(i) for i in range(4)]
    assert history_to_prune(tasks, -1) == []  # negative: keep everything
    assert history_to_prune(tasks, 0) == ["t0", "t1", "t2", "t3"]


def test_history_keeps_max_attempts_plus_one() -> None:
    policy = {"ContainerSpec": {"Image": "i"}, "RestartPolicy": {"MaxAttempts": 7}}
    tasks = [hist(i, **policy) for i in range(10)]
    assert history_to_prune(tasks, 5) == ["t0", "t1"]  # 8 stay, as SwarmKit
    assert history_to_prune(tasks, 5, max_attempts=0) == ["t0", "t1", "t2", "t3", "t4"]
    assert history_to_prune(tasks, 9) == ["t0"]  # a larger limit still wins


def test_pruned_history_still_stops_restarts() -> None:
    """MaxAttempts above the retention limit: pruning must not make restarts endless."""
    spec = {"ContainerSpec": {"Image": "i"}, "RestartPolicy": {"MaxAttempts": 7, "Delay": 0}}
    tasks: list[dict[str, Any]] = []
    restarts = 0
    for i in range(30):
        t = stopped("failed", created=i * 10, ended=i * 10 + 5, tid=f"t{i}", **spec)
        tasks.append(t)
        again, _ = restart_decision(spec["RestartPolicy"], t, tasks, T0 + i * 10 * S + 6 * S)
        doomed = set(history_to_prune([{**x, "DesiredState": "shutdown"} for x in tasks], 5))
        tasks = [x for x in tasks if x["ID"] not in doomed]
        if not again:
            break
        restarts += 1
    assert restarts == 7


def test_new_tasks_of_one_service_object_share_one_copy_of_its_template() -> None:
    # a deep copy of the TaskTemplate and Endpoint for each of 30,000 new tasks took an eighth of the
    # leader's GIL time (docs/scale.md): one copy per service object, shared by its new tasks
    service = {
        "ID": "svc-share",
        "Version": {"Index": 3},
        "Spec": {"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": "nginx:1"}}},
        "Endpoint": {"Spec": {"Mode": "vip"}, "VirtualIPs": [{"NetworkID": "n1", "Addr": "10.0.0.2/24"}]},
    }
    one, two = new_task(service, 1, None, "t"), new_task(service, 2, None, "t")
    assert one["Spec"] is two["Spec"] and one["Endpoint"] is two["Endpoint"]
    assert one["Spec"] == service["Spec"]["TaskTemplate"] and one["Spec"] is not service["Spec"]["TaskTemplate"]
    assert one["Endpoint"] == service["Endpoint"] and one["Endpoint"] is not service["Endpoint"]
    updated = {**service, "Spec": {**service["Spec"], "TaskTemplate": {"ContainerSpec": {"Image": "nginx:2"}}}}
    three = new_task(updated, 1, None, "t")  # the service changed: a new object, new copies
    assert three["Spec"]["ContainerSpec"]["Image"] == "nginx:2" and three["Spec"] is not one["Spec"]
    assert one["Spec"]["ContainerSpec"]["Image"] == "nginx:1"
