"""The CLI's job flags, `service ls` text of jobs and the job progress (pure, no agent)."""

from __future__ import annotations

import argparse
import io
from typing import Any

import pytest

from shoal.cli import service_args as sa
from shoal.cli.errors import CLIError
from shoal.cli.job_progress import job_progress, wait_for_job
from shoal.cli.main import build_parser
from shoal.cli.service import replicas_text, service_mode


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def create(*flags: str) -> dict[str, Any]:
    return sa.create_spec(parse("service", "create", *flags, "shoal/host"), str)


def test_create_replicated_job_as_docker() -> None:
    assert create("--mode", "replicated-job")["Mode"] == {"ReplicatedJob": {}}  # the agent's defaults: 1 and 1
    assert create("--mode", "replicated-job", "--replicas", "4")["Mode"] == {
        "ReplicatedJob": {"TotalCompletions": 4, "MaxConcurrent": 4}
    }
    spec = create("--mode", "replicated-job", "--replicas", "4", "--max-concurrent", "2")
    assert spec["Mode"] == {"ReplicatedJob": {"TotalCompletions": 4, "MaxConcurrent": 2}}
    assert create("--mode", "global-job")["Mode"] == {"GlobalJob": {}}


def test_job_flag_misuse_is_refused() -> None:
    with pytest.raises(CLIError, match="max-concurrent can only be used with replicated-job mode"):
        create("--max-concurrent", "2")
    with pytest.raises(CLIError, match="replicas can only be used with replicated or replicated-job mode"):
        create("--mode", "global-job", "--replicas", "2")


def test_negative_replicas_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("--replicas=-1", "--max-concurrent=-1"):
        with pytest.raises(SystemExit) as e:
            parse("service", "create", "--mode", "replicated-job", flag, "shoal/host")
        assert e.value.code == 2
        assert "-1 must not be negative" in capsys.readouterr().err


def test_update_job_counts_and_force() -> None:
    spec = {"Name": "j", "Mode": {"ReplicatedJob": {"MaxConcurrent": 2, "TotalCompletions": 4}}, "TaskTemplate": {}}
    new = sa.update_spec(spec, parse("service", "update", "--replicas", "6", "--force", "j"), str)
    assert new["Mode"] == {"ReplicatedJob": {"MaxConcurrent": 2, "TotalCompletions": 6}}
    assert new["TaskTemplate"]["ForceUpdate"] == 1


def _svc(mode: dict[str, Any], status: dict[str, int] | None = None, iteration: int = 0) -> dict[str, Any]:
    return {
        "ID": "s",
        "Spec": {"Mode": mode},
        "ServiceStatus": status or {},
        "JobStatus": {"JobIteration": {"Index": iteration}},
    }


def test_service_ls_mode_and_replicas_of_jobs() -> None:
    svc = _svc(
        {"ReplicatedJob": {"MaxConcurrent": 2, "TotalCompletions": 4}},
        {"RunningTasks": 1, "DesiredTasks": 2, "CompletedTasks": 3},
    )
    assert service_mode(svc) == "replicated job"
    assert replicas_text(svc) == "1/2 (3/4 completed)"
    assert service_mode(_svc({"GlobalJob": {}})) == "global job"
    status = {"RunningTasks": 1, "DesiredTasks": 1, "CompletedTasks": 2}
    assert replicas_text(_svc({"GlobalJob": {}}, status)) == "1/1 (2/3 completed)"


def _task(slot: int, state: str, desired: str = "running", iteration: int = 0) -> dict[str, Any]:
    return {
        "ID": f"t{slot}{state}{iteration}",
        "Slot": slot,
        "NodeID": f"n{slot}",
        "DesiredState": desired,
        "Status": {"State": state},
        "JobIteration": {"Index": iteration},
        "CreatedAt": f"2026-01-01T00:00:0{slot}Z",
    }


def test_job_progress_counts_the_current_iteration_only() -> None:
    svc = _svc({"ReplicatedJob": {"MaxConcurrent": 2, "TotalCompletions": 3}}, iteration=1)
    old = [
        _task(1, "complete", "complete", 0),
        _task(2, "complete", "complete", 0),
        _task(3, "complete", "complete", 0),
    ]
    done, completed, lines = job_progress(
        svc, [*old, _task(1, "complete", "complete", 1), _task(2, "running", iteration=1)]
    )
    assert (done, completed) == (False, 1)
    assert dict(lines)["job progress"] == "1 out of 3 complete"
    assert dict(lines)["active tasks"] == "1 out of 2 tasks"
    assert dict(lines)["3/3"] == "running"  # slot 2: docker's labels count slots from 0


class FakeAPI:
    def __init__(self, service: dict[str, Any], rounds: list[list[dict[str, Any]]]) -> None:
        self.service, self.rounds = service, rounds

    def get(self, path: str, **_: Any) -> Any:
        if path.startswith("/services/"):
            return self.service
        return self.rounds.pop(0) if len(self.rounds) > 1 else self.rounds[0]


def test_wait_for_job_returns_when_complete_and_fails_when_stuck() -> None:
    svc = _svc({"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 2}})
    rounds = [[_task(1, "running")], [_task(1, "complete", "complete"), _task(2, "running")],
              [_task(1, "complete", "complete"), _task(2, "complete", "complete")]]  # fmt: skip
    out = io.StringIO()
    wait_for_job(FakeAPI(svc, rounds), "s", out=out, sleep=lambda _: None)  # type: ignore[arg-type]
    assert out.getvalue().splitlines()[-1] == "verify: Job complete"
    stuck = [[_task(1, "failed", "shutdown")]]
    now = [0.0]

    def tick(_: float) -> None:
        now[0] += 30

    with pytest.raises(CLIError, match="did not complete"):
        wait_for_job(FakeAPI(svc, stuck), "s", out=io.StringIO(), sleep=tick, clock=lambda: now[0])  # type: ignore[arg-type]


def test_scale_sets_a_replicated_jobs_completions() -> None:
    from shoal.cli.job_args import scaled_mode

    job = {"ReplicatedJob": {"MaxConcurrent": 2, "TotalCompletions": 4}}
    assert scaled_mode(job, 6) == {"ReplicatedJob": {"MaxConcurrent": 2, "TotalCompletions": 6}}
    assert scaled_mode({"Replicated": {"Replicas": 1}}, 3) == {"Replicated": {"Replicas": 3}}
    with pytest.raises(CLIError, match="replicated or replicated-job mode"):
        scaled_mode({"GlobalJob": {}}, 3)
