"""Job services: spec validation, status, and the jobs orchestrator's pure pass."""

from __future__ import annotations

from typing import Any

import pytest
from test_orchestrator import T0, commit, nodes, run

from shoal.errors import SpecError
from shoal.model.ids import format_rfc3339
from shoal.model.service import (
    mode_kind,
    service_object,
    service_status,
    updated_service,
    validate_service_spec,
)

NOW = format_rfc3339(T0)


def job_spec(mode: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"Name": "job", "TaskTemplate": {"ContainerSpec": {"Image": "shoal/host"}}, "Mode": mode, **extra}


def job(total: int = 4, concurrent: int = 2, version: int = 10) -> dict[str, Any]:
    spec = job_spec({"ReplicatedJob": {"MaxConcurrent": concurrent, "TotalCompletions": total}})
    svc = service_object("job1", validate_service_spec(spec), NOW)
    svc["Version"]["Index"] = version
    return svc


def global_job() -> dict[str, Any]:
    svc = service_object("gjob", validate_service_spec(job_spec({"GlobalJob": {}})), NOW)
    svc["Version"]["Index"] = 10
    return svc


# --- validation -----------------------------------------------------------------------------------


def test_replicated_job_defaults_as_docker() -> None:
    spec = validate_service_spec(job_spec({"ReplicatedJob": {}}))
    assert spec["Mode"] == {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}}
    spec = validate_service_spec(job_spec({"ReplicatedJob": {"MaxConcurrent": 3}}))
    assert spec["Mode"] == {"ReplicatedJob": {"MaxConcurrent": 3, "TotalCompletions": 3}}
    assert spec["TaskTemplate"]["RestartPolicy"]["Condition"] == "on-failure"
    assert "UpdateConfig" not in spec and "RollbackConfig" not in spec
    assert mode_kind(spec) == "replicated-job"
    assert mode_kind(validate_service_spec(job_spec({"GlobalJob": {}}))) == "global-job"


@pytest.mark.parametrize("field", ["MaxConcurrent", "TotalCompletions"])
def test_negative_job_counts_refused(field: str) -> None:
    with pytest.raises(SpecError, match=f"cannot unmarshal number -1 into Go struct field .*{field} of type uint64"):
        validate_service_spec(job_spec({"ReplicatedJob": {field: -1}}))


def test_job_bad_shapes_refused() -> None:
    with pytest.raises(SpecError, match="only one service mode"):
        validate_service_spec(job_spec({"ReplicatedJob": {}, "Replicated": {"Replicas": 1}}))
    with pytest.raises(SpecError, match="MaxConcurrent"):
        validate_service_spec(job_spec({"ReplicatedJob": {"MaxConcurrent": "2"}}))
    with pytest.raises(SpecError, match="jobs may not have an update config"):
        validate_service_spec(job_spec({"GlobalJob": {}}, UpdateConfig={"Parallelism": 5}))
    with pytest.raises(SpecError, match="MaxReplicas"):
        spec = job_spec({"GlobalJob": {}})
        spec["TaskTemplate"]["Placement"] = {"MaxReplicas": 1}
        validate_service_spec(spec)


def test_job_accepts_the_default_update_config_the_cli_sends() -> None:
    cfg = {"Parallelism": 1, "FailureAction": "pause", "Monitor": 5_000_000_000, "Order": "stop-first"}
    spec = validate_service_spec(job_spec({"GlobalJob": {}}, UpdateConfig=cfg))
    assert "UpdateConfig" not in spec


def test_mode_change_between_job_and_service_refused() -> None:
    current = validate_service_spec(job_spec({"ReplicatedJob": {}}))
    with pytest.raises(SpecError, match="mode change"):
        validate_service_spec(job_spec({"Replicated": {"Replicas": 1}}), current)


