# Copyright: shoal developers
# Apache License 2.0 (see galaxy.yml)
"""The service mode in swarm_service's terms, jobs included (community.docker's docker_swarm_service
has mode, replicas; Docker's --mode replicated-job|global-job and --max-concurrent add the rest).

A replicated job's O(replicas) is its TotalCompletions, O(max_concurrent) its MaxConcurrent."""

from __future__ import annotations

from typing import Any

MODES = ["replicated", "global", "replicated-job", "global-job"]
_KEYS = {"Replicated": "replicated", "Global": "global", "ReplicatedJob": "replicated-job", "GlobalJob": "global-job"}


def mode_name(mode: dict[str, Any] | None) -> str:
    for key, name in _KEYS.items():
        if (mode or {}).get(key) is not None:
            return name
    return "replicated"


def mode_view(mode: dict[str, Any] | None) -> dict[str, Any]:
    """mode, replicas and max_concurrent of a ServiceSpec's Mode (as the agent filled it)."""
    name = mode_name(mode)
    mode = mode or {}
    if name == "replicated":
        return {"mode": name, "replicas": (mode.get("Replicated") or {}).get("Replicas", 1), "max_concurrent": None}
    if name == "replicated-job":
        job = mode.get("ReplicatedJob") or {}
        return {"mode": name, "replicas": job.get("TotalCompletions"), "max_concurrent": job.get("MaxConcurrent")}
    return {"mode": name, "replicas": None, "max_concurrent": None}


def mode_spec(view: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
    """The Mode to write: the view's options over the current Mode (None in the view: keep)."""
    name = view.get("mode") or mode_name(current)
    before = mode_view(current) if mode_name(current) == name else {}
    replicas = view.get("replicas") if view.get("replicas") is not None else before.get("replicas")
    concurrent = view.get("max_concurrent")
    if concurrent is None:
        concurrent = before.get("max_concurrent")
    if name == "global":
        return {"Global": {}}
    if name == "global-job":
        return {"GlobalJob": {}}
    if name == "replicated-job":
        job: dict[str, Any] = {}
        if replicas is not None:
            job["TotalCompletions"] = replicas
        if concurrent is not None:
            job["MaxConcurrent"] = concurrent
        elif replicas is not None:
            job["MaxConcurrent"] = replicas  # docker's default: all completions at once
        return {"ReplicatedJob": job}
    return {"Replicated": {} if replicas is None else {"Replicas": replicas}}


def mode_conflict(mode: str | None, params: dict[str, Any]) -> str | None:
    """Why replicas/max_replicas/max_concurrent cannot go with ``mode`` (None: they can)."""
    if mode in ("global", "global-job"):
        for key in ("replicas", "max_replicas"):
            if params.get(key) is not None and not (key == "max_replicas" and params[key] == 0):
                return f"{key} applies to replicated services and jobs only, not with mode={mode}"
    if mode not in (None, "replicated-job") and params.get("max_concurrent") is not None:
        return f"max_concurrent applies to mode=replicated-job only, not with mode={mode}"
    if mode in ("replicated-job", "global-job") and params.get("max_replicas"):
        return f"max_replicas applies to replicated services only, not with mode={mode}"
    return None


def job_done(service: dict[str, Any]) -> bool:
    """A job read with status=true has finished its current iteration."""
    spec_mode = (service.get("Spec") or {}).get("Mode") or {}
    status = service.get("ServiceStatus") or {}
    completed = int(status.get("CompletedTasks") or 0)
    if spec_mode.get("ReplicatedJob") is not None:
        return completed >= int((spec_mode["ReplicatedJob"] or {}).get("TotalCompletions") or 0)
    return completed > 0 and not status.get("DesiredTasks") and not status.get("RunningTasks")


def is_job(service: dict[str, Any]) -> bool:
    return mode_name((service.get("Spec") or {}).get("Mode")).endswith("-job")
