"""Job services in the CLI: their mode names, `service ls` replicas text, and waiting for a job.

As docker's `service create`/`update` of a job (cli/command/service/progress: the job progress
updaters), the command returns when the job's current iteration is complete (unless --detach):
one line for completions, one for the active tasks, one per slot while there are at most 20.
shoal adds a stall guard: with no task wanted running and no new completion for `timeout`, the
wait fails with the last task error (a job whose restarts are exhausted never completes).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from shoal.cli.client import Client
from shoal.cli.errors import CLIError
from shoal.cli.service_progress import MAX_PROGRESS_BARS, POLL_INTERVAL, View, trunc_error

Service = Mapping[str, Any]


def job_mode_names() -> tuple[tuple[str, str], ...]:
    """Mode key → docker's MODE column."""
    return (("ReplicatedJob", "replicated job"), ("GlobalJob", "global job"))


def job_replicas_suffix(service: Service) -> str:
    """docker's REPLICAS of a job: `1/2 (3/4 completed)`; a global job's total is the nodes still to
    complete (DesiredTasks) plus those that have."""
    mode = (service.get("Spec") or {}).get("Mode") or {}
    status = service.get("ServiceStatus") or {}
    done = int(status.get("CompletedTasks") or 0)
    if mode.get("ReplicatedJob") is not None:
        return f" ({done}/{int(mode['ReplicatedJob'].get('TotalCompletions') or 0)} completed)"
    if mode.get("GlobalJob") is not None:
        return f" ({done}/{int(status.get('DesiredTasks') or 0) + done} completed)"
    return ""


def is_job_service(api: Client, service_id: str) -> bool:
    mode = (api.get(f"/services/{service_id}").get("Spec") or {}).get("Mode") or {}
    return any(k in mode for k, _ in job_mode_names())


def _wanted(task: Mapping[str, Any]) -> bool:
    """The job still wants the task run: DesiredState complete (running from an older agent) and not done."""
    done = (task.get("Status") or {}).get("State") == "complete"
    return task.get("DesiredState") in ("running", "complete") and not done


def _iteration(obj: Mapping[str, Any]) -> int:
    it = obj.get("JobIteration") or (obj.get("JobStatus") or {}).get("JobIteration") or {}
    return int(it.get("Index") or 0)


def job_progress(service: Service, tasks: list[Mapping[str, Any]]) -> tuple[bool, int, list[tuple[str, str]]]:
    """(done, completions, lines) for the tasks of the service's current iteration."""
    iteration = _iteration(service)
    mine = [t for t in tasks if _iteration(t) == iteration]
    state = {t["ID"]: str((t.get("Status") or {}).get("State") or "") for t in mine}
    completed = sum(1 for s in state.values() if s == "complete")
    active = [t for t in mine if _wanted(t)]
    job = ((service.get("Spec") or {}).get("Mode") or {}).get("ReplicatedJob")
    if job is not None:
        total, concurrent = int(job.get("TotalCompletions") or 0), int(job.get("MaxConcurrent") or 0)
        wanted = min(concurrent, max(0, total - completed))
        done = completed >= total
    else:
        total = len({t.get("NodeID") for t in mine})
        wanted = total - completed
        done = bool(mine) and completed >= total and not active
    lines = [
        ("job progress", f"{completed} out of {total} complete"),
        ("active tasks", f"{len(active)} out of {wanted} tasks"),
    ]
    if job is not None and total <= MAX_PROGRESS_BARS:
        by_slot: dict[int, str] = {}
        for t in sorted(mine, key=lambda t: str(t.get("CreatedAt") or "")):
            by_slot[int(t.get("Slot") or 0)] = state[t["ID"]]
        lines += [(f"{slot + 1}/{total}", by_slot[slot]) for slot in sorted(by_slot)]  # slots from 0
    return done, completed, lines


def wait_for_job(
    api: Client,
    service_id: str,
    *,
    out: TextIO | None = None,
    quiet: bool = False,
    timeout_ns: int = 60_000_000_000,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    view = View(out or sys.stdout, quiet=quiet)
    best, best_at = -1, clock()
    last_error = ""
    try:
        while True:
            service = api.get(f"/services/{service_id}")
            tasks = api.get("/tasks", filters={"service": [str(service["ID"])]}) or []
            done, completed, lines = job_progress(service, tasks)
            for key, text in lines:
                view.set(key, text)
            if done:
                view.set("verify", "Job complete")
                view.draw()
                return
            view.draw()
            errors = [str((t.get("Status") or {}).get("Err")) for t in tasks if (t.get("Status") or {}).get("Err")]
            last_error = errors[-1] if errors else last_error
            now = clock()
            running = any(_wanted(t) for t in tasks if _iteration(t) == _iteration(service))
            if completed > best or running:
                best, best_at = max(best, completed), now
            elif (now - best_at) * 1e9 >= timeout_ns:
                reason = f": {trunc_error(last_error)}" if last_error else ""
                raise CLIError(f"job {service_id} did not complete: {completed} tasks complete, none running{reason}")
            sleep(POLL_INTERVAL)
    except KeyboardInterrupt:
        print("Operation continuing in background.", file=view.out)
        print(f"Use `shoal service ps {service_id}` to check progress.", file=view.out)
