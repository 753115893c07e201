"""ServiceSpec validation and the Service object, in Docker Engine API shapes with SwarmKit's rules.

`validate_service_spec` turns a user's spec (API body, CLI flags, module args) into a complete
spec with Docker's defaults filled, so that the orchestrator, the diff of `changed` and
`docker service inspect` all see the same thing; anything it cannot use is a 400 (`SpecError`)
before the store is touched. Durations come back as integer nanoseconds.
"""

from __future__ import annotations

import copy
import re
import signal
from collections.abc import Iterable, Mapping
from typing import Any

from shoal.errors import SpecError
from shoal.model.capabilities import capabilities
from shoal.model.constraints import ConstraintError, validate_placement
from shoal.model.container_opts import OWNED_FIELDS as CONTAINER_OPTS_FIELDS
from shoal.model.container_opts import container_options
from shoal.model.healthcheck import validate_healthcheck
from shoal.model.jobs import is_job, job_service_status, job_update_configs, new_job_status, next_job_status
from shoal.model.jobs import validate_job_mode as _job_mode
from shoal.model.secretrefs import validate_refs
from shoal.model.task import DEFAULT_RESTART_DELAY, state_rank
from shoal.model.task_templates import check_container_templates
from shoal.model.validate import (
    _choice,
    _duration,
    _int,
    _object,
    _str,
    known_fields,
    not_supported_yet,
    validate_labels,
)

NS = 1_000_000_000
DEFAULT_STOP_GRACE = 10 * NS
DEFAULT_MONITOR = 5 * NS
MIN_MEMORY = 4 * 1024 * 1024  # SwarmKit's minimum for limits and reservations
MIN_NANO_CPUS = 1_000_000  # SwarmKit's minimum: 0.001 CPU
MAX_NAME = 63  # a DNS label

RESTART_CONDITIONS = ("none", "on-failure", "any")
UPDATE_FAILURE_ACTIONS = ("pause", "continue", "rollback")
ROLLBACK_FAILURE_ACTIONS = ("pause", "continue")  # a rollback cannot roll back (Docker's enum)
UPDATE_ORDERS = ("stop-first", "start-first")
ENDPOINT_MODES = ("vip", "dnsrr")
PROTOCOLS = ("tcp", "udp", "sctp")
PUBLISH_MODES = ("ingress", "host")
# The kind of task, as Docker names it: the docker CLI refuses a ContainerSpec whose Runtime is not
# "container" ("mismatched runtime with container spec"), whatever driver runs it on the node.
RUNTIMES = ("container",)
RUNTIMES_NOT_YET = ("plugin", "attachment", "podman")

# SwarmKit's isValidDNSName: no dots, because `<service>.<slot>` names tasks and DNS would split it.
_NAME_RE = re.compile(r"^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$")
# A network alias is a DNS name (dots allowed: it is not split into a task's slot)
_ALIAS_RE = re.compile(r"^[a-zA-Z0-9_](?:[-_.]*[A-Za-z0-9_]+)*$")

# Fields Docker has that shoal does not implement. The docker CLI and SDK send some of them at
# their zero value ("Init": false, "DNSConfig": {}), so those are accepted and dropped; any other
# value is refused rather than silently ignored.
_CONTAINER_ZERO_ONLY = (
    "Groups",
    "Privileges",
    "TTY",
    "OpenStdin",
    "Isolation",
    "OomScoreAdj",
)
_CONTAINER_FIELDS = (
    "Image",
    "Labels",
    "Command",
    "Args",
    "Env",
    "Dir",
    "User",
    "Hostname",
    "StopGracePeriod",
    "StopSignal",
    "Init",
    "ReadOnly",
    "CapabilityAdd",
    "CapabilityDrop",
    "HealthCheck",
    "PullOptions",  # named only to refuse it with the reason (SwarmKit's field, not Docker's API)
    *CONTAINER_OPTS_FIELDS,  # Mounts, DNSConfig, Hosts, Sysctls, Ulimits (model/container_opts.py)
    "Secrets",  # model/secretrefs.py
    "Configs",
    *_CONTAINER_ZERO_ONLY,
)
_TASK_ZERO_ONLY = ("PluginSpec", "NetworkAttachmentSpec", "LogDriver")
_TASK_FIELDS = ("ContainerSpec", "Resources", "RestartPolicy", "Placement", "Networks", "ForceUpdate", "Runtime")
_SPEC_FIELDS = ("Name", "Labels", "TaskTemplate", "Mode", "UpdateConfig", "RollbackConfig", "Networks", "EndpointSpec")


