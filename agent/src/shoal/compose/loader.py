"""Load a stack's compose files: parse, interpolate, validate each file, then merge the overrides.

As docker's cli/compose/loader: options swarm mode ignores give its warnings ("Ignoring
unsupported options: build"), deprecated ones theirs, forbidden ones an error; anything not in the
Compose Specification is an error naming the key and its line (the schema's additionalProperties).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.compose import interpolate, schema, source
from shoal.compose.errors import ComposeError
from shoal.compose.source import Locator

# docker/cli cli/compose/types: what `docker stack deploy` ignores, with its words. `depends_on`
# is left out of Docker's list (it ignores it silently); shoal names it too, so that nobody waits
# for an ordering that swarm mode does not give.
UNSUPPORTED = (
    "build",
    "cgroupns_mode",
    "cgroup_parent",
    "depends_on",
    "devices",
    "domainname",
    "external_links",
    "ipc",
    "links",
    "mac_address",
    "network_mode",
    "pid",
    "privileged",
    "restart",
    "security_opt",
    "shm_size",
    "userns_mode",
)
DEPRECATED = {
    "container_name": "Setting the container name is not supported.",
    "expose": "Exposing ports is unnecessary - services on the same network can access each other's containers "
    "on any port.",
}
FORBIDDEN = {
    "extends": "Support for `extends` is not implemented yet.",
    "volume_driver": "Instead of setting the volume driver on the service, define a volume using the top-level "
    "`volumes` option and specify the driver there.",
    "volumes_from": "To share a volume between services, define it using the top-level `volumes` option and "
    "reference it from each service that shares it using the service-level `volumes` option.",
    "cpu_quota": "Set resource limits using deploy.resources",
    "cpu_shares": "Set resource limits using deploy.resources",
    "cpuset": "Set resource limits using deploy.resources",
    "mem_limit": "Set resource limits using deploy.resources",
    "memswap_limit": "Set resource limits using deploy.resources",
}
# What the converter turns into Engine API fields. Any other service key of the Compose Specification
# (cpu_count, pids_limit, platform, profiles, ...) is not part of `docker stack deploy`'s format: an error
# naming it, rather than a key silently dropped.
CONVERTED = (
    "image", "command", "entrypoint", "environment", "env_file", "ports", "networks", "labels", "hostname",
    "user", "working_dir", "stop_grace_period", "stop_signal", "init", "read_only", "cap_add", "cap_drop",
    "sysctls", "secrets", "configs", "volumes", "tmpfs", "healthcheck", "deploy", "extra_hosts", "dns",
    "dns_search", "dns_opt", "tty", "stdin_open", "group_add", "isolation", "ulimits", "logging",
)  # fmt: skip
# deploy.resources keys the converter has no field for
_RESOURCES_NOT_CONVERTED = ("generic_resources", "devices")
# list-or-dict fields merged key by key across files (a list `K=V` is the same as a mapping)
_KEYED = ("environment", "labels", "sysctls", "extra_hosts")
# lists merged by one of their fields across files, as compose merges overrides
_MERGED_BY = {"secrets": "source", "configs": "source", "volumes": "target"}

Source = str | Path | Mapping[str, Any]


@dataclass
class Project:
    """The merged, interpolated, validated compose configuration."""

    config: dict[str, Any]
    locator: Locator
    workdir: Path
    env: dict[str, str]
    warnings: list[str] = field(default_factory=list)

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        return self.config.get("services") or {}


def environment(workdir: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`.env` beside the first file, overridden by the environment (as docker compose does)."""
    env = interpolate.read_env_file(workdir / ".env")
    env.update(os.environ if base is None else base)
    return env


def as_mapping(value: Any) -> dict[str, Any]:
    """`[K=V, K]` or `{K: V}` → `{K: V}` (None for `K` alone: taken from the environment)."""
    if isinstance(value, dict):
        return dict(value)
    out: dict[str, Any] = {}
    for item in value or []:
        key, sep, val = str(item).partition("=")
        if ":" in key and not sep and item is not None:  # extra_hosts' `host:ip`
            key, _, val = key.partition(":")
            sep = ":"
        out[key] = val if sep else None
    return out


