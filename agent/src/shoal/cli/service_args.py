"""`shoal service create|update` flags and their translation into a ServiceSpec (pure).

The flags are docker's (cli/command/service/opts.go, update.go), with docker's merge rules:
a family (update config, rollback config, restart policy) is only written when one of its
flags is given, starting from SwarmKit's defaults when the spec has none yet; `update` edits
the fetched spec in place of rebuilding it, so that what no flag names stays as it was.

Malformed values are argparse type errors (usage, exit 2) raised before any call to the agent.
"""

from __future__ import annotations

import argparse
import copy
import csv
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from shoal.cli import args as argtypes
from shoal.cli import service_health, service_image, service_secrets
from shoal.cli.errors import CLIError
from shoal.cli.job_args import JOB_MODES, apply_job_flags, is_job_mode, job_mode
from shoal.model.validate import parse_label

SECOND = 1_000_000_000
# SwarmKit's defaults (api/defaults), which docker's CLI starts from when a family is first set
UPDATE_DEFAULTS: dict[str, Any] = {
    "Parallelism": 1,
    "Delay": 0,
    "FailureAction": "pause",
    "Monitor": 5 * SECOND,
    "MaxFailureRatio": 0,
    "Order": "stop-first",
}
RESTART_DEFAULTS: dict[str, Any] = {"Condition": "any", "Delay": 5 * SECOND, "MaxAttempts": 0}

MODES = ("replicated", "global", *JOB_MODES)
RESTART_CONDITIONS = ("none", "on-failure", "any")
UPDATE_FAILURE_ACTIONS = ("pause", "continue", "rollback")
ROLLBACK_FAILURE_ACTIONS = ("pause", "continue")
ORDERS = ("stop-first", "start-first")
ENDPOINT_MODES = ("vip", "dnsrr")
PROTOCOLS = ("tcp", "udp", "sctp")
PUBLISH_MODES = ("ingress", "host")

ResolveNetwork = Callable[[str], str]


# --- value types ----------------------------------------------------------------------------------

_RAM = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$", re.I)
_RAM_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def memory_bytes(text: str) -> int:
    """docker's RAMInBytes: "64M", "1g", "512k", "1.5GiB", "4096" (binary units, case-insensitive)."""
    m = _RAM.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"invalid size: {text!r} (use a number with an optional unit: 64M, 1g)")
    return int(Fraction(m.group(1)) * _RAM_UNITS[(m.group(2) or "").lower()])


def nano_cpus(text: str) -> int:
    """docker's NanoCPUs: "0.5" → 500000000; more than nine decimals is "too precise"."""
    try:
        value = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"invalid CPU value {text!r}: use a number like 0.5 or 2") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid CPU value {text!r}: must not be negative")
    nano = value * SECOND
    if nano.denominator != 1:
        raise argparse.ArgumentTypeError(f"value is too precise: {text!r}")
    return int(nano)


def ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid ratio {text!r}: use a number from 0 to 1") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"invalid ratio {text!r}: must be between 0 and 1")
    return value


def lower_choice(choices: Sequence[str], what: str) -> Callable[[str], str]:
    """A case-insensitive choice with docker's kind of message."""

    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: use {', '.join(choices)}")
        return value

    return parse


def env_var(text: str) -> str:
    """docker's ValidateEnv: "K=V", or a bare "K" (kept as is); "=V" has no name."""
    if text.startswith("="):
        raise argparse.ArgumentTypeError(f"invalid environment variable: {text}")
    return text


def placement_pref(text: str) -> dict[str, Any]:
    """`spread=node.labels.zone` → {"Spread": {"SpreadDescriptor": "node.labels.zone"}}."""
    strategy, sep, descriptor = text.partition("=")
    if not sep or not descriptor:
        raise argparse.ArgumentTypeError(f"invalid placement preference {text!r}: use spread=node.labels.KEY")
    if strategy.lower() != "spread":
        raise argparse.ArgumentTypeError(f"unsupported placement preference {strategy} (only spread is supported)")
    return {"Spread": {"SpreadDescriptor": descriptor}}