def _is_zero(value: Any) -> bool:
    if isinstance(value, Mapping):
        return all(_is_zero(v) for v in value.values())
    return value in (None, False, 0, "", [], "default")  # "default" is Docker's zero Isolation


def _refuse_set(where: str, value: Mapping[str, Any], fields: Iterable[str]) -> None:
    for f in fields:
        if not _is_zero(value.get(f)):
            raise SpecError(f"{where}.{f} is not supported by shoal")


def _section(where: str, value: Any, known: Iterable[str]) -> Mapping[str, Any]:
    """An optional object: null is an empty one (Go decodes it so)."""
    if value is None:
        return {}
    return known_fields(where, _object(where, value), known)


def _strings(where: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{where} must be a list of strings, not {value!r}")
    return list(value)


def _opt(value: Any, default: Any) -> Any:
    """`default` for an absent or null field; anything else is checked as given (0 is not null)."""
    return default if value is None else value


def _non_negative_duration(where: str, value: Any, what: str) -> int:
    ns = _duration(where, value)
    if ns < 0:
        raise SpecError(f"{where}: {what} cannot be negative")
    return ns


# --- Name ---------------------------------------------------------------------------------------


def _name(value: Any, current: Mapping[str, Any] | None) -> str:
    current_name = (current or {}).get("Name") or ""
    if current is not None and not value:
        return current_name  # an update that leaves the name out keeps it
    name = _str("Name", value if value is not None else "")
    if not name:
        raise SpecError("name must be provided")
    if not _NAME_RE.match(name):
        raise SpecError(f'invalid name "{name}": name must be valid as a DNS name component')
    if len(name) > MAX_NAME:
        raise SpecError(f'invalid name "{name}": name must be {MAX_NAME} characters or fewer')
    if current is not None and name != current_name:
        raise SpecError("renaming services is not supported")
    return name


# --- TaskTemplate -------------------------------------------------------------------------------


def _signal(where: str, value: Any) -> str:
    text = _str(where, value)
    if not text:
        return ""
    if text.isdigit():
        ok = 0 < int(text) <= signal.SIGRTMAX
    else:
        ok = ("SIG" + text.upper().removeprefix("SIG")) in signal.Signals.__members__
    if not ok:
        raise SpecError(f"{where}: invalid signal {text!r}")
    return text


def _container_spec(where: str, value: Any) -> dict[str, Any]:
    c = _section(where, value, _CONTAINER_FIELDS)
    _refuse_set(where, c, _CONTAINER_ZERO_ONLY)
    if c.get("PullOptions") is not None:
        raise SpecError(
            f"{where}.PullOptions cannot be set in the spec: send registry credentials in the "
            "X-Registry-Auth header (`--with-registry-auth`)"
        )
    image = c.get("Image")
    if not isinstance(image, str) or not image.strip():
        raise SpecError("ContainerSpec: image reference must be provided")
    env = _strings(f"{where}.Env", c.get("Env"))
    for e in env:
        if not e.partition("=")[0]:  # a bare `KEY` is allowed: it unsets KEY from the image
            raise SpecError(f"{where}.Env: invalid environment variable {e!r}")
    workdir = _str(f"{where}.Dir", _opt(c.get("Dir"), ""))
    if workdir and not workdir.startswith("/"):
        raise SpecError(f"{where}.Dir: the working directory {workdir!r} is invalid, it needs to be an absolute path")
    grace = c.get("StopGracePeriod")
    return {
        "Image": image.strip(),
        "Labels": validate_labels(f"{where}.Labels", c.get("Labels")),
        "Command": _strings(f"{where}.Command", c.get("Command")),
        "Args": _strings(f"{where}.Args", c.get("Args")),
        "Env": env,
        "Dir": workdir,
        "User": _str(f"{where}.User", _opt(c.get("User"), "")),
        "Hostname": _str(f"{where}.Hostname", _opt(c.get("Hostname"), "")),
        "StopGracePeriod": DEFAULT_STOP_GRACE
        if grace is None
        else _non_negative_duration(f"{where}.StopGracePeriod", grace, "stop-grace-period"),
        "StopSignal": _signal(f"{where}.StopSignal", _opt(c.get("StopSignal"), "")),
        # run by the oci task driver (runtime/oci): catatonit/tini, a read-only root, capabilities
        **_optional_bool(where, c, "Init"),
        **_optional_bool(where, c, "ReadOnly"),
        **_capabilities(where, c),
        **container_options(where, c),
        **({"HealthCheck": hc} if (hc := validate_healthcheck(where, c.get("HealthCheck"))) else {}),
        **validate_refs(where, c),  # Secrets, Configs: model/secretrefs.py
    }


def _optional_bool(where: str, c: Mapping[str, Any], key: str) -> dict[str, bool]:
    value = c.get(key)
    if value is None or value is False:
        return {}  # Docker's zero value: left out, as `service inspect` shows it
    if value is not True:
        raise SpecError(f"{where}.{key}: expected true or false, got {value!r}")
    return {key: True}


def _capabilities(where: str, c: Mapping[str, Any]) -> dict[str, list[str]]:
    out = {}
    for key in ("CapabilityAdd", "CapabilityDrop"):
        names = _strings(f"{where}.{key}", c.get(key))
        if names:
            out[key] = names
    capabilities(out.get("CapabilityAdd", ()), out.get("CapabilityDrop", ()))  # unknown names: 400
    return out


def _resource_values(where: str, value: Any, fields: tuple[str, ...]) -> dict[str, int]:
    r = _section(where, value, (*fields, "GenericResources"))
    _refuse_set(where, r, ("GenericResources",))
    out = {f: _int(f"{where}.{f}", _opt(r.get(f), 0), minimum=0) for f in fields}
    if 0 < out["NanoCPUs"] < MIN_NANO_CPUS:
        raise SpecError(f"invalid cpu value {out['NanoCPUs'] / 1e9:g}: Must be at least {MIN_NANO_CPUS / 1e9:g}")
    if 0 < out["MemoryBytes"] < MIN_MEMORY:
        raise SpecError(f"invalid memory value {out['MemoryBytes']}: Must be at least 4MB")
    return out


def _resources(where: str, value: Any) -> dict[str, Any]:
    r = _section(where, value, ("Limits", "Reservations", "SwapBytes", "MemorySwappiness"))
    _refuse_set(where, r, ("SwapBytes", "MemorySwappiness"))
    limits = _resource_values(f"{where}.Limits", r.get("Limits"), ("NanoCPUs", "MemoryBytes", "Pids"))
    reservations = _resource_values(f"{where}.Reservations", r.get("Reservations"), ("NanoCPUs", "MemoryBytes"))
    for key in ("NanoCPUs", "MemoryBytes"):
        # A task could be placed for its reservation and then never get it under its own limit.
        if limits[key] and reservations[key] > limits[key]:
            raise SpecError(f"invalid resources: {key} reservation {reservations[key]} exceeds the limit {limits[key]}")
    return {"Limits": limits, "Reservations": reservations}


def _restart_policy(where: str, value: Any) -> dict[str, Any]:
    r = _section(where, value, ("Condition", "Delay", "MaxAttempts", "Window"))
    delay, window = r.get("Delay"), r.get("Window")
    return {
        "Condition": _choice(f"{where}.Condition", r.get("Condition") or "any", RESTART_CONDITIONS),
        "Delay": DEFAULT_RESTART_DELAY
        if delay is None
        else _non_negative_duration(f"{where}.Delay", delay, "restart-delay"),
        "MaxAttempts": _int(f"{where}.MaxAttempts", _opt(r.get("MaxAttempts"), 0), minimum=0),
        "Window": 0 if window is None else _non_negative_duration(f"{where}.Window", window, "restart-window"),
    }


def _placement(where: str, value: Any, global_mode: bool) -> dict[str, Any]:
    p = _section(where, value, ("Constraints", "Preferences", "MaxReplicas", "Platforms"))
    constraints = _strings(f"{where}.Constraints", p.get("Constraints"))
    preferences = p.get("Preferences") or []
    if not isinstance(preferences, list):
        raise SpecError(f"{where}.Preferences must be a list")
    platforms = p.get("Platforms") or []
    if not isinstance(platforms, list):
        raise SpecError(f"{where}.Platforms must be a list")
    max_replicas = _int(f"{where}.MaxReplicas", _opt(p.get("MaxReplicas"), 0), minimum=0)
    try:
        validate_placement({**p, "Constraints": constraints, "MaxReplicas": max_replicas})
    except ConstraintError as e:
        raise SpecError(str(e)) from None
    if max_replicas and global_mode:
        raise SpecError(f"{where}.MaxReplicas can only be used with replicated mode")
    out_platforms = []
    for i, plat in enumerate(platforms):
        plat = _section(f"{where}.Platforms[{i}]", plat, ("Architecture", "OS"))
        out_platforms.append(
            {k: _str(f"{where}.Platforms[{i}].{k}", _opt(plat.get(k), "")) for k in ("Architecture", "OS")}
        )
    return {
        "Constraints": constraints,
        "Preferences": [{"Spread": {"SpreadDescriptor": pref["Spread"]["SpreadDescriptor"]}} for pref in preferences],
        "MaxReplicas": max_replicas,
        "Platforms": out_platforms,
    }


def _networks(where: str, value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError(f"{where} must be a list")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, n in enumerate(value):
        n = _section(f"{where}[{i}]", n, ("Target", "Aliases", "DriverOpts"))
        target = n.get("Target")
        if not isinstance(target, str) or not target:
            raise SpecError(f"{where}[{i}].Target: network name or ID must be provided")
        if target in seen:
            raise SpecError(f"{where}: network {target!r} is attached more than once")
        seen.add(target)
        # more names of the service on this network only, answered like its name (VIP or dnsrr,
        # and tasks.<alias>) by the embedded DNS: `docker stack deploy` sends the short name
        aliases = _strings(f"{where}[{i}].Aliases", n.get("Aliases"))
        for alias in aliases:
            if not _ALIAS_RE.match(alias):
                raise SpecError(f"{where}[{i}].Aliases: invalid network alias {alias!r}")
        att: dict[str, Any] = {"Target": target, "Aliases": list(dict.fromkeys(aliases))}
        opts = validate_labels(f"{where}[{i}].DriverOpts", n.get("DriverOpts"))
        if opts:
            # the overlay driver takes no per-attachment option; refused rather than stored and ignored
            raise not_supported_yet(f"{where}[{i}].DriverOpts", opts, "none")
        out.append(att)
    return out


def _runtime(where: str, value: str) -> str:
    if value.lower() in RUNTIMES_NOT_YET:
        raise not_supported_yet(where, value, "container")
    return _choice(where, value or "container", RUNTIMES)


def _task_template(value: Any, global_mode: bool, legacy_networks: Any) -> dict[str, Any]:
    where = "TaskTemplate"
    t = _section(where, value, (*_TASK_FIELDS, *_TASK_ZERO_ONLY))
    _refuse_set(where, t, _TASK_ZERO_ONLY)
    runtime = _str(f"{where}.Runtime", _opt(t.get("Runtime"), ""))
    networks = _networks(f"{where}.Networks", t.get("Networks"))
    legacy = _networks("Networks", legacy_networks)
    if legacy and networks and legacy != networks:
        raise SpecError("Networks is deprecated: set TaskTemplate.Networks only")
    return {
        "ContainerSpec": _container_spec(f"{where}.ContainerSpec", t.get("ContainerSpec")),
        "Resources": _resources(f"{where}.Resources", t.get("Resources")),
        "RestartPolicy": _restart_policy(f"{where}.RestartPolicy", t.get("RestartPolicy")),
        "Placement": _placement(f"{where}.Placement", t.get("Placement"), global_mode),
        "Networks": networks or legacy,  # Docker moves the deprecated top-level Networks here too
        "ForceUpdate": _int(f"{where}.ForceUpdate", _opt(t.get("ForceUpdate"), 0), minimum=0),
        "Runtime": _runtime(f"{where}.Runtime", runtime),
    }


# --- Mode, UpdateConfig, EndpointSpec -----------------------------------------------------------


def _mode(value: Any) -> dict[str, Any]:
    m = _section("Mode", value, ("Replicated", "Global", "ReplicatedJob", "GlobalJob"))
    kinds = [k for k in ("Replicated", "Global", "ReplicatedJob", "GlobalJob") if m.get(k) is not None]
    if len(kinds) > 1:
        raise SpecError("must specify only one service mode")
    if kinds and kinds[0].endswith("Job"):
        return _job_mode(m)  # model/jobs.py
    if kinds == ["Global"]:
        _section("Mode.Global", m["Global"], ())
        return {"Global": {}}
    replicated = _section("Mode.Replicated", m.get("Replicated"), ("Replicas",))
    replicas = replicated.get("Replicas")
    if replicas is None:
        return {"Replicated": {"Replicas": 1}}
    if isinstance(replicas, float) and replicas.is_integer():
        replicas = int(replicas)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise SpecError(f"invalid replicas value {replicas!r}: must be a non-negative integer")
    return {"Replicated": {"Replicas": replicas}}


def _update_config(where: str, value: Any, kind: str) -> dict[str, Any]:
    fields = ("Parallelism", "Delay", "FailureAction", "Monitor", "MaxFailureRatio", "Order")
    u = _section(where, value, fields)
    actions = UPDATE_FAILURE_ACTIONS if kind == "update" else ROLLBACK_FAILURE_ACTIONS
    parallelism = u.get("Parallelism")
    ratio = _opt(u.get("MaxFailureRatio"), 0)
    if isinstance(ratio, bool) or not isinstance(ratio, int | float):
        raise SpecError(f"{where}.MaxFailureRatio must be a number between 0 and 1, not {ratio!r}")
    if not 0 <= ratio <= 1:
        raise SpecError(f"{where}: {kind}-maxfailureratio cannot be less than 0 or bigger than 1")
    monitor = u.get("Monitor")
    return {
        "Parallelism": 1 if parallelism is None else _int(f"{where}.Parallelism", parallelism, minimum=0),
        "Delay": _non_negative_duration(f"{where}.Delay", _opt(u.get("Delay"), 0), f"{kind}-delay"),
        "FailureAction": _choice(f"{where}.FailureAction", u.get("FailureAction") or "pause", actions),
        "Monitor": DEFAULT_MONITOR
        if monitor is None
        else _non_negative_duration(f"{where}.Monitor", monitor, f"{kind}-monitor"),
        "MaxFailureRatio": float(ratio),
        "Order": _choice(f"{where}.Order", u.get("Order") or "stop-first", UPDATE_ORDERS),
    }


def _port(where: str, value: Any) -> dict[str, Any]:
    p = _section(where, value, ("Name", "Protocol", "TargetPort", "PublishedPort", "PublishMode"))
    target = p.get("TargetPort")
    if isinstance(target, bool) or not isinstance(target, int) or not 1 <= target <= 65535:
        raise SpecError(f"{where}: invalid TargetPort {target!r}: must be between 1 and 65535")
    published = _opt(p.get("PublishedPort"), 0)
    if isinstance(published, bool) or not isinstance(published, int) or not 0 <= published <= 65535:
        raise SpecError(f"{where}: invalid PublishedPort {published!r}: must be between 0 and 65535")
    return {
        "Name": _str(f"{where}.Name", _opt(p.get("Name"), "")),
        "Protocol": _choice(f"{where}.Protocol", p.get("Protocol") or "tcp", PROTOCOLS),
        "TargetPort": target,
        "PublishedPort": published,  # 0: the allocator picks one (ingress) or the node does (host)
        "PublishMode": _choice(f"{where}.PublishMode", p.get("PublishMode") or "ingress", PUBLISH_MODES),
    }


def _endpoint_spec(value: Any) -> dict[str, Any]:
    e = _section("EndpointSpec", value, ("Mode", "Ports"))
    mode = _choice("EndpointSpec.Mode", e.get("Mode") or "vip", ENDPOINT_MODES)
    raw_ports = e.get("Ports") or []
    if not isinstance(raw_ports, list):
        raise SpecError("EndpointSpec.Ports must be a list")
    ports = [_port(f"EndpointSpec.Ports[{i}]", p) for i, p in enumerate(raw_ports)]
    seen: set[tuple[str, int]] = set()
    for p in ports:
        # The routing mesh balances behind a VIP, which dnsrr services do not have.
        if mode == "dnsrr" and p["PublishMode"] == "ingress":
            raise SpecError("EndpointSpec: port published with ingress mode can't be used with dnsrr mode")
        if not p["PublishedPort"]:
            continue
        # Host mode too: the mesh holds an ingress port on every node, and one task cannot bind twice.
        key = (p["Protocol"], p["PublishedPort"])
        if key in seen:
            raise SpecError(f"EndpointSpec: duplicate published ports provided ({p['PublishedPort']}/{p['Protocol']})")
        seen.add(key)
    return {"Mode": mode, "Ports": ports}


# --- the spec and the object --------------------------------------------------------------------


def mode_kind(spec: Mapping[str, Any]) -> str:
    """ "global", "replicated", "global-job" or "replicated-job" for a (validated) ServiceSpec."""
    mode = spec.get("Mode") or {}
    for key, kind in (("Global", "global"), ("GlobalJob", "global-job"), ("ReplicatedJob", "replicated-job")):
        if mode.get(key) is not None:
            return kind
    return "replicated"


def validate_service_spec(spec: Any, current: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A complete, normalised ServiceSpec or `SpecError`.

    As Docker, an update replaces the whole spec (absent fields take their defaults, not their
    current values). `current` is the service's present Spec on update: the name may be left out
    (it is kept) but not changed, and replicated/global cannot change.
    """
    s = _section("service spec", spec if spec is not None else {}, _SPEC_FIELDS)
    mode = _mode(s.get("Mode"))
    global_mode = "Global" in mode or "GlobalJob" in mode
    out = {
        "Name": _name(s.get("Name"), current),
        "Labels": validate_labels("Labels", s.get("Labels")),
        "TaskTemplate": _task_template(s.get("TaskTemplate"), global_mode, s.get("Networks")),
        "Mode": mode,
        "UpdateConfig": _update_config("UpdateConfig", s.get("UpdateConfig"), "update"),
        "RollbackConfig": _update_config("RollbackConfig", s.get("RollbackConfig"), "rollback"),
        "EndpointSpec": _endpoint_spec(s.get("EndpointSpec")),
    }
    check_container_templates(out)  # Hostname/Env placeholders: 400 now, not a rejected task later
    if is_job(out):  # a job is never rolled out: no update or rollback config (SwarmKit's validateJob)
        defaults = {k: _update_config(k, None, k) for k in ("update", "rollback")}
        job_update_configs(out.pop("UpdateConfig"), out.pop("RollbackConfig"), defaults)
        given = ((s.get("TaskTemplate") or {}).get("RestartPolicy") or {}).get("Condition")
        if not given:  # Docker's default for jobs: a completed task is never run again
            out["TaskTemplate"]["RestartPolicy"]["Condition"] = "on-failure"
    if current is not None and mode_kind(current) != mode_kind(out):
        # SwarmKit's orchestrators are stateless: a mode change is a remove plus a create.
        raise SpecError("service mode change is not allowed")
    return out


def service_object(service_id: str, spec: Mapping[str, Any], now: str) -> dict[str, Any]:
    """A new Service; `spec` is validated. The allocator fills Endpoint.Ports and VirtualIPs."""
    spec = copy.deepcopy(dict(spec))
    out = {
        "ID": service_id,
        "Version": {"Index": 0},
        "CreatedAt": now,
        "UpdatedAt": now,
        "Spec": spec,
        "Endpoint": {"Spec": copy.deepcopy(spec.get("EndpointSpec") or {}), "Ports": [], "VirtualIPs": []},
    }
    if is_job(spec):
        out["JobStatus"] = new_job_status(now)
    return out


def updated_service(current: Mapping[str, Any], new_spec: Mapping[str, Any], now: str) -> dict[str, Any]:
    """`current` with `new_spec` (validated) as SwarmKit's UpdateService writes it: the old spec
    becomes PreviousSpec (for rollback) and UpdateStatus is cleared until the orchestrator
    starts the rolling update. Allocated ports and VIPs stay for the allocator to revise."""
    out = copy.deepcopy(dict(current))
    out["PreviousSpec"] = out.get("Spec")
    out["Spec"] = copy.deepcopy(dict(new_spec))
    out["UpdatedAt"] = now
    out.pop("UpdateStatus", None)  # Docker omits a nil UpdateStatus
    if is_job(new_spec):  # any update of a job runs it again
        out["JobStatus"] = next_job_status(out.get("JobStatus"), now)
    endpoint = out.setdefault("Endpoint", {"Ports": [], "VirtualIPs": []})
    endpoint["Spec"] = copy.deepcopy(new_spec.get("EndpointSpec") or {})
    return out


def rollback_spec(current: Mapping[str, Any]) -> dict[str, Any]:
    """The spec `service rollback` goes back to. Passing it to `updated_service` swaps the two
    specs, so a second rollback returns to where the first started, as in Docker."""
    previous = current.get("PreviousSpec")
    if not previous:
        raise SpecError(f"service {current.get('ID', '')} does not have a previous spec")
    return copy.deepcopy(dict(previous))


def _endpoint_key(spec: Mapping[str, Any]) -> dict[str, Any]:
    e = spec.get("EndpointSpec") or {}
    return {"Mode": e.get("Mode") or "vip", "Ports": e.get("Ports") or []}


def spec_differs_for_tasks(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """True when tasks made from ServiceSpec `a` are out of date under `b` (SwarmKit's IsTaskDirty):
    the task template or the endpoint changed. Name, labels, replicas and update/rollback
    configs do not need new tasks."""
    return (a.get("TaskTemplate") or {}) != (b.get("TaskTemplate") or {}) or _endpoint_key(a) != _endpoint_key(b)


def only_placement_differs(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """True when `a` and `b` differ for tasks only in Placement: SwarmKit keeps a task whose
    node still satisfies the new constraints instead of replacing it."""
    ta, tb = dict(a.get("TaskTemplate") or {}), dict(b.get("TaskTemplate") or {})
    if ta.get("Placement") == tb.get("Placement") or _endpoint_key(a) != _endpoint_key(b):
        return False
    ta.pop("Placement", None)
    tb.pop("Placement", None)
    return ta == tb


def service_status(
    service: Mapping[str, Any], tasks: Iterable[Mapping[str, Any]], *, down_nodes: Iterable[str] = ()
) -> dict[str, int]:
    """`ServiceStatus` as GET /services?status=true shows it.

    As Docker, only tasks the cluster still wants (desired state running or earlier, e.g. a
    delayed restart) count, and tasks on `down_nodes` do not; DesiredTasks is the replica count,
    or for a global service the number of such tasks.
    """
    if is_job(service.get("Spec")):
        return job_service_status(service, tasks)
    down = set(down_nodes)
    running_rank = state_rank("running")
    live = [
        t
        for t in tasks
        if t.get("ServiceID") == service.get("ID")
        and state_rank(t.get("DesiredState") or "running") <= running_rank
        and t.get("NodeID") not in down
    ]
    spec = service.get("Spec") or {}
    if mode_kind(spec) == "global":
        desired = len(live)
    else:
        desired = int(((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas", 1))
    states = [(t.get("Status") or {}).get("State") for t in live]
    return {
        "RunningTasks": states.count("running"),
        "DesiredTasks": desired,
        "CompletedTasks": states.count("complete"),
    }
