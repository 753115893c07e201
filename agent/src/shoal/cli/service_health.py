"""`--health-*` and `--no-healthcheck` of `service create|update`, with docker's rules
(cli/command/service/opts.go toHealthConfig, update.go updateHealthcheck). Pure."""

from __future__ import annotations

import argparse
from typing import Any

from shoal.cli import args as argtypes
from shoal.cli.errors import CLIError

# dest -> ContainerSpec.HealthCheck field, for the duration flags
DURATIONS = {
    "health_interval": "Interval",
    "health_timeout": "Timeout",
    "health_start_period": "StartPeriod",
    "health_start_interval": "StartInterval",
}
CONFLICT = "--no-healthcheck conflicts with --health-* options"


def add_health_flags(p: argparse.ArgumentParser) -> None:
    dur = argtypes.duration
    p.add_argument("--health-cmd", metavar="CMD", help="command to run to check health")
    p.add_argument("--health-interval", type=dur, metavar="DURATION", help="time between running the check (ms|s|m|h)")
    p.add_argument("--health-timeout", type=dur, metavar="DURATION", help="maximum time to allow one check to run")
    p.add_argument("--health-retries", type=int, metavar="N", help="consecutive failures needed to report unhealthy")
    p.add_argument(
        "--health-start-period",
        type=dur,
        metavar="DURATION",
        help="start period for the task to initialize before counting retries towards unstable",
    )
    p.add_argument(
        "--health-start-interval", type=dur, metavar="DURATION", help="time between checks during the start period"
    )
    p.add_argument(
        "--no-healthcheck", action="store_true", default=None, help="disable any container-specified HEALTHCHECK"
    )


def _given(args: argparse.Namespace) -> bool:
    return any(getattr(args, d, None) is not None for d in (*DURATIONS, "health_cmd", "health_retries"))


def create_healthcheck(args: argparse.Namespace) -> dict[str, Any] | None:
    """The HealthCheck `service create` sends, None when no flag is given (the image's applies)."""
    if getattr(args, "no_healthcheck", None):
        if _given(args):
            raise CLIError(CONFLICT)
        return {"Test": ["NONE"]}
    if not _given(args):
        return None
    hc: dict[str, Any] = {}
    if args.health_cmd:
        hc["Test"] = ["CMD-SHELL", args.health_cmd]
    for dest, field in DURATIONS.items():
        if getattr(args, dest) is not None:
            hc[field] = getattr(args, dest)
    if args.health_retries is not None:
        hc["Retries"] = args.health_retries
    return hc


def update_healthcheck(container: dict[str, Any], args: argparse.Namespace) -> None:
    """`service update`: edit the current HealthCheck field by field (in place)."""
    if not getattr(args, "no_healthcheck", None) and not _given(args):
        return
    if args.no_healthcheck:
        if _given(args):
            raise CLIError(CONFLICT)
        container["HealthCheck"] = {"Test": ["NONE"]}
        return
    hc = dict(container.get("HealthCheck") or {})
    if (hc.get("Test") or [""])[0] == "NONE":
        hc.pop("Test", None)
    for dest, field in DURATIONS.items():
        if getattr(args, dest) is not None:
            hc[field] = getattr(args, dest)
    if args.health_retries is not None:
        hc["Retries"] = args.health_retries
    if args.health_cmd is not None:
        if args.health_cmd:
            hc["Test"] = ["CMD-SHELL", args.health_cmd]
        else:
            hc.pop("Test", None)
    container["HealthCheck"] = hc
