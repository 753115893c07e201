"""swarm_service's job modes against the fake agent (shoal's own spec validation): create, idempotence,
completions and concurrency in place, force_update reruns, refusals, waiting for completion."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from unit.test_module_support import FakeAgent, module_runner, serve_fake_agent

from ansible_collections.shoal.swarm.plugins.module_utils import _shoal_jobs as jobs  # isort: skip
from ansible_collections.shoal.swarm.plugins.modules import swarm_service  # isort: skip

BATCH: dict[str, Any] = {"name": "batch", "image": "shoal/host", "mode": "replicated-job", "replicas": 4}


@pytest.fixture
def agent() -> Iterator[FakeAgent]:
    with serve_fake_agent() as fake:
        yield fake.enable_workloads()


@pytest.fixture
def run(agent: FakeAgent):
    return module_runner(swarm_service, agent)


def updates(agent: FakeAgent) -> list[Any]:
    return [w for w in agent.writes() if w[1].startswith("/services") and w[1].endswith("/update")]


def test_replicated_job_created_then_idempotent(agent: FakeAgent, run) -> None:
    failed, result = run(**BATCH, max_concurrent=2)
    assert not failed and result["changed"], result
    spec = agent.find_service("batch")["Spec"]
    assert spec["Mode"] == {"ReplicatedJob": {"MaxConcurrent": 2, "TotalCompletions": 4}}
    assert "UpdateConfig" not in spec
    failed, result = run(**BATCH, max_concurrent=2)
    assert not failed and not result["changed"], result
    failed, result = run(name="batch", image="shoal/host")
    assert not failed and not result["changed"], result


def test_new_job_runs_its_completions_at_once_unless_told(agent: FakeAgent, run) -> None:
    run(**BATCH)
    assert agent.find_service("batch")["Spec"]["Mode"] == {"ReplicatedJob": {"MaxConcurrent": 4, "TotalCompletions": 4}}


def test_completions_and_concurrency_change_in_place(agent: FakeAgent, run) -> None:
    run(**BATCH, max_concurrent=2)
    failed, result = run(name="batch", replicas=6, diff=True)
    assert not failed and result["changes"] == ["replicas"], result
    assert agent.find_service("batch")["Spec"]["Mode"] == {"ReplicatedJob": {"MaxConcurrent": 2, "TotalCompletions": 6}}
    failed, result = run(name="batch", max_concurrent=3)
    assert not failed and result["changes"] == ["max_concurrent"], result
    assert len(updates(agent)) == 2


def test_force_update_reruns_a_job(agent: FakeAgent, run) -> None:
    run(**BATCH)
    failed, result = run(name="batch", force_update=True)
    assert not failed and result["changed"], result
    (update,) = updates(agent)
    assert update[3]["TaskTemplate"]["ForceUpdate"] == 1


def test_global_job_and_refusals(agent: FakeAgent, run) -> None:
    failed, result = run(name="everywhere", image="shoal/host", mode="global-job")
    assert not failed and agent.find_service("everywhere")["Spec"]["Mode"] == {"GlobalJob": {}}
    for args, message in (
        ({"mode": "global-job", "replicas": 2}, "replicas applies to replicated services and jobs only"),
        ({"mode": "replicated", "max_concurrent": 2}, "max_concurrent applies to mode=replicated-job only"),
        ({"mode": "replicated-job", "replicas": -1}, "replicas"),
        ({"mode": "replicated-job", "max_concurrent": -1}, "max_concurrent"),
    ):
        failed, result = run(name="other", image="shoal/host", **args)
        assert failed and message in result["msg"], (args, result)
    failed, result = run(name="everywhere", mode="replicated-job")
    assert failed and "cannot become replicated-job in place" in result["msg"]
    failed, result = run(**BATCH, update_config={"parallelism": 3})
    assert failed and "jobs may not have an update config" in result["msg"], result
    assert sorted(s["Spec"]["Name"] for s in agent.services or []) == ["everywhere"]  # nothing else created


@pytest.mark.parametrize(
    ("mode", "status", "done"),
    [
        ({"ReplicatedJob": {"TotalCompletions": 4}}, {"CompletedTasks": 4, "RunningTasks": 0, "DesiredTasks": 0}, True),
        (
            {"ReplicatedJob": {"TotalCompletions": 4}},
            {"CompletedTasks": 3, "RunningTasks": 1, "DesiredTasks": 1},
            False,
        ),
        ({"GlobalJob": {}}, {"CompletedTasks": 3, "RunningTasks": 0, "DesiredTasks": 0}, True),
        ({"GlobalJob": {}}, {"CompletedTasks": 0, "RunningTasks": 0, "DesiredTasks": 0}, False),
        ({"GlobalJob": {}}, {"CompletedTasks": 2, "RunningTasks": 1, "DesiredTasks": 1}, False),
    ],
)
def test_job_done(mode: dict[str, Any], status: dict[str, int], done: bool) -> None:
    assert jobs.job_done({"Spec": {"Mode": mode}, "ServiceStatus": status}) is done