def pref_text(pref: Mapping[str, Any]) -> str:
    return "spread=" + str((pref.get("Spread") or {}).get("SpreadDescriptor", ""))


def command_line(text: str) -> list[str]:
    """`--entrypoint "sh -c"`, `--args "a b"`: split like a shell would."""
    try:
        return shlex.split(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"invalid command line {text!r}: {e}") from None


def network(text: str) -> dict[str, Any]:
    """`NAME` or `name=NAME,alias=A,alias=B` → a NetworkAttachmentConfig (Target still a name)."""
    if "=" not in text:
        return {"Target": text}
    out: dict[str, Any] = {}
    for item in next(csv.reader([text])):
        key, _, value = item.partition("=")
        key = key.strip().lower()
        if key in ("name", "target"):
            out["Target"] = value
        elif key == "alias":
            out.setdefault("Aliases", []).append(value)
        else:
            raise argparse.ArgumentTypeError(f"invalid network field {key!r} (use name= and alias=)")
    if not out.get("Target"):
        raise argparse.ArgumentTypeError(f"invalid network {text!r}: missing name=")
    return out


# --- ports ------------------------------------------------------------------------------------------


def _port_number(text: str, what: str, spec: str, allow_zero: bool = False) -> int:
    if not text.isdigit() or not (0 if allow_zero else 1) <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"invalid {what} port {text!r} in {spec!r}")
    return int(text)


def _port_range(text: str, what: str, spec: str) -> tuple[int, int]:
    start, sep, end = text.partition("-")
    first = _port_number(start, what, spec)
    last = _port_number(end, what, spec) if sep else first
    if last < first:
        raise argparse.ArgumentTypeError(f"invalid {what} port range {text!r} in {spec!r}")
    return first, last


def _port(target: int, published: int, protocol: str, mode: str) -> dict[str, Any]:
    return {"Protocol": protocol, "TargetPort": target, "PublishedPort": published, "PublishMode": mode}


def _long_port(text: str) -> list[dict[str, Any]]:
    fields: dict[str, str] = {}
    for item in next(csv.reader([text])):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"invalid field: {item}")
        fields[key.strip().lower()] = value.strip()
    for key in fields:
        if key not in ("mode", "protocol", "target", "published"):
            raise argparse.ArgumentTypeError(f"invalid field key: {key}")
    if "target" not in fields:
        raise argparse.ArgumentTypeError("missing mandatory field 'target'")
    protocol = fields.get("protocol", "tcp").lower()
    if protocol not in PROTOCOLS:
        raise argparse.ArgumentTypeError(f"invalid protocol value '{protocol}'")
    mode = fields.get("mode", "ingress").lower()
    if mode not in PUBLISH_MODES:
        raise argparse.ArgumentTypeError(f"invalid publish mode value ({mode}): must be either 'ingress' or 'host'")
    target = _port_number(fields["target"], "target", text)
    published = _port_number(fields.get("published", "0"), "published", text, allow_zero=True)
    return [_port(target, published, protocol, mode)]


def port_configs(text: str) -> list[dict[str, Any]]:
    """`--publish`: `[published:]target[/protocol]` (ranges like 8080-8081:80-81 too) or the long
    form `mode=host,target=80,published=8080,protocol=udp`. A list, as one range gives several."""
    text = text.strip()
    if re.search(r"\w+=\w+", text):
        return _long_port(text)
    body, _, protocol = text.partition("/")
    protocol = (protocol or "tcp").lower()
    if protocol not in PROTOCOLS:
        raise argparse.ArgumentTypeError(f"invalid proto: {protocol}")
    parts = body.split(":")
    if len(parts) > 2:
        raise argparse.ArgumentTypeError(f"hostip is not supported: {text!r} (use published:target)")
    t_first, t_last = _port_range(parts[-1], "target", text)
    if len(parts) == 1 or not parts[0]:
        return [_port(t, 0, protocol, "ingress") for t in range(t_first, t_last + 1)]
    p_first, p_last = _port_range(parts[0], "published", text)
    if p_last - p_first != t_last - t_first:
        raise argparse.ArgumentTypeError(f"invalid ranges specified for published and target ports: {text!r}")
    return [_port(t_first + i, p_first + i, protocol, "ingress") for i in range(t_last - t_first + 1)]


