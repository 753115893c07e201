"""The job flags of `service create`/`update` (docker's --mode replicated-job|global-job,
--replicas, --max-concurrent), kept apart from service_args.py so that file stays small."""

from __future__ import annotations

import argparse
from typing import Any

from shoal.cli.errors import CLIError

JOB_MODES = ("replicated-job", "global-job")


def job_mode(mode: str) -> dict[str, Any] | None:
    """The Mode `service create --mode` asks for, when it is a job."""
    if mode == "replicated-job":
        return {"ReplicatedJob": {}}
    if mode == "global-job":
        return {"GlobalJob": {}}
    return None


def is_job_mode(mode: dict[str, Any]) -> bool:
    return "ReplicatedJob" in mode or "GlobalJob" in mode


def apply_job_flags(spec: dict[str, Any], args: argparse.Namespace) -> None:
    """--replicas (TotalCompletions) and --max-concurrent of a job, in place, as docker's
    ToServiceMode/updateService: a new replicated job runs --replicas at once unless told otherwise."""
    mode = spec.get("Mode") or {}
    replicas, concurrent = args.replicas, getattr(args, "max_concurrent", None)
    if "ReplicatedJob" not in mode:
        if concurrent is not None:
            raise CLIError("max-concurrent can only be used with replicated-job mode")
        if replicas is not None and "GlobalJob" in mode:
            raise CLIError("replicas can only be used with replicated or replicated-job mode")
        return
    job = mode["ReplicatedJob"] if isinstance(mode["ReplicatedJob"], dict) else {}
    if replicas is not None:
        job["TotalCompletions"] = replicas
        job.setdefault("MaxConcurrent", replicas)
    if concurrent is not None:
        job["MaxConcurrent"] = concurrent
    spec["Mode"] = {"ReplicatedJob": job}


def scaled_mode(mode: dict[str, Any], replicas: int) -> dict[str, Any]:
    """docker's `service scale`: Replicas of a replicated service, TotalCompletions of a replicated job."""
    if "Replicated" in mode:
        return {"Replicated": {**(mode["Replicated"] or {}), "Replicas": replicas}}
    if "ReplicatedJob" in mode:
        return {"ReplicatedJob": {**(mode["ReplicatedJob"] or {}), "TotalCompletions": replicas}}
    raise CLIError("scale can only be used with replicated or replicated-job mode")
