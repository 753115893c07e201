"""ContainerSpec.HealthCheck: validation (SwarmKit's controlapi rules and wording) and the check a
task really runs (the service's fields over the image's `Healthcheck`, Docker's defaults last).

Pure: the API validates with it, the task driver resolves with it, the worker runs the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shoal.errors import SpecError
from shoal.model.validate import _duration, _int, _object, known_fields

NS = 1_000_000_000
MINIMUM_DURATION = 1_000_000  # 1ms: Docker's containertypes.MinimumDuration
# daemon/health.go's defaults, used for a field left at 0 by both the service and the image
DEFAULT_INTERVAL = 30 * NS
DEFAULT_TIMEOUT = 30 * NS
DEFAULT_START_PERIOD = 0
DEFAULT_START_INTERVAL = 5 * NS
DEFAULT_RETRIES = 3

DURATION_FIELDS = ("Interval", "Timeout", "StartPeriod", "StartInterval")
FIELDS = ("Test", *DURATION_FIELDS, "Retries")
TEST_KINDS = ("NONE", "CMD", "CMD-SHELL")


def _test(where: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{where}.Test must be a list of strings, not {value!r}")
    if not value:
        return []  # inherit the image's test
    kind = value[0]
    if kind not in TEST_KINDS:
        raise SpecError(f'{where}.Test: unknown test type "{kind}": the first element must be NONE, CMD or CMD-SHELL')
    if kind == "NONE" and len(value) != 1:
        raise SpecError(f"{where}.Test: NONE takes no arguments")
    if kind == "CMD" and len(value) < 2:
        raise SpecError(f"{where}.Test: CMD needs a command")
    if kind == "CMD-SHELL" and (len(value) != 2 or not value[1].strip()):
        raise SpecError(f"{where}.Test: CMD-SHELL takes exactly one command string")
    return list(value)


def _pretty(ns: int) -> str:
    """Go's time.Duration String for the minimum (1ms) that the messages quote."""
    return f"{ns // 1_000_000}ms"


def validate_healthcheck(where: str, value: Any) -> dict[str, Any] | None:
    """The normalised HealthCheck (fields at their zero value left out, as `service inspect` shows
    them), or None when nothing is set. Durations are integer nanoseconds or Go duration strings."""
    if value is None:
        return None
    hc = known_fields(f"{where}.HealthCheck", _object(f"{where}.HealthCheck", value), FIELDS)
    out: dict[str, Any] = {}
    test = _test(f"{where}.HealthCheck", hc.get("Test"))
    if test:
        out["Test"] = test
    for field in DURATION_FIELDS:
        raw = hc.get(field)
        ns = 0 if raw is None else _duration(f"{where}.HealthCheck.{field}", raw)
        if ns != 0 and ns < MINIMUM_DURATION:
            # SwarmKit's controlapi wording; a negative duration falls here too
            raise SpecError(f"ContainerSpec: {field} in HealthConfig cannot be less than {_pretty(MINIMUM_DURATION)}")
        if ns:
            out[field] = ns
    retries = hc.get("Retries")
    if retries is not None:
        if isinstance(retries, int) and not isinstance(retries, bool) and retries < 0:
            raise SpecError("ContainerSpec: Retries in HealthConfig cannot be negative")
        retries = _int(f"{where}.HealthCheck.Retries", retries, minimum=0)
        if retries:
            out["Retries"] = retries
    return out or None


def _image_field(image_hc: Mapping[str, Any], field: str) -> Any:
    """An image config's Healthcheck field (Docker writes the Go names; OCI tools sometimes lower-case)."""
    value = image_hc.get(field)
    return value if value is not None else image_hc.get(field[0].lower() + field[1:])


def effective(spec_hc: Mapping[str, Any] | None, image_hc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The check the task runs: the service's fields, each zero one inherited from the image (as
    the daemon merges a container's Healthcheck with its image's), then Docker's defaults. None
    when there is no test or the test is ["NONE"] (`--no-healthcheck` disables the image's)."""
    spec_hc = spec_hc or {}
    image_hc = image_hc if isinstance(image_hc, Mapping) else {}
    test = list(spec_hc.get("Test") or _image_field(image_hc, "Test") or [])
    if not test or test[0] == "NONE" or test[0] not in ("CMD", "CMD-SHELL") or len(test) < 2:
        return None
    defaults = {
        "Interval": DEFAULT_INTERVAL,
        "Timeout": DEFAULT_TIMEOUT,
        "StartPeriod": DEFAULT_START_PERIOD,
        "StartInterval": DEFAULT_START_INTERVAL,
        "Retries": DEFAULT_RETRIES,
    }
    out: dict[str, Any] = {"Test": test}
    for field, default in defaults.items():
        value = spec_hc.get(field) or _image_field(image_hc, field) or 0
        try:
            value = int(value)
        except (TypeError, ValueError):
            value = 0
        out[field] = value if value > 0 else default
    return out


def probe_argv(test: list[str]) -> list[str]:
    """The command a probe execs in the task: CMD's arguments, or CMD-SHELL's string under /bin/sh -c
    (the daemon's shell on Linux)."""
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", test[1]]
    return list(test[1:])
