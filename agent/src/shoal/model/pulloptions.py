"""Registry credentials a service's tasks pull with (SwarmKit's ContainerSpec.PullOptions).

`docker service create|update --with-registry-auth` sends the client's credentials in the
X-Registry-Auth header; as in Docker, they are kept in the stored spec at
TaskTemplate.ContainerSpec.PullOptions.RegistryAuth, so that each task carries them to the worker
that pulls its image. They are never part of what a client reads back: Docker's API types have no
PullOptions, and so shoal's answers (`service inspect`, `GET /services`, task inspect, `/tasks`,
a node's own task list) go through `public_service` / `public_task`. A request body that sets
PullOptions is refused (`validate_service_spec`): the header is the only way in.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from shoal.errors import SpecError

PULL_OPTIONS = "PullOptions"
AUTH_FROM_SPEC = "spec"
AUTH_FROM_PREVIOUS = "previous-spec"
AUTH_FROM = ("", AUTH_FROM_SPEC, AUTH_FROM_PREVIOUS)  # Docker's registryAuthFrom values


def _container(template: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (template or {}).get("ContainerSpec") or {}


def pull_options(spec: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The PullOptions of a ServiceSpec (None when it has none)."""
    found = _container((spec or {}).get("TaskTemplate")).get(PULL_OPTIONS)
    return copy.deepcopy(dict(found)) if found else None


def with_pull_options(spec: Mapping[str, Any], options: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of ServiceSpec `spec` whose tasks pull with `options` (None: without credentials)."""
    out = copy.deepcopy(dict(spec))
    container = out.setdefault("TaskTemplate", {}).setdefault("ContainerSpec", {})
    container.pop(PULL_OPTIONS, None)
    if options:
        container[PULL_OPTIONS] = dict(options)
    return out


def registry_auth_options(encoded: str) -> dict[str, str] | None:
    """PullOptions for an X-Registry-Auth value ("" — an empty AuthConfig — means none)."""
    return {"RegistryAuth": encoded} if encoded else None


def options_for_update(
    body_spec: Mapping[str, Any],
    current: Mapping[str, Any],
    header: str | None,
    auth_from: str,
) -> dict[str, Any]:
    """The new spec of an update with its PullOptions chosen as Docker's UpdateService does:
    credentials sent with the update (the header, even an empty one) replace the stored ones;
    without a header, those of the current spec (registryAuthFrom=spec, the default) or of the
    previous one (previous-spec, what a client-side rollback asks for) are kept."""
    if auth_from not in AUTH_FROM:
        raise SpecError(f"unsupported registryAuthFrom value {auth_from!r} (must be spec or previous-spec)")
    if header is not None:
        return with_pull_options(body_spec, registry_auth_options(header))
    if auth_from == AUTH_FROM_PREVIOUS:
        previous = current.get("PreviousSpec")
        if not previous:
            raise SpecError(f"service {current.get('ID', '')} does not have a previous spec")
        return with_pull_options(body_spec, pull_options(previous))
    return with_pull_options(body_spec, pull_options(current.get("Spec")))


def _template_without_pull_options(template: Any) -> Any:
    """`template` itself when it holds no PullOptions, else a copy of only the dicts on the way to
    them (the rest is shared with the original, which stays as it is)."""
    if not isinstance(template, dict):
        return template
    container = template.get("ContainerSpec")
    if not isinstance(container, dict) or PULL_OPTIONS not in container:
        return template
    return {**template, "ContainerSpec": {k: v for k, v in container.items() if k != PULL_OPTIONS}}


# The views below share everything but the path to PullOptions with the stored object: callers
# serialize them and never modify them (a deep copy of every task on each `GET /tasks` was the
# largest cost of serving it).
def public_service(service: Mapping[str, Any]) -> dict[str, Any]:
    """`service` as clients may see it: without the credentials in its spec and previous spec."""
    out = dict(service)
    for key in ("Spec", "PreviousSpec"):
        if isinstance(out.get(key), dict) and "TaskTemplate" in out[key]:
            out[key] = {**out[key], "TaskTemplate": _template_without_pull_options(out[key]["TaskTemplate"])}
    return out


def public_task(task: Mapping[str, Any]) -> dict[str, Any]:
    """`task` as clients may see it: without the credentials its worker pulls with."""
    out = dict(task)
    if "Spec" in out:
        out["Spec"] = _template_without_pull_options(out["Spec"])
    return out


def same_but_pull_options(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """True when TaskTemplates `a` and `b` are equal once their PullOptions are left out (views that
    share all but the path to PullOptions: a deep copy of both was most of a rolling update's pass)."""
    return _template_without_pull_options(dict(a or {})) == _template_without_pull_options(dict(b or {}))
