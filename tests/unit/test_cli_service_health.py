"""`--health-*` and `--no-healthcheck` of `shoal service create|update`, with docker's rules."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from shoal.cli import service_args as sa
from shoal.cli.errors import CLIError
from shoal.cli.main import build_parser

S = 1_000_000_000


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def create(*flags: str) -> dict[str, Any]:
    return sa.create_spec(parse("service", "create", *flags, "busybox"))["TaskTemplate"]["ContainerSpec"]


def update(container: dict[str, Any], *flags: str) -> dict[str, Any]:
    spec = {"Name": "web", "TaskTemplate": {"ContainerSpec": container}}
    return sa.update_spec(spec, parse("service", "update", *flags, "web"))["TaskTemplate"]["ContainerSpec"]


def test_create_with_every_health_flag() -> None:
    c = create(
        "--health-cmd", "test -f /ok", "--health-interval", "2s", "--health-timeout", "500ms",
        "--health-retries", "4", "--health-start-period", "1m", "--health-start-interval", "1s",
    )  # fmt: skip
    assert c["HealthCheck"] == {
        "Test": ["CMD-SHELL", "test -f /ok"],
        "Interval": 2 * S,
        "Timeout": S // 2,
        "StartPeriod": 60 * S,
        "StartInterval": S,
        "Retries": 4,
    }


def test_create_without_health_flags_leaves_the_images_check() -> None:
    assert "HealthCheck" not in create()
    assert create("--health-interval", "3s")["HealthCheck"] == {"Interval": 3 * S}  # the image's test stays


def test_no_healthcheck() -> None:
    assert create("--no-healthcheck")["HealthCheck"] == {"Test": ["NONE"]}
    with pytest.raises(CLIError, match="--no-healthcheck conflicts with --health-\\* options"):
        create("--no-healthcheck", "--health-retries", "2")


def test_negative_or_malformed_durations_are_usage_errors() -> None:
    for bad in ("-1s", "soon"):
        with pytest.raises(SystemExit):
            create(f"--health-interval={bad}")


def test_update_edits_field_by_field() -> None:
    current = {"Image": "busybox", "HealthCheck": {"Test": ["CMD-SHELL", "a"], "Interval": S, "Retries": 3}}
    c = update(current, "--health-retries", "5")
    assert c["HealthCheck"] == {"Test": ["CMD-SHELL", "a"], "Interval": S, "Retries": 5}
    c = update(current, "--health-cmd", "b")
    assert c["HealthCheck"]["Test"] == ["CMD-SHELL", "b"]
    assert update(current, "--no-healthcheck")["HealthCheck"] == {"Test": ["NONE"]}
    # an update after --no-healthcheck drops NONE, as docker does
    c = update({"Image": "busybox", "HealthCheck": {"Test": ["NONE"]}}, "--health-interval", "2s")
    assert c["HealthCheck"] == {"Interval": 2 * S}
    assert update(current, "--env-add", "A=1")["HealthCheck"] == current["HealthCheck"]
    assert "Test" not in update(current, "--health-cmd", "")["HealthCheck"]


def test_shoal_ps_shows_health_as_docker_ps_does() -> None:
    from shoal.cli.tasks import status_text
    from shoal.model.ids import format_rfc3339

    now = 1_800_000_000 * S
    ts = format_rfc3339(now - 3 * S)
    starting = {"Status": {"State": "starting", "Timestamp": ts}, "Health": {"Status": "starting"}}
    assert status_text(starting, now) == "Up 3 seconds (health: starting)"
    healthy = {"Status": {"State": "running", "Timestamp": ts}, "Health": {"Status": "healthy"}}
    assert status_text(healthy, now) == "Up 3 seconds (healthy)"
    assert status_text({"Status": {"State": "running", "Timestamp": ts}}, now) == "Up 3 seconds"