def _merge_list(key: str, base: list[Any], over: list[Any]) -> list[Any]:
    by = _MERGED_BY.get(key)
    if key == "ports":
        return base + [p for p in over if p not in base]
    if by is None:
        return over

    def ident(item: Any) -> Any:
        return item.get(by) if isinstance(item, dict) else item if by == "source" else str(item).split(":")[-1]

    merged = {ident(i): i for i in base}
    merged.update({ident(i): i for i in over})
    return list(merged.values())


def merge(base: dict[str, Any], over: dict[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        old = out.get(key)
        keyed = key in _KEYED and len(path) == 2 and path[0] == "services"
        if keyed or (key == "labels" and path[-1:] == ("deploy",)):
            out[key] = {**as_mapping(old), **as_mapping(value)}
        elif isinstance(old, dict) and isinstance(value, dict):
            out[key] = merge(old, value, (*path, key))
        elif isinstance(old, list) and isinstance(value, list):
            out[key] = _merge_list(key, old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _check_options(config: dict[str, Any], locator: Locator, warnings: list[str]) -> None:
    unsupported: list[str] = []
    deprecated: dict[str, str] = {}
    for name, svc in (config.get("services") or {}).items():
        for key in svc or {}:
            if key in FORBIDDEN:
                raise locator.error(("services", name, key), f"unsupported option: {FORBIDDEN[key]}")
            if key in UNSUPPORTED and key not in unsupported:
                unsupported.append(key)
            if key in DEPRECATED:
                deprecated[key] = DEPRECATED[key]
            known = key in CONVERTED or key in UNSUPPORTED or key in DEPRECATED or key.startswith("x-")
            if not known:
                raise locator.error(("services", name, key), f"{key!r} is not supported by stack deploy (swarm mode)")
        reservations = (((svc or {}).get("deploy") or {}).get("resources") or {}).get("reservations") or {}
        for key in _RESOURCES_NOT_CONVERTED:
            if key in reservations:
                path = ("services", name, "deploy", "resources", "reservations", key)
                raise locator.error(path, f"{key} is not supported by shoal")
    # docker/cli's wording: the unsupported ones on one line, each deprecated one with its reason
    if unsupported:
        warnings.append(f"Ignoring unsupported options: {', '.join(unsupported)}\n")
    if deprecated:
        reasons = "\n\n".join(sorted(f"{k}: {v}" for k, v in deprecated.items()))
        warnings.append(f"Ignoring deprecated options:\n\n{reasons}\n")


def load(
    sources: Sequence[Source],
    env: Mapping[str, str] | None = None,
    workdir: str | Path | None = None,
    warn: Callable[[str], None] | None = None,
) -> Project:
    """Every source is a file path or an inline mapping (named `definition[N]` in errors)."""
    if not sources:
        raise ComposeError("no compose file given (-c compose.yml)")
    first = next((s for s in sources if not isinstance(s, Mapping)), None)
    base_dir = Path(workdir) if workdir else (Path(str(first)).resolve().parent if first else Path.cwd())
    full_env = environment(base_dir, env)
    warnings: list[str] = []
    seen_vars: set[str] = set()

    def on_var_warning(text: str) -> None:
        if text not in seen_vars:
            seen_vars.add(text)
            warnings.append(text)

    config: dict[str, Any] = {}
    locator = Locator()
    for i, src in enumerate(sources):
        if isinstance(src, Mapping):
            data, loc = source.from_mapping(src, f"definition[{i}]")
        else:
            data, loc = source.read(src)
        data = interpolate.interpolate(data, full_env, loc, on_var_warning)
        schema.validate(data, loc)
        config = merge(config, data)
        locator.add(loc)
    _check_options(config, locator, warnings)
    if not config.get("services"):
        raise locator.error((), "no services in the compose file")
    if warn is not None:
        for w in warnings:
            warn(w)
    return Project(config, locator, base_dir, dict(full_env), warnings)