def _same_port(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """docker's publish-rm match: target port, protocol and publish mode (empty = the defaults)."""
    return (
        a.get("TargetPort") == b.get("TargetPort")
        and (a.get("Protocol") or "tcp") == (b.get("Protocol") or "tcp")
        and (a.get("PublishMode") or "ingress") == (b.get("PublishMode") or "ingress")
    )


def _port_key(p: Mapping[str, Any]) -> tuple[int, int, str, str]:
    return (
        int(p.get("PublishedPort") or 0),
        int(p.get("TargetPort") or 0),
        p.get("Protocol") or "tcp",
        p.get("PublishMode") or "ingress",
    )


def merge_ports(
    current: Iterable[Mapping[str, Any]], add: Iterable[Mapping[str, Any]], remove: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """`--publish-rm` (by target port) then `--publish-add` (duplicates dropped), sorted."""
    removed = list(remove)
    out: dict[tuple[int, int, str, str], dict[str, Any]] = {}
    for p in current:
        if not any(_same_port(p, r) for r in removed):
            out.setdefault(_port_key(p), dict(p))
    for p in add:
        out.setdefault(_port_key(p), dict(p))
    return [out[k] for k in sorted(out)]


# --- flags --------------------------------------------------------------------------------------------

# dest → (path in the ServiceSpec); one value each, written when the flag is given
SCALARS: dict[str, tuple[str, ...]] = {
    "workdir": ("TaskTemplate", "ContainerSpec", "Dir"),
    "user": ("TaskTemplate", "ContainerSpec", "User"),
    "hostname": ("TaskTemplate", "ContainerSpec", "Hostname"),
    "stop_grace_period": ("TaskTemplate", "ContainerSpec", "StopGracePeriod"),
    "entrypoint": ("TaskTemplate", "ContainerSpec", "Command"),
    "limit_cpu": ("TaskTemplate", "Resources", "Limits", "NanoCPUs"),
    "limit_memory": ("TaskTemplate", "Resources", "Limits", "MemoryBytes"),
    "reserve_cpu": ("TaskTemplate", "Resources", "Reservations", "NanoCPUs"),
    "reserve_memory": ("TaskTemplate", "Resources", "Reservations", "MemoryBytes"),
    "endpoint_mode": ("EndpointSpec", "Mode"),
    "init": ("TaskTemplate", "ContainerSpec", "Init"),
    "read_only": ("TaskTemplate", "ContainerSpec", "ReadOnly"),
}
# families: (path, defaults, {dest: field}); written from the defaults when the spec has none
FAMILIES: tuple[tuple[tuple[str, ...], Mapping[str, Any], Mapping[str, str]], ...] = (
    (
        ("TaskTemplate", "RestartPolicy"),
        RESTART_DEFAULTS,
        {
            "restart_condition": "Condition",
            "restart_delay": "Delay",
            "restart_max_attempts": "MaxAttempts",
            "restart_window": "Window",
        },
    ),
    *(
        (
            (key,),
            UPDATE_DEFAULTS,
            {
                f"{prefix}_parallelism": "Parallelism",
                f"{prefix}_delay": "Delay",
                f"{prefix}_failure_action": "FailureAction",
                f"{prefix}_monitor": "Monitor",
                f"{prefix}_max_failure_ratio": "MaxFailureRatio",
                f"{prefix}_order": "Order",
            },
        )
        for key, prefix in (("UpdateConfig", "update"), ("RollbackConfig", "rollback"))
    ),
)


def add_common_flags(p: argparse.ArgumentParser) -> None:
    """The flags `create` and `update` share (same names, same meaning)."""
    dur = argtypes.duration
    count = argtypes.non_negative_int
    p.add_argument("-d", "--detach", action="store_true", help="exit immediately instead of waiting to converge")
    p.add_argument("-q", "--quiet", action="store_true", help="suppress progress output")
    p.add_argument("--timeout", type=dur, default=60 * SECOND, help=argparse.SUPPRESS)
    p.add_argument("--replicas", type=count, metavar="N", help="number of tasks (of a replicated job: completions)")
    p.add_argument("--max-concurrent", type=count, metavar="N", help="job tasks run at once (default: --replicas)")
    p.add_argument(
        "--max-replicas",
        "--replicas-max-per-node",
        dest="max_replicas",
        type=count,
        metavar="N",
        help="maximum number of tasks per node (0 = unlimited)",
    )
    p.add_argument("-w", "--workdir", metavar="DIR", help="working directory inside the task")
    p.add_argument("-u", "--user", metavar="USER", help="username or UID[:GID]")
    p.add_argument("--hostname", metavar="NAME", help="task hostname")
    p.add_argument("--init", action="store_const", const=True, help="run an init inside each task (catatonit)")
    p.add_argument("--read-only", action="store_const", const=True, help="mount the task's root filesystem read-only")
    p.add_argument("--cap-add", action="append", metavar="CAP", help="add a Linux capability")
    p.add_argument("--cap-drop", action="append", metavar="CAP", help="drop a Linux capability")
    p.add_argument("--entrypoint", type=command_line, metavar="CMD", help="overwrite the image's entrypoint")
    p.add_argument("--stop-grace-period", type=dur, metavar="DURATION", help="time to wait before killing (10s)")
    p.add_argument("--limit-cpu", type=nano_cpus, metavar="CPUS", help="limit CPUs (0.5)")
    p.add_argument("--limit-memory", type=memory_bytes, metavar="BYTES", help="limit memory (64M)")
    p.add_argument("--reserve-cpu", type=nano_cpus, metavar="CPUS", help="reserve CPUs")
    p.add_argument("--reserve-memory", type=memory_bytes, metavar="BYTES", help="reserve memory")
    p.add_argument(
        "--restart-condition",
        type=lower_choice(RESTART_CONDITIONS, "restart condition"),
        metavar="COND",
        help="restart when condition is met: none, on-failure, any (any)",
    )
    p.add_argument("--restart-delay", type=dur, metavar="DURATION", help="delay between restart attempts (5s)")
    p.add_argument("--restart-max-attempts", type=count, metavar="N", help="maximum number of restarts")
    p.add_argument("--restart-window", type=dur, metavar="DURATION", help="window used to evaluate the restart policy")
    for prefix, actions in (("update", UPDATE_FAILURE_ACTIONS), ("rollback", ROLLBACK_FAILURE_ACTIONS)):
        p.add_argument(f"--{prefix}-parallelism", type=count, metavar="N", help=f"tasks {prefix}d at once (1)")
        p.add_argument(f"--{prefix}-delay", type=dur, metavar="DURATION", help=f"delay between {prefix}s (0s)")
        p.add_argument(
            f"--{prefix}-failure-action",
            type=lower_choice(actions, "failure action"),
            metavar="ACTION",
            help=f"action on {prefix} failure: {', '.join(actions)} (pause)",
        )
        p.add_argument(f"--{prefix}-monitor", type=dur, metavar="DURATION", help="time to monitor each task (5s)")
        p.add_argument(f"--{prefix}-max-failure-ratio", type=ratio, metavar="RATIO", help="failure rate to tolerate")
        p.add_argument(
            f"--{prefix}-order",
            type=lower_choice(ORDERS, f"{prefix} order"),
            metavar="ORDER",
            help="stop-first or start-first (stop-first)",
        )
    p.add_argument(
        "--endpoint-mode", type=lower_choice(ENDPOINT_MODES, "endpoint mode"), metavar="MODE", help="vip or dnsrr (vip)"
    )
    service_health.add_health_flags(p)


def add_create_flags(p: argparse.ArgumentParser) -> None:
    add_common_flags(p)
    p.add_argument("--name", help="service name")
    p.add_argument(
        "--mode",
        type=lower_choice(MODES, "mode"),
        default="replicated",
        help="replicated, global, replicated-job or global-job",
    )
    p.add_argument("-e", "--env", type=env_var, action="append", metavar="K=V", help="set environment variables")
    p.add_argument("--constraint", action="append", metavar="EXPR", help="placement constraint (node.role==worker)")
    p.add_argument(
        "--placement-pref",
        type=placement_pref,
        action="append",
        metavar="PREF",
        help="placement preference (spread=node.labels.zone)",
    )
    p.add_argument("-l", "--label", action="append", metavar="K=V", help="service labels")
    p.add_argument("--container-label", action="append", metavar="K=V", help="task labels")
    p.add_argument("--network", type=network, action="append", metavar="NET", help="attach to a network")
    p.add_argument(
        "-p",
        "--publish",
        type=port_configs,
        action="append",
        metavar="PORT",
        help="publish a port: published:target[/proto] or mode=host,target=,published=",
    )
    service_image.add_flags(p, default_resolve=service_image.RESOLVE_ALWAYS)
    service_secrets.add_create_flags(p)
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")


def add_update_flags(p: argparse.ArgumentParser) -> None:
    add_common_flags(p)
    p.add_argument("--image", help="service image")
    p.add_argument("--args", type=command_line, metavar="ARGS", help="service command args")
    p.add_argument("--force", action="store_true", help="force update even if no changes require it")
    p.add_argument("--rollback", action="store_true", help="rollback to the previous specification")
    p.add_argument("--env-add", type=env_var, action="append", metavar="K=V", help="add or update an env var")
    p.add_argument("--env-rm", action="append", metavar="K", help="remove an environment variable")
    p.add_argument("--constraint-add", action="append", metavar="EXPR", help="add a placement constraint")
    p.add_argument("--constraint-rm", action="append", metavar="EXPR", help="remove a placement constraint")
    p.add_argument("--placement-pref-add", type=placement_pref, action="append", metavar="PREF")
    p.add_argument("--placement-pref-rm", type=placement_pref, action="append", metavar="PREF")
    p.add_argument("--label-add", action="append", metavar="K=V", help="add or update a service label")
    p.add_argument("--label-rm", action="append", metavar="K", help="remove a service label")
    p.add_argument("--container-label-add", action="append", metavar="K=V", help="add or update a task label")
    p.add_argument("--container-label-rm", action="append", metavar="K", help="remove a task label")
    p.add_argument("--publish-add", type=port_configs, action="append", metavar="PORT", help="add a published port")
    p.add_argument(
        "--publish-rm",
        type=port_configs,
        action="append",
        metavar="PORT",
        help="remove a published port by its target port",
    )
    p.add_argument("--network-add", type=network, action="append", metavar="NET", help="add a network")
    p.add_argument("--network-rm", action="append", metavar="NET", help="remove a network")
    service_image.add_flags(p, default_resolve=service_image.RESOLVE_CHANGED)
    service_secrets.add_update_flags(p)
    p.add_argument("service", metavar="SERVICE")


# --- spec building ----------------------------------------------------------------------------------


def _node(spec: dict[str, Any], path: Sequence[str]) -> dict[str, Any]:
    """The object at `path`, created (or replaced when null) on the way."""
    node = spec
    for key in path:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    return node


def _labels(items: Iterable[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or ():
        try:
            key, value = parse_label(item)
        except ValueError as e:
            raise CLIError(str(e)) from None
        out[key] = value
    return out


def _flat(groups: Iterable[Iterable[Any]] | None) -> list[Any]:
    return [item for group in groups or () for item in group]


def apply_common(spec: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Write the shared flags that were given into `spec` (in place; also returned)."""
    mode = spec.get("Mode") or {}
    replicated = "Replicated" in mode
    apply_job_flags(spec, args)  # job_args.py: --replicas and --max-concurrent of jobs
    if args.replicas is not None and not is_job_mode(mode):
        if not replicated:
            raise CLIError("replicas can only be used with replicated mode")
        _node(spec, ("Mode", "Replicated"))["Replicas"] = args.replicas
    if args.max_replicas is not None:
        if not replicated:
            raise CLIError("replicas-max-per-node can only be used with replicated mode")
        _node(spec, ("TaskTemplate", "Placement"))["MaxReplicas"] = args.max_replicas
    for dest, path in SCALARS.items():
        value = getattr(args, dest)
        if value is not None:
            _node(spec, path[:-1])[path[-1]] = value
    for path, defaults, fields in FAMILIES:
        given = {field: getattr(args, dest) for dest, field in fields.items() if getattr(args, dest) is not None}
        if given:
            family = _node(spec, path[:-1]).get(path[-1])
            base = copy.deepcopy(dict(defaults)) if not isinstance(family, dict) else family
            base.update(given)
            _node(spec, path[:-1])[path[-1]] = base
    return spec


def _resolve_networks(items: Iterable[Mapping[str, Any]], resolve: ResolveNetwork) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for item in items:
        target = resolve(str(item["Target"]))
        if target in seen:
            raise CLIError(f"service is already attached to network {item['Target']}")
        seen.add(target)
        out.append({**item, "Target": target})
    return out


def create_spec(args: argparse.Namespace, resolve_network: ResolveNetwork = str) -> dict[str, Any]:
    """The ServiceSpec that `service create` posts (docker's ToService)."""
    container: dict[str, Any] = {"Image": args.image}
    if args.command:
        container["Args"] = list(args.command)
    if args.env:
        container["Env"] = list(args.env)
    if args.container_label:
        container["Labels"] = _labels(args.container_label)
    if (healthcheck := service_health.create_healthcheck(args)) is not None:
        container["HealthCheck"] = healthcheck
    service_secrets.apply_create(container, args)
    placement: dict[str, Any] = {}
    if args.constraint:
        placement["Constraints"] = list(args.constraint)
    if args.placement_pref:
        placement["Preferences"] = list(args.placement_pref)
    template: dict[str, Any] = {
        "ContainerSpec": container,
        "Resources": {"Limits": {}, "Reservations": {}},
        "Placement": placement,
        "ForceUpdate": 0,
    }
    if args.network:
        template["Networks"] = _resolve_networks(args.network, resolve_network)
    spec: dict[str, Any] = {}
    if args.name:
        spec["Name"] = args.name
    if args.label:
        spec["Labels"] = _labels(args.label)
    spec["TaskTemplate"] = template
    spec["Mode"] = job_mode(args.mode) or ({"Global": {}} if args.mode == "global" else {"Replicated": {"Replicas": 1}})
    spec["EndpointSpec"] = {"Mode": "vip", "Ports": merge_ports([], _flat(args.publish), [])}
    return apply_common(spec, args)


def _env_key(entry: str) -> str:
    return entry.partition("=")[0]


def merge_env(env: Iterable[str], add: Iterable[str], remove: Iterable[str]) -> list[str]:
    """`--env-rm KEY` then `--env-add K=V` (same key replaced in place, new keys appended)."""
    gone = set(remove)
    out = {_env_key(e): e for e in env if _env_key(e) not in gone}
    for entry in add:
        out[_env_key(entry)] = entry
    return list(out.values())


def _merge_labels(labels: Mapping[str, str] | None, add: Iterable[str] | None, rm: Iterable[str] | None) -> dict:
    out = dict(labels or {})
    for key in rm or ():
        out.pop(key, None)
    out.update(_labels(add))
    return out


def _merge_networks(
    current: Iterable[Mapping[str, Any]],
    add: Iterable[Mapping[str, Any]],
    remove: Iterable[str],
    resolve: ResolveNetwork,
) -> list[dict[str, Any]]:
    """docker's updateNetworks: removals by name or ID, no network twice, sorted by target."""
    gone = {resolve(ref) for ref in remove}
    kept = [dict(n) for n in current if n.get("Target") not in gone]
    attached = {str(n.get("Target")) for n in kept}
    for item in _resolve_networks(add, resolve):
        if item["Target"] in attached:
            raise CLIError(f"service is already attached to network {item['Target']}")
        kept.append(item)
        attached.add(item["Target"])
    return sorted(kept, key=lambda n: str(n.get("Target")))


def update_spec(
    spec: Mapping[str, Any], args: argparse.Namespace, resolve_network: ResolveNetwork = str
) -> dict[str, Any]:
    """A copy of the fetched ServiceSpec with docker's `service update` flags applied."""
    new = copy.deepcopy(dict(spec))
    container = _node(new, ("TaskTemplate", "ContainerSpec"))
    if args.image is not None:
        container["Image"] = args.image
    if args.args is not None:
        container["Args"] = args.args
    if args.env_add or args.env_rm:
        container["Env"] = merge_env(container.get("Env") or [], args.env_add or (), args.env_rm or ())
    if args.container_label_add or args.container_label_rm:
        container["Labels"] = _merge_labels(container.get("Labels"), args.container_label_add, args.container_label_rm)
    service_secrets.apply_update(container, args)
    if args.label_add or args.label_rm:
        new["Labels"] = _merge_labels(new.get("Labels"), args.label_add, args.label_rm)
    if args.constraint_add or args.constraint_rm:
        placement = _node(new, ("TaskTemplate", "Placement"))
        gone = set(args.constraint_rm or ())
        kept = [c for c in [*(placement.get("Constraints") or []), *(args.constraint_add or [])] if c not in gone]
        placement["Constraints"] = sorted(set(kept))
    if args.placement_pref_add or args.placement_pref_rm:
        placement = _node(new, ("TaskTemplate", "Placement"))
        gone = {pref_text(p) for p in args.placement_pref_rm or ()}
        prefs = [p for p in placement.get("Preferences") or [] if pref_text(p) not in gone]
        prefs += [p for p in args.placement_pref_add or () if p not in prefs]
        placement["Preferences"] = prefs
    if args.publish_add or args.publish_rm:
        endpoint = _node(new, ("EndpointSpec",))
        endpoint["Ports"] = merge_ports(endpoint.get("Ports") or [], _flat(args.publish_add), _flat(args.publish_rm))
    if args.network_add or args.network_rm:
        template = _node(new, ("TaskTemplate",))
        # docker moves the deprecated service-level Networks into the task template
        current = template.get("Networks") or new.pop("Networks", None) or []
        template["Networks"] = _merge_networks(current, args.network_add or (), args.network_rm or (), resolve_network)
    service_health.update_healthcheck(container, args)
    apply_common(new, args)
    if args.force:
        template = _node(new, ("TaskTemplate",))
        template["ForceUpdate"] = int(template.get("ForceUpdate") or 0) + 1
    return new


def parse_scale(item: str) -> tuple[str, int]:
    """`SERVICE=REPLICAS` of `service scale`."""
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise CLIError(f"invalid scale specifier {item!r}: use SERVICE=REPLICAS")
    if not value.isdigit():
        raise CLIError(f"{name}: invalid replicas value {value!r}: must be a non-negative integer")
    return name, int(value)