def test_every_update_starts_a_new_iteration() -> None:
    svc = job()
    assert svc["JobStatus"] == {"JobIteration": {"Index": 0}, "LastExecution": NOW}
    later = format_rfc3339(T0 + 10**9)
    again = updated_service(svc, svc["Spec"], later)
    assert again["JobStatus"] == {"JobIteration": {"Index": 1}, "LastExecution": later}
    assert "JobStatus" not in service_object("s", validate_service_spec(job_spec({"Replicated": {}})), NOW)


# --- the orchestrator -----------------------------------------------------------------------------


def finish(tasks: list[dict], state: str = "complete", count: int | None = None) -> None:
    """The worker's report: `count` of the running tasks end in `state`."""
    running = [t for t in tasks if t["DesiredState"] in ("running", "complete") and t["Status"]["State"] == "assigned"]
    for t in running[:count]:
        t["Status"] = {**t["Status"], "State": state, "Timestamp": NOW}


def running_now(tasks: list[dict]) -> int:
    return sum(1 for t in tasks if t["DesiredState"] in ("running", "complete") and t["Status"]["State"] == "assigned")


def test_job_tasks_want_complete_from_creation_and_are_placed() -> None:
    # SwarmKit's jobs orchestrator makes a job's tasks with DesiredState COMPLETE (`service ps` shows
    # `Complete  Running`); the scheduler places them and counts them on their nodes as running ones
    svc, ns = job(total=3, concurrent=3), nodes()
    plan = run([svc], [], ns)
    assert [(t["DesiredState"], t["Status"]["State"]) for t in plan.creates] == [("complete", "assigned")] * 3
    assert len({t["NodeID"] for t in plan.creates}) == 3  # spread: each placed task counted on its node
    gtasks = run([global_job()], [], ns).creates
    assert {t["DesiredState"] for t in gtasks} == {"complete"} and len(gtasks) == len(ns)
    # a replicated service's tasks still want running
    plain = service_object("s", validate_service_spec({"Name": "s", "TaskTemplate": job_spec({})["TaskTemplate"]}), NOW)
    assert {t["DesiredState"] for t in run([plain], [], ns).creates} == {"running"}


def test_a_failed_job_task_waiting_for_its_restart_is_kept_from_the_reaper() -> None:
    from shoal.model.task import history_to_prune

    base = {"Slot": 1, "DesiredState": "complete", "CreatedAt": NOW}
    waiting = {**base, "ID": "w", "Status": {"State": "failed", "Timestamp": NOW}}
    older = [{**base, "ID": f"o{i}", "DesiredState": "shutdown", "Status": {"State": "failed"}} for i in range(3)]
    assert history_to_prune([*older, waiting], limit=1) == ["o0", "o1", "o2"]


def test_replicated_job_runs_max_concurrent_until_total_completions() -> None:
    svc, ns = job(total=4, concurrent=2), nodes()
    tasks: list[dict] = []
    for _ in range(10):
        plan = run([svc], tasks, ns)
        tasks = commit(tasks, plan)
        assert running_now(tasks) <= 2
        if not plan.changed() and not running_now(tasks):
            break
        finish(tasks, count=1)
    states = sorted((t["Slot"], t["Status"]["State"], t["DesiredState"]) for t in tasks)
    assert states == [(s, "complete", "complete") for s in (0, 1, 2, 3)]  # SwarmKit's slots of a job
    assert all(t["JobIteration"] == {"Index": 0} for t in tasks)
    status = service_status(svc, tasks)
    assert status == {"RunningTasks": 0, "DesiredTasks": 0, "CompletedTasks": 4}


def test_replicated_job_first_pass_starts_max_concurrent() -> None:
    plan = run([job(total=5, concurrent=2)], [], nodes())
    assert sorted(t["Slot"] for t in plan.creates) == [0, 1]
    assert service_status(job(5, 2), plan.creates)["DesiredTasks"] == 2


