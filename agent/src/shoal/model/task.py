"""Tasks: their states, constructor, names, and the restart and history rules of SwarmKit.

Everything here is pure: IDs may be passed in and clocks always are, so the orchestrator can
decide before proposing to Raft and the tests need no sleeping.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from shoal.errors import SpecError
from shoal.model.ids import new_id, parse_duration, parse_rfc3339
from shoal.model.pulloptions import same_but_pull_options
from shoal.model.sharedcopy import CopiesByObject

# Docker's TaskState enum in SwarmKit's order. "allocated" and "ready" are in the API even though
# shoal's loops skip them. The scheduler imports this tuple.
TASK_STATES = (
    "new",
    "allocated",
    "pending",
    "assigned",
    "accepted",
    "preparing",
    "ready",
    "starting",
    "running",
    "complete",
    "shutdown",
    "failed",
    "rejected",
    "remove",
    "orphaned",
)
_RANK = {s: i for i, s in enumerate(TASK_STATES)}
_ASSIGNED = _RANK["assigned"]
_RUNNING = _RANK["running"]
_COMPLETE = _RANK["complete"]

NS = 1_000_000_000
DEFAULT_HISTORY_LIMIT = 5  # SwarmSpec.Orchestration.TaskHistoryRetentionLimit
DEFAULT_RESTART_DELAY = 5 * NS
RESTART_DEFAULTS: dict[str, Any] = {"Condition": "any", "Delay": DEFAULT_RESTART_DELAY, "MaxAttempts": 0, "Window": 0}
CREATED_MESSAGE = "created"


# what a task may be asked to reach while the cluster wants it run: a job's tasks are made with
# DesiredState complete, as SwarmKit makes them, every other task with running
RUN_DESIRED = ("running", "complete")


def wants_run(task: Mapping[str, Any]) -> bool:
    """The cluster wants the task run (or kept running): its desired state is running, or complete (a job's)."""
    return (task.get("DesiredState") or "running") in RUN_DESIRED


def state_rank(state: str) -> int:
    """The position of `state` in the task lifecycle; SpecError (a 400, and a ValueError) for an
    unknown state, which a worker's status report may carry."""
    try:
        return _RANK[state]
    except KeyError:
        raise SpecError(f"unknown task state {state!r}") from None


def is_terminal(state: str) -> bool:
    """COMPLETE or later: the task will never run again."""
    return state_rank(state) >= _COMPLETE


def can_move(from_state: str, to_state: str) -> bool:
    """True unless `to_state` is behind `from_state`: states only move forward, so an older
    report arriving late is dropped. A repeat of the same state passes (it may carry a pid)."""
    return state_rank(to_state) >= state_rank(from_state)


def _dig(d: Mapping[str, Any] | None, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, Mapping):
            return None
        d = d.get(k)
    return d


def _ts(value: Any) -> int:
    """Nanoseconds of an RFC 3339 timestamp; missing or bad ones sort first (as SwarmKit's nil)."""
    try:
        return parse_rfc3339(value)
    except SpecError:
        return 0


def _created(task: Mapping[str, Any]) -> int:
    return _ts(task.get("CreatedAt"))


# --- construction -------------------------------------------------------------------------------


# one copy of a service's TaskTemplate and Endpoint per stored object, shared by the tasks a pass
# creates from it (model/sharedcopy.py)
_copies_of = CopiesByObject(
    lambda service: (
        copy.deepcopy((service.get("Spec") or {}).get("TaskTemplate") or {}),
        copy.deepcopy(service.get("Endpoint") or {}),
    ),
    1024,
)


def new_task(
    service: Mapping[str, Any], slot: int | None, node_id: str | None, now: str, task_id: str | None = None
) -> dict[str, Any]:
    """A NEW task of `service` for a replicated `slot` (from 1) or, for a global service, `node_id`.

    The task carries its own copy of the TaskTemplate (a later service update does not change
    it: that is how the orchestrator sees it is dirty) and of the service's Endpoint, so that
    the scheduler's host-port filter and the network code see the ports without the service.
    """
    if slot is None and not node_id:
        raise ValueError("a task needs a slot (replicated) or a node (global)")
    spec = service.get("Spec") or {}
    template, endpoint = _copies_of(service)
    task: dict[str, Any] = {
        "ID": task_id or new_id(),
        "Version": {"Index": 0},
        "CreatedAt": now,
        "UpdatedAt": now,
        "Labels": {},
        "Spec": template,
        "ServiceID": service["ID"],
    }
    if slot is not None:
        task["Slot"] = slot
    if node_id:
        task["NodeID"] = node_id
    task.update(
        {
            # Labels: the {{.Service.Labels}} of the task's templates, rendered on its node
            "ServiceAnnotations": {
                "Name": spec.get("Name") or "",
                **({"Labels": spec["Labels"]} if spec.get("Labels") else {}),
            },
            "DesiredState": "complete" if _is_job_mode(spec) else "running",
            "Status": {"Timestamp": now, "State": "new", "Message": CREATED_MESSAGE},
            "Endpoint": endpoint,
            "SpecVersion": {"Index": _dig(service, "Version", "Index") or 0},
        }
    )
    return task


def _is_job_mode(spec: Mapping[str, Any]) -> bool:
    mode = spec.get("Mode") or {}
    return "ReplicatedJob" in mode or "GlobalJob" in mode


def task_name(task: Mapping[str, Any], service_name: str, full: bool = False) -> str:
    """`web.1` (replicated) or `web.<node id>` (global); with `full`, `.<task id>` follows,
    which is the name `docker ps` shows for the task's container."""
    slot = task.get("Slot")
    name = f"{service_name}.{slot}" if slot else f"{service_name}.{task.get('NodeID') or ''}"
    return f"{name}.{task['ID']}" if full else name


def with_status(
    task: Mapping[str, Any],
    state: str,
    message: str,
    now: str,
    err: str | None = None,
    exit_code: int | None = None,
    pid: int | None = None,
) -> dict[str, Any]:
    """A copy of `task` with a new Status. Only the top level and Status are new: nested values
    such as Spec are shared with `task`, which callers treat as immutable (tasks are many)."""
    state_rank(state)
    out = dict(task)
    previous = task.get("Status") or {}
    status: dict[str, Any] = {"Timestamp": now, "State": state, "Message": message}
    if err:
        status["Err"] = err
    container = dict(previous.get("ContainerStatus") or {})
    if pid is not None:
        container["PID"] = pid
    if exit_code is not None:
        container["ExitCode"] = exit_code
        if pid is None:
            container["PID"] = 0  # the process is gone, as Docker shows it
    if container:
        status["ContainerStatus"] = container
    if previous.get("PortStatus"):
        status["PortStatus"] = previous["PortStatus"]
    out["Status"] = status
    out["UpdatedAt"] = now
    return out


def exit_message(exit_code: int) -> str:
    """Status.Err for a process that exited: `task: non-zero exit (137)`; "" for exit 0."""
    return f"task: non-zero exit ({exit_code})" if exit_code else ""


def _pulled_with_other_options(spec: Mapping[str, Any], task: Mapping[str, Any]) -> bool:
    """SwarmKit's exception in IsTaskDirty (swarmkit#971): a task meant to run that is past its
    pull (ready to running) is not replaced because only the credentials to pull with changed,
    as `service update --with-registry-auth` with fresh credentials changes them."""
    state = (task.get("Status") or {}).get("State") or "new"
    desired = task.get("DesiredState") or "running"
    if not (state_rank(desired) <= _COMPLETE and _RANK["ready"] <= state_rank(state) <= _RUNNING):
        return False
    return same_but_pull_options(task.get("Spec"), spec.get("TaskTemplate"))


def task_dirty(service: Mapping[str, Any], task: Mapping[str, Any]) -> bool:
    """True when `task` was made from another TaskTemplate or EndpointSpec than the service's
    (SwarmKit's IsTaskDirty): the rolling update must replace it."""
    spec = service.get("Spec") or {}
    if (task.get("Spec") or {}) != (spec.get("TaskTemplate") or {}) and not _pulled_with_other_options(spec, task):
        return True
    if task.get("Endpoint") is None:
        return False

    def key(e: Mapping[str, Any] | None) -> tuple[str, list[Any]]:
        return ((e or {}).get("Mode") or "vip", (e or {}).get("Ports") or [])

    return key(_dig(task, "Endpoint", "Spec")) != key(spec.get("EndpointSpec"))


# --- restarts and history -----------------------------------------------------------------------


def _policy(policy: Mapping[str, Any] | None) -> dict[str, Any]:
    p = {**RESTART_DEFAULTS, **{k: v for k, v in (policy or {}).items() if v is not None}}
    p["Delay"], p["Window"] = parse_duration(p["Delay"]), parse_duration(p["Window"])
    return p


def _restart_times(task: Mapping[str, Any], history: Iterable[Mapping[str, Any]]) -> list[int]:
    """Creation times of the restarts made for the slot under the task's current spec.

    The oldest task of the spec was not a restart (create, scale or update made it); every later
    one was. A different spec resets the count, as SwarmKit's per-SpecVersion history does.
    `history_to_prune` keeps MaxAttempts + 1 tasks, enough to tell when the limit is reached.
    """
    spec = task.get("Spec")
    same = [t for t in history if t.get("ID") != task.get("ID") and t.get("Spec") == spec]
    created = sorted(_created(t) for t in [*same, task])
    return created[1:]


def restart_decision(
    policy: Mapping[str, Any] | None,
    task: Mapping[str, Any],
    history_of_slot: Iterable[Mapping[str, Any]],
    now_ns: int,
    *,
    drained: bool = False,
) -> tuple[bool, int]:
    """Whether the orchestrator replaces `task` (which stopped, or whose node is gone), and the
    earliest time (ns) the replacement may start, following SwarmKit's restart supervisor.

    `policy` is the task's RestartPolicy (None: Docker's defaults); `history_of_slot` the tasks
    of the same slot (replicated) or service and node (global), `task` may be among them.
    MaxAttempts counts restarts under the same spec, within Window before the task stopped (0:
    since the spec was set). A task moved off a `drained` node restarts without the delay.

    The delay runs from the task's last status time (when it stopped), not from `now_ns`, so a
    reconcile loop asking again gets the same answer and can sleep until then. A task still
    "running" on a lost node is thus replaced at once unless it only just started.
    """
    if state_rank(task.get("DesiredState") or "running") > _COMPLETE:  # a job's tasks: complete (SwarmKit's)
        return False, 0  # someone (the user, an update, a scale-down) already stopped it on purpose
    p = _policy(policy)
    state = _dig(task, "Status", "State") or "new"
    if p["Condition"] == "none" or (p["Condition"] == "on-failure" and state == "complete"):
        return False, 0
    stopped = _ts(_dig(task, "Status", "Timestamp")) or now_ns
    max_attempts = int(p["MaxAttempts"] or 0)
    if max_attempts > 0:
        restarts = _restart_times(task, history_of_slot)
        if p["Window"] > 0:
            restarts = [t for t in restarts if stopped - p["Window"] < t <= stopped]
        if len(restarts) >= max_attempts:
            return False, 0
    if drained:
        return True, now_ns
    # min(): a status stamped by a node whose clock runs ahead never waits more than Delay.
    return True, min(stopped, now_ns) + p["Delay"]


def _prunable(task: Mapping[str, Any]) -> bool:
    """SwarmKit's task reaper: no longer wanted, and either finished or never reached a node."""
    desired = state_rank(task.get("DesiredState") or "running")
    state = state_rank(_dig(task, "Status", "State") or "new")
    if desired <= _RUNNING or (desired == _COMPLETE and state != _COMPLETE):
        return False  # wanted still (a job's task stays until it completes or is given up)
    return state > _RUNNING or state < _ASSIGNED


def history_to_prune(
    tasks_of_slot: Iterable[Mapping[str, Any]],
    limit: int = DEFAULT_HISTORY_LIMIT,
    *,
    max_attempts: int | None = None,
) -> list[str]:
    """IDs of the tasks to delete so that a slot keeps at most `limit` tasks, oldest (by status
    time) first; running or wanted tasks are never deleted. A negative limit keeps everything.

    When the restart policy has MaxAttempts (taken from the newest task's spec unless given),
    at least MaxAttempts + 1 tasks stay, as in SwarmKit: `restart_decision` counts them.
    """
    if limit < 0:
        return []
    tasks = list(tasks_of_slot)
    if len(tasks) <= limit:  # MaxAttempts only ever keeps more: nothing to read (30,000 slots a pass)
        return []
    if max_attempts is None:
        newest = max(tasks, key=_created, default=None)
        max_attempts = int(_dig(newest, "Spec", "RestartPolicy", "MaxAttempts") or 0)
    keep = max(limit, max_attempts + 1) if max_attempts > 0 else limit
    excess = len(tasks) - keep
    if excess <= 0:
        return []
    out: list[str] = []
    for t in sorted(tasks, key=lambda t: (_ts(_dig(t, "Status", "Timestamp")), _created(t))):
        if _prunable(t):
            out.append(t["ID"])
            if len(out) == excess:
                break
    return out
