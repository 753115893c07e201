"""Rolling updates and rollbacks (SwarmKit's updater, as a pure step over one service).

Each pass replaces at most `Parallelism` out-of-date tasks that are not already being replaced,
waits `Delay` between batches, and applies `FailureAction` when more than `MaxFailureRatio` of
the tasks fail. As SwarmKit's updater (manager/orchestrator/update/updater.go), `Monitor` is a
watch window per new task: a new task that fails before it runs, or within `Monitor` of starting to
run, counts as a failure; one that fails later does not (its restart policy deals with it). The
update is completed only once the last new task has run for `Monitor` without failing: the docker
CLI stops following an update as soon as it reads "completed", so an early one cuts its progress short.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from shoal.manager.orchestrator.common import failed, up_to_date
from shoal.manager.orchestrator.plan import Plan
from shoal.model.ids import parse_rfc3339
from shoal.model.task import is_terminal


@dataclass
class Watch:
    """What this leader's updater has seen of the new tasks, as SwarmKit's ``updatedTasks``: task ID ->
    when it was first seen running (None: seen, not running yet). Kept in memory as SwarmKit keeps it;
    a new leader starts empty and, as SwarmKit's, does not count failures from before it led."""

    since_ns: int = 0  # when this leader's orchestrator started
    running_since: dict[str, int | None] = field(default_factory=dict)
    # task ID -> (the task, the service, whether the task is up to date with it): see `up_to_date`
    fresh: dict[str, tuple[dict[str, Any], dict[str, Any], bool]] = field(default_factory=dict)

    def up_to_date(self, task: dict[str, Any], service: dict[str, Any]) -> bool:
        """`common.up_to_date`, remembered for the very task and service objects (stored objects
        are never changed in place: a new version is a new object). A rolling update's every pass
        compared each of the service's tasks with its template again: 10,000 tasks, a third of the
        pass that starts each batch."""
        known = self.fresh.get(task["ID"])
        if known is not None and known[0] is task and known[1] is service:
            return known[2]
        result = up_to_date(task, service)
        self.fresh[task["ID"]] = (task, service, result)
        return result

    def observe(self, task: dict[str, Any]) -> None:
        state = task["Status"]["State"]
        if state == "running" and self.running_since.get(task["ID"]) is None:
            self.running_since[task["ID"]] = parse_rfc3339(task["Status"]["Timestamp"])
        elif not is_terminal(state):
            self.running_since.setdefault(task["ID"], None)

    def counts(self, task: dict[str, Any], monitor_ns: int) -> bool:
        """Whether the failed new ``task`` failed inside its watch window."""
        failed_ns = parse_rfc3339(task["Status"]["Timestamp"])
        if task["ID"] not in self.running_since:  # failed before this leader saw it: only its own failures
            return failed_ns >= self.since_ns
        started = self.running_since[task["ID"]]
        return started is None or failed_ns - started <= monitor_ns

    def keep_only(self, task_ids: set[str]) -> None:
        for gone in set(self.running_since) - task_ids:
            del self.running_since[gone]
        for gone in set(self.fresh) - task_ids:
            del self.fresh[gone]


def update_config(service: dict[str, Any]) -> dict[str, Any]:
    status = service.get("UpdateStatus") or {}
    key = "RollbackConfig" if str(status.get("State", "")).startswith("rollback") else "UpdateConfig"
    return service["Spec"].get(key) or {}