def test_failed_job_task_is_restarted_in_its_slot_after_the_delay() -> None:
    svc, ns = job(total=1, concurrent=1), nodes()
    tasks = commit([], run([svc], [], ns))
    finish(tasks, "failed")
    plan = run([svc], tasks, ns)  # restart delay (5 s) not over: the slot waits, nothing new
    assert not plan.creates and plan.wake_at_ns == T0 + 5 * 10**9
    plan = run([svc], tasks, ns, now_ns=T0 + 6 * 10**9)
    assert [t["Slot"] for t in plan.creates] == [0]


def test_completed_job_task_never_reruns_even_with_condition_any() -> None:
    spec = job_spec({"ReplicatedJob": {}})
    spec["TaskTemplate"]["RestartPolicy"] = {"Condition": "any"}
    svc = service_object("j", validate_service_spec(spec), NOW)
    svc["Version"]["Index"] = 3
    ns = nodes()
    tasks = commit([], run([svc], [], ns))
    finish(tasks)
    tasks = commit(tasks, run([svc], tasks, ns, now_ns=T0 + 60 * 10**9))
    plan = run([svc], tasks, ns, now_ns=T0 + 120 * 10**9)
    assert not plan.changed()
    assert [t["DesiredState"] for t in tasks] == ["complete"]


def test_update_reruns_job_and_stops_the_old_iteration() -> None:
    svc, ns = job(total=2, concurrent=2), nodes()
    tasks = commit([], run([svc], [], ns))
    finish(tasks, count=1)  # one done, one still running
    svc2 = updated_service(svc, svc["Spec"], NOW)
    svc2["Version"]["Index"] = 11
    plan = run([svc2], tasks, ns)
    stopped = [t for t in plan.updates.values() if t["DesiredState"] == "shutdown"]
    assert len(stopped) == 1
    assert sorted(t["Slot"] for t in plan.creates) == [0, 1]
    assert {t["JobIteration"]["Index"] for t in plan.creates} == {1}


def test_global_job_runs_once_per_node_and_on_nodes_that_join() -> None:
    svc, ns = global_job(), nodes(2)
    tasks = commit([], run([svc], [], ns))
    assert sorted(t["NodeID"] for t in tasks) == ["node0", "node1"]
    finish(tasks)
    tasks = commit(tasks, run([svc], tasks, ns))
    assert not run([svc], tasks, ns).changed()
    plan = run([svc], tasks, nodes(3))
    assert [t["NodeID"] for t in plan.creates] == ["node2"]
    assert service_status(svc, tasks) == {"RunningTasks": 0, "DesiredTasks": 0, "CompletedTasks": 2}


def test_control_create_update_and_rollback_of_a_job() -> None:
    """Through the control calls and a store: each update (rollback included) is a new iteration, and a
    rollback of a job sets no UpdateStatus (nothing would ever finish it: jobs are not rolled out)."""
    from shoal.manager.control import services as control
    from unit.test_control_race import StateStore

    store = StateStore()
    body = job_spec({"ReplicatedJob": {"TotalCompletions": 2}})
    created, changes = control.create(store, body)
    store.commit(changes)
    assert created["JobStatus"]["JobIteration"] == {"Index": 0}
    svc = control.inspect_service(store, "job")
    store.commit(control.update(store, "job", svc["Version"]["Index"], {**body, "Labels": {"x": "1"}}))
    svc = control.inspect_service(store, "job")
    assert svc["JobStatus"]["JobIteration"] == {"Index": 1}
    store.commit(control.update(store, "job", svc["Version"]["Index"], None))
    svc = control.inspect_service(store, "job")
    assert svc["JobStatus"]["JobIteration"] == {"Index": 2}
    assert "UpdateStatus" not in svc and svc["Spec"]["Labels"] == {}
    listed = control.list_services(store, {}, with_status=True)
    assert listed[0]["ServiceStatus"] == {"RunningTasks": 0, "DesiredTasks": 1, "CompletedTasks": 0}
