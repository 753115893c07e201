"""Job services (Mode.ReplicatedJob, Mode.GlobalJob): their spec rules and status fields.

As SwarmKit: a replicated job runs at most `MaxConcurrent` tasks at once until `TotalCompletions`
tasks have completed; a global job runs once on every eligible node. Each run of the job is an
iteration: `JobStatus.JobIteration` counts them (0 at create, +1 on every update of the service, so
`service update --force` reruns it) and every task carries the iteration it was made for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shoal.errors import SpecError
from shoal.model.task import wants_run
from shoal.model.validate import known_fields

JOB_MODES = ("ReplicatedJob", "GlobalJob")
# Docker's daemon defaults: MaxConcurrent 1, TotalCompletions = MaxConcurrent.
DEFAULT_MAX_CONCURRENT = 1


def is_job(spec: Mapping[str, Any] | None) -> bool:
    """True for a ServiceSpec (validated or not) in a job mode."""
    mode = (spec or {}).get("Mode") or {}
    return isinstance(mode, Mapping) and any(mode.get(k) is not None for k in JOB_MODES)


def _uint(where: str, value: Any, field: str) -> int:
    """The Engine API's *uint64: Docker's decoder refuses a negative or fractional number."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SpecError(
            f"json: cannot unmarshal number {value!r} into Go struct field ReplicatedJob.{where}.{field} of type uint64"
            if isinstance(value, int | float) and not isinstance(value, bool)
            else f"{where}.{field}: invalid value {value!r}: must be a non-negative integer"
        )
    return value


def validate_job_mode(mode: Mapping[str, Any]) -> dict[str, Any]:
    """The normalised Mode of a job (`mode` has exactly one job key set)."""
    if mode.get("GlobalJob") is not None:
        known_fields("Mode.GlobalJob", mode["GlobalJob"] or {}, ())
        return {"GlobalJob": {}}
    where = "Mode.ReplicatedJob"
    raw = mode.get("ReplicatedJob")
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where} must be an object, not {raw!r}")
    job = known_fields(where, raw, ("MaxConcurrent", "TotalCompletions"))
    concurrent = job.get("MaxConcurrent")
    concurrent = DEFAULT_MAX_CONCURRENT if concurrent is None else _uint(where, concurrent, "MaxConcurrent")
    total = job.get("TotalCompletions")
    total = concurrent if total is None else _uint(where, total, "TotalCompletions")
    return {"ReplicatedJob": {"MaxConcurrent": concurrent, "TotalCompletions": total}}


def job_update_configs(update: Mapping[str, Any], rollback: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
    """SwarmKit's validateJob: a job is never rolled out, so an update or rollback config other than
    the defaults the docker CLI always sends would be silently ignored: refuse it."""
    for name, cfg, default in (
        ("UpdateConfig", update, defaults["update"]),
        ("RollbackConfig", rollback, defaults["rollback"]),
    ):
        if dict(cfg) != dict(default):
            raise SpecError(f"jobs may not have an update config ({name} is set)")


def new_job_status(now: str) -> dict[str, Any]:
    return {"JobIteration": {"Index": 0}, "LastExecution": now}


def next_job_status(current: Mapping[str, Any] | None, now: str) -> dict[str, Any]:
    """Every update of a job starts a new iteration, as SwarmKit's UpdateService does."""
    index = int((((current or {}).get("JobIteration")) or {}).get("Index") or 0)
    return {"JobIteration": {"Index": index + 1}, "LastExecution": now}


def job_iteration(obj: Mapping[str, Any]) -> int:
    """The iteration of a service (its JobStatus) or of a task (its JobIteration)."""
    it = obj.get("JobIteration")
    if it is None:
        it = (obj.get("JobStatus") or {}).get("JobIteration")
    return int((it or {}).get("Index") or 0)


def job_service_status(service: Mapping[str, Any], tasks: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """ServiceStatus of a job, over the tasks of its current iteration: CompletedTasks counts the
    completed ones, DesiredTasks the tasks wanted at once now (a replicated job's
    min(MaxConcurrent, completions still to go), a global job's unfinished nodes)."""
    iteration = job_iteration(service)
    mine = [t for t in tasks if t.get("ServiceID") == service.get("ID") and job_iteration(t) == iteration]
    states = [(t.get("Status") or {}).get("State") for t in mine]
    completed = states.count("complete")
    running = states.count("running")
    mode = (service.get("Spec") or {}).get("Mode") or {}
    job = mode.get("ReplicatedJob")
    if job is not None:
        remaining = max(0, int(job.get("TotalCompletions") or 0) - completed)
        desired = min(int(job.get("MaxConcurrent") or 0), remaining)
    else:
        desired = len([t for t in mine if wants_run(t) and (t.get("Status") or {}).get("State") != "complete"])
    return {"RunningTasks": running, "DesiredTasks": desired, "CompletedTasks": completed}
