# Copyright: shoal developers
# Apache License 2.0 (see galaxy.yml)
"""The `healthcheck` option of swarm_service, in community.docker's docker_swarm_service shape:
test (a string runs under the shell, a list is Docker's form), interval, timeout, start_period
(durations such as "30s"), retries. Compared as a whole: a sub-option left out is its zero value,
which means "the image's" (as `docker service create --health-*` sends it)."""

from __future__ import annotations

from typing import Any

from ansible_collections.shoal.swarm.plugins.module_utils._shoal_api import format_duration, parse_duration
from ansible_collections.shoal.swarm.plugins.module_utils._shoal_runner import ParamError

ARGUMENT_SPEC: dict[str, Any] = {
    "type": "dict",
    "options": {
        "test": {"type": "raw"},
        "interval": {"type": "str"},
        "timeout": {"type": "str"},
        "retries": {"type": "int"},
        "start_period": {"type": "str"},
    },
}
DURATIONS = {"interval": "Interval", "timeout": "Timeout", "start_period": "StartPeriod"}
MINIMUM_NS = 1_000_000  # 1ms, SwarmKit's minimum for a health check duration
KINDS = ("NONE", "CMD", "CMD-SHELL")


def _test(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return ["CMD-SHELL", value] if value.strip() else []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ParamError("healthcheck.test: a command string or a list of strings is expected")
    if value and value[0] not in KINDS:
        raise ParamError(f"healthcheck.test: a list must start with NONE, CMD or CMD-SHELL, not {value[0]!r}")
    return list(value)


def desired(params: dict[str, Any] | None) -> dict[str, Any] | None:
    """The option in canonical terms (None: left out, the service's check stays as it is)."""
    if params is None:
        return None
    view: dict[str, Any] = {"test": _test(params.get("test"))}
    for key in DURATIONS:
        raw = params.get(key)
        try:
            ns = 0 if raw is None else parse_duration(raw, f"healthcheck.{key}")
        except ValueError as exc:
            raise ParamError(str(exc)) from None
        if ns != 0 and ns < MINIMUM_NS:
            raise ParamError(f"healthcheck.{key} must be 0 or at least 1ms, not {raw}")
        view[key] = format_duration(ns)
    retries = params.get("retries")
    if retries is not None and retries < 0:
        raise ParamError(f"healthcheck.retries cannot be negative, not {retries}")
    view["retries"] = retries or 0
    return view


def current(container: dict[str, Any]) -> dict[str, Any]:
    hc = container.get("HealthCheck") or container.get("Healthcheck") or {}
    view: dict[str, Any] = {"test": list(hc.get("Test") or [])}
    for key, field in DURATIONS.items():
        view[key] = format_duration(int(hc.get(field) or 0))
    view["retries"] = int(hc.get("Retries") or 0)
    return view


def to_spec(view: dict[str, Any]) -> dict[str, Any]:
    """ContainerSpec.HealthCheck for the view (zero fields left out, as the API shows them)."""
    out: dict[str, Any] = {}
    if view.get("test"):
        out["Test"] = list(view["test"])
    for key, field in DURATIONS.items():
        ns = parse_duration(view.get(key) or 0)
        if ns:
            out[field] = ns
    if view.get("retries"):
        out["Retries"] = view["retries"]
    return out