def _set_status(
    plan: Plan,
    service: dict[str, Any],
    state: str,
    message: str,
    *,
    completed: bool = False,
    spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    updated = copy.deepcopy(plan.service_updates.get(service["ID"], service))
    status = dict(updated.get("UpdateStatus") or {})
    if state in ("updating", "rollback_started"):
        status["StartedAt"] = plan.now
        status.pop("CompletedAt", None)
    status["State"] = state
    status["Message"] = message
    if completed:
        status["CompletedAt"] = plan.now
    updated["UpdateStatus"] = status
    if spec is not None:
        updated["PreviousSpec"], updated["Spec"] = updated["Spec"], spec
    updated["UpdatedAt"] = plan.now
    plan.service_updates[service["ID"]] = updated
    return updated


def step(
    plan: Plan,
    service: dict[str, Any],
    units: dict[Any, list[dict[str, Any]]],
    now_ns: int,
    last_batch_ns: int | None,
    history: list[dict[str, Any]] | None = None,
    watch: Watch | None = None,
) -> tuple[set[Any], bool]:
    """Decide this pass's replacements. `units` maps a slot (or node) to its live tasks.

    Returns the units being replaced in this pass (the caller must not touch them again) and whether a
    batch was started (so the caller can remember when, for Delay).
    """
    status = service.get("UpdateStatus") or {}
    state = status.get("State")
    watch = watch if watch is not None else Watch()

    def fresh_task(task: dict[str, Any]) -> bool:
        return watch.up_to_date(task, service)

    dirty = {u: ts for u, ts in units.items() if ts and not fresh_task(ts[-1])}
    if state in ("paused", "rollback_paused"):
        return set(dirty), False  # frozen until the user updates again
    if not dirty and state not in ("updating", "rollback_started"):
        return set(), False
    cfg = update_config(service)
    started_ns = parse_rfc3339(status["StartedAt"]) if status.get("StartedAt") else now_ns
    fresh = [ts[-1] for ts in units.values() if ts and fresh_task(ts[-1])]
    fresh_since = [t for t in fresh if parse_rfc3339(t["CreatedAt"]) >= started_ns]
    in_flight = [t for t in fresh_since if t["Status"]["State"] not in ("running",) and not failed(t)]
    # failures of new tasks anywhere in the service's history: a restarted one leaves its unit
    new_tasks = [t for t in (history or []) if fresh_task(t) and parse_rfc3339(t["CreatedAt"]) >= started_ns]
    monitor_ns = int(cfg.get("Monitor", 0))
    for t in new_tasks:
        watch.observe(t)
    failures = [t for t in new_tasks if failed(t) and watch.counts(t, monitor_ns)]
    total = max(1, len(units))
    if failures and len(failures) / total > float(cfg.get("MaxFailureRatio", 0)):
        action = cfg.get("FailureAction", "pause")
        rolling_back = str(state).startswith("rollback")
        if action == "rollback" and not rolling_back and service.get("PreviousSpec"):
            _set_status(
                plan,
                service,
                "rollback_started",
                "update rolled back due to failure or early termination of task " + failures[0]["ID"],
                spec=copy.deepcopy(service["PreviousSpec"]),
            )
            return set(dirty), False
        if action in ("pause", "rollback"):
            _set_status(
                plan,
                service,
                "rollback_paused" if rolling_back else "paused",
                f"update paused due to failure or early termination of task {failures[0]['ID']}",
            )
            return set(dirty), False
    if not dirty and not in_flight:
        if state in ("updating", "rollback_started") and fresh_since:
            settled_ns = max(parse_rfc3339(t["Status"]["Timestamp"]) for t in fresh_since) + monitor_ns
            if now_ns < settled_ns:
                plan.wake(settled_ns)
                return set(), False
        if state in ("updating", "rollback_started"):
            done = "rollback_completed" if state == "rollback_started" else "completed"
            _set_status(
                plan,
                service,
                done,
                "rollback completed" if done.startswith("rollback") else "update completed",
                completed=True,
            )
        return set(), False
    if state not in ("updating", "rollback_started"):
        _set_status(plan, service, "updating", "update in progress")
    parallelism = int(cfg.get("Parallelism", 1)) or len(dirty)
    delay = int(cfg.get("Delay", 0))
    if last_batch_ns is not None and now_ns < last_batch_ns + delay:
        plan.wake(last_batch_ns + delay)
        return set(dirty), False
    room = max(0, parallelism - len(in_flight))
    chosen = sorted(dirty, key=str)[:room]
    start_first = cfg.get("Order") == "start-first"
    for unit in chosen:
        old = dirty[unit][-1]
        slot = old.get("Slot") if "Slot" in old else None
        node = None if slot is not None else old.get("NodeID")
        if not start_first:
            plan.shutdown(old)
        plan.create(service, slot, node)
    # start-first: an old task is shut down once its replacement runs (see reconcile)
    return set(dirty), bool(chosen)
