"""ContainerSpec.HealthCheck: SwarmKit's validation and wording, and the check a task runs."""

from __future__ import annotations

import pytest

from shoal.errors import SpecError
from shoal.model.healthcheck import effective, probe_argv, validate_healthcheck
from shoal.model.service import validate_service_spec

NS = 1_000_000_000


def spec(hc: object) -> dict:
    return {"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": "busybox", "HealthCheck": hc}}}


def test_a_full_check_is_kept_with_durations_in_nanoseconds() -> None:
    out = validate_service_spec(
        spec({"Test": ["CMD-SHELL", "test -f /ok"], "Interval": "2s", "Timeout": NS, "Retries": 2, "StartPeriod": "1m"})
    )
    assert out["TaskTemplate"]["ContainerSpec"]["HealthCheck"] == {
        "Test": ["CMD-SHELL", "test -f /ok"],
        "Interval": 2 * NS,
        "Timeout": NS,
        "StartPeriod": 60 * NS,
        "Retries": 2,
    }


def test_zero_fields_are_left_out_and_an_empty_check_disappears() -> None:
    assert validate_healthcheck("C", {"Test": [], "Interval": 0, "Retries": 0}) is None
    out = validate_service_spec(spec({"Test": None}))
    assert "HealthCheck" not in out["TaskTemplate"]["ContainerSpec"]
    assert validate_healthcheck("C", {"Test": ["NONE"]}) == {"Test": ["NONE"]}


@pytest.mark.parametrize(
    ("hc", "message"),
    [
        ({"Interval": 999_999}, "ContainerSpec: Interval in HealthConfig cannot be less than 1ms"),
        ({"Timeout": -NS}, "ContainerSpec: Timeout in HealthConfig cannot be less than 1ms"),
        ({"StartPeriod": "-5s"}, "ContainerSpec: StartPeriod in HealthConfig cannot be less than 1ms"),
        ({"StartInterval": "100us"}, "ContainerSpec: StartInterval in HealthConfig cannot be less than 1ms"),
        ({"Retries": -1}, "ContainerSpec: Retries in HealthConfig cannot be negative"),
        ({"Interval": "5 parsecs"}, "Interval: invalid duration"),
        ({"Test": ["CURL", "x"]}, 'unknown test type "CURL"'),
        ({"Test": ["CMD"]}, "CMD needs a command"),
        ({"Test": ["CMD-SHELL", "a", "b"]}, "CMD-SHELL takes exactly one command string"),
        ({"Test": "curl x"}, "Test must be a list of strings"),
        ({"Command": ["x"]}, "Command"),
    ],
)
def test_bad_checks_are_refused_with_swarmkit_wording(hc: dict, message: str) -> None:
    with pytest.raises(SpecError) as err:
        validate_service_spec(spec(hc))
    assert message in err.value.message


def test_the_service_check_inherits_zero_fields_from_the_image_then_docker_defaults() -> None:
    image = {"Test": ["CMD", "/bin/check"], "Interval": 10 * NS, "Retries": 5}
    assert effective(None, image) == {
        "Test": ["CMD", "/bin/check"],
        "Interval": 10 * NS,
        "Timeout": 30 * NS,
        "StartPeriod": 0,
        "StartInterval": 5 * NS,
        "Retries": 5,
    }
    mine = effective({"Test": ["CMD-SHELL", "true"], "Interval": NS}, image)
    assert mine is not None
    assert (mine["Test"], mine["Interval"], mine["Retries"]) == (["CMD-SHELL", "true"], NS, 5)
    assert effective({"Interval": 2 * NS}, image)["Test"] == ["CMD", "/bin/check"]  # type: ignore[index]


def test_none_disables_the_images_check_and_no_test_means_no_check() -> None:
    assert effective({"Test": ["NONE"]}, {"Test": ["CMD", "/bin/check"]}) is None
    assert effective(None, None) is None
    assert effective({"Interval": NS}, {}) is None
    assert effective(None, {"Test": ["NONE"]}) is None


def test_probe_argv() -> None:
    assert probe_argv(["CMD-SHELL", "test -f /ok"]) == ["/bin/sh", "-c", "test -f /ok"]
    assert probe_argv(["CMD", "/bin/true", "x"]) == ["/bin/true", "x"]
