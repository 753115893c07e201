"""`shoal service create|ls|ps|inspect|scale|update|rollback|rm|logs`, shaped after `docker service`.

Service references (ID, unique ID prefix or name) are resolved by the agent (GET /services/{ref});
the CLI then uses the service's full ID. Tables, task names and states are docker's
(cli/command/service/formatter.go, cli/command/task): the pure helpers below take plain API
objects and a clock, so that they are tested without an agent.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from shoal.cli import args as argtypes
from shoal.cli import service_args, service_container, service_image
from shoal.cli.client import Client
from shoal.cli.errors import APIError, CLIError
from shoal.cli.inspect_format import inspect_format
from shoal.cli.job_args import scaled_mode
from shoal.cli.job_progress import is_job_service, job_mode_names, job_replicas_suffix, wait_for_job
from shoal.cli.node import hostname, resolve_node
from shoal.cli.output import capitalize, human_duration, inspect_json, natural_key, render_format
from shoal.cli.service_logs import Demuxer, Lines, LogFormatter, max_length, stream
from shoal.cli.service_pretty import pretty_service
from shoal.cli.service_progress import wait_for_service
from shoal.errors import SpecError
from shoal.model.ids import parse_duration, parse_rfc3339, short_id

Service = Mapping[str, Any]
Task = Mapping[str, Any]

LS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Image}}\t{{.Ports}}"
LS_HEADERS = {"ID": "ID", "Name": "NAME", "Mode": "MODE", "Replicas": "REPLICAS", "Image": "IMAGE", "Ports": "PORTS"}
LS_FILTERS = ("id", "label", "mode", "name")
PS_TABLE = (
    "table {{.ID}}\t{{.Name}}\t{{.Image}}\t{{.Node}}\t{{.DesiredState}}\t{{.CurrentState}}\t{{.Error}}\t{{.Ports}}"
)
PS_HEADERS = {
    "ID": "ID",
    "Name": "NAME",
    "Image": "IMAGE",
    "Node": "NODE",
    "DesiredState": "DESIRED STATE",
    "CurrentState": "CURRENT STATE",
    "Error": "ERROR",
    "Ports": "PORTS",
}
PS_FILTERS = ("desired-state", "id", "name", "node")
MAX_ERR_LENGTH = 30


# --- pure helpers ---------------------------------------------------------------------------------


def ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def display_image(image: str) -> str:
    """docker shows an image without its digest (`name:tag@sha256:…` → `name:tag`)."""
    return image.split("@", 1)[0]


def service_mode(service: Service) -> str:
    mode = (service.get("Spec") or {}).get("Mode") or {}
    for key, text in (("Global", "global"), ("Replicated", "replicated"), *job_mode_names()):
        if key in mode:
            return text
    return ""


def ports_text(ports: Iterable[Mapping[str, Any]] | None) -> str:
    """docker's PORTS column: ingress ports only, consecutive ones grouped (`*:80-81->80-81/tcp`)."""
    ingress = sorted(
        (p for p in ports or () if (p.get("PublishMode") or "ingress") == "ingress"),
        key=lambda p: (p.get("Protocol") or "tcp", int(p.get("PublishedPort") or 0)),
    )
    out: list[str] = []
    cur: list[Any] = []  # [published first, published last, target first, target last, protocol]

    def flush() -> None:
        if cur and cur[0] > 0:
            pub = f"{cur[0]}-{cur[1]}" if cur[1] > cur[0] else str(cur[0])
            tgt = f"{cur[2]}-{cur[3]}" if cur[3] > cur[2] else str(cur[2])
            out.append(f"*:{pub}->{tgt}/{cur[4]}")

    for p in ingress:
        pub, tgt, proto = int(p.get("PublishedPort") or 0), int(p.get("TargetPort") or 0), p.get("Protocol") or "tcp"
        if (
            cur
            and proto == cur[4]
            and 0 <= pub - cur[1] <= 1
            and 0 <= tgt - cur[3] <= 1
            and not (cur[3] != cur[2] and tgt <= cur[3])
        ):
            cur[1], cur[3] = pub, tgt
            continue
        flush()
        cur = [pub, pub, tgt, tgt, proto]
    flush()
    return ", ".join(out)


def status_from_tasks(
    services: Iterable[Service], tasks: Iterable[Task], active_nodes: set[str]
) -> dict[str, dict[str, int]]:
    """ServiceStatus computed the way docker's CLI did before the API had it (an older agent)."""
    status = {s["ID"]: {"RunningTasks": 0, "DesiredTasks": 0} for s in services}
    for t in tasks:
        st = status.get(t.get("ServiceID", ""))
        if st is None or t.get("DesiredState") == "shutdown":
            continue
        st["DesiredTasks"] += 1
        if t.get("NodeID") in active_nodes and (t.get("Status") or {}).get("State") == "running":
            st["RunningTasks"] += 1
    for s in services:
        replicated = ((s.get("Spec") or {}).get("Mode") or {}).get("Replicated")
        if replicated is not None:
            status[s["ID"]]["DesiredTasks"] = int(replicated.get("Replicas") or 0)
    return status


def replicas_text(service: Service) -> str:
    st = service.get("ServiceStatus") or {}
    text = f"{st.get('RunningTasks', 0)}/{st.get('DesiredTasks', 0)}"
    max_replicas = (((service.get("Spec") or {}).get("TaskTemplate") or {}).get("Placement") or {}).get("MaxReplicas")
    if service_mode(service) == "replicated" and max_replicas:
        text += f" (max {max_replicas} per node)"
    return text + job_replicas_suffix(service)


def service_row(service: Service) -> dict[str, Any]:
    spec = service.get("Spec") or {}
    image = ((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image", "")
    return {
        "ID": short_id(str(service.get("ID", ""))),
        "Name": spec.get("Name", ""),
        "Mode": service_mode(service),
        "Replicas": replicas_text(service),
        "Image": display_image(image),
        "Ports": ports_text((service.get("Endpoint") or {}).get("Ports")),
    }


def format_services(services: Iterable[Service], fmt: str | None = None, quiet: bool = False) -> str:
    ordered = sorted(services, key=lambda s: natural_key(str((s.get("Spec") or {}).get("Name", ""))))
    if quiet:
        return "".join(f"{s.get('ID', '')}\n" for s in ordered)
    rows = [service_row(s) for s in ordered]
    return render_format(fmt, rows, default_table=LS_TABLE, headers=LS_HEADERS, sample=service_row({}))


def task_name(task: Task, service_name: str) -> str:
    """docker's task names: `<service>.<slot>` (replicated), `<service>.<node id>` (global)."""
    slot = task.get("Slot")
    return f"{service_name}.{slot}" if slot else f"{service_name}.{task.get('NodeID', '')}"


def timestamp_ns(rfc3339: Any) -> int:
    try:
        return parse_rfc3339(str(rfc3339))
    except ValueError:
        return 0


def ago(rfc3339: Any, now_ns: int) -> str:
    """`2 minutes ago` from an API timestamp (docker lower-cases HumanDuration here)."""
    return f"{human_duration(now_ns - timestamp_ns(rfc3339)).lower()} ago"


def task_ports(task: Task) -> str:
    ports = ((task.get("Status") or {}).get("PortStatus") or {}).get("Ports") or ()
    return ",".join(
        f"*:{p.get('PublishedPort', 0)}->{p.get('TargetPort', 0)}/{p.get('Protocol', 'tcp')}" for p in ports
    )


def task_row(task: Task, name: str, node: str, now_ns: int, trunc: bool = True) -> dict[str, Any]:
    status = task.get("Status") or {}
    error = str(status.get("Err") or "")
    if trunc:
        error = ellipsis(error, MAX_ERR_LENGTH)
    image = ((task.get("Spec") or {}).get("ContainerSpec") or {}).get("Image", "")
    task_id = str(task.get("ID", ""))
    return {
        "ID": short_id(task_id) if trunc else task_id,
        "Name": name,
        "Image": display_image(image) if trunc else image,
        "Node": node,
        "DesiredState": capitalize(task.get("DesiredState", "")),
        "CurrentState": f"{capitalize(status.get('State', ''))} {ago(status.get('Timestamp'), now_ns)}",
        "Error": f'"{error}"' if error else "",
        "Ports": task_ports(task),
    }


def format_tasks(
    tasks: Iterable[Task],
    service_names: Mapping[str, str],
    node_names: Mapping[str, str],
    now_ns: int,
    *,
    trunc: bool = True,
    quiet: bool = False,
    fmt: str | None = None,
) -> str:
    """`service ps`: by task name (digits as numbers), newest first within a slot; older tasks of
    a slot are indented with ` \\_ ` in tables."""
    named = [(task_name(t, service_names.get(t.get("ServiceID", ""), t.get("ServiceID", ""))), t) for t in tasks]
    named.sort(key=lambda nt: (natural_key(nt[0]), -timestamp_ns(nt[1].get("CreatedAt"))))
    if quiet:
        return "".join(f"{short_id(str(t.get('ID', ''))) if trunc else t.get('ID', '')}\n" for _, t in named)
    indent = " \\_ " if fmt in (None, "") or fmt.startswith("table") else ""
    rows, previous = [], None
    for name, t in named:
        shown = indent + name if name == previous else name
        previous = name
        node_id = str(t.get("NodeID") or "")
        rows.append(task_row(t, shown, node_names.get(node_id, node_id), now_ns, trunc))
    sample = task_row({}, "", "", now_ns)
    return render_format(fmt, rows, default_table=PS_TABLE, headers=PS_HEADERS, sample=sample)


def since_value(text: str, now_s: float) -> str:
    """docker's --since: RFC 3339, a Unix time, or a Go duration before now (`42m`)."""
    try:
        return str(int(now_s - parse_duration(text) / 1e9))
    except SpecError:
        pass
    try:
        return str(parse_rfc3339(text) // 1_000_000_000)
    except ValueError:
        pass
    try:
        return str(float(text)).removesuffix(".0")
    except ValueError:
        raise CLIError(f"invalid value for --since: {text!r} (use 2013-01-02T13:23:37Z or 42m)") from None


# --- resolution -------------------------------------------------------------------------------------


def _service(api: Client, ref: str) -> dict[str, Any]:
    try:
        return api.get(f"/services/{ref}")
    except APIError as e:
        if e.status == 404:
            raise CLIError(f"Error: no such service: {ref}") from None
        raise


def _network_resolver(api: Client) -> Callable[[str], str]:
    """Network name or ID → ID, as docker does before sending a spec (404: a clear error)."""
    cache: dict[str, str] = {}

    def resolve(ref: str) -> str:
        if ref not in cache:
            try:
                net = api.get(f"/networks/{ref}")
            except APIError as e:
                if e.status == 404:
                    raise CLIError(f"network {ref} not found") from None
                raise
            cache[ref] = str(net.get("Id") or net.get("ID") or ref)
        return cache[ref]

    return resolve


def _network_names(api: Client) -> dict[str, str]:
    try:
        return {str(n.get("Id") or n.get("ID")): str(n.get("Name", "")) for n in api.get("/networks") or ()}
    except CLIError:
        return {}


def _node_names(nodes: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    return {str(n.get("ID")): hostname(n) or str(n.get("ID")) for n in nodes}


def _warnings(resp: Any) -> None:
    if isinstance(resp, dict):
        for warning in resp.get("Warnings") or ():
            print(warning, file=sys.stderr)


def _wait(api: Client, service_id: str, args: argparse.Namespace) -> None:
    if not args.detach and is_job_service(api, service_id):  # docker waits for the job to finish
        wait_for_job(api, service_id, quiet=args.quiet, timeout_ns=args.timeout)
    elif not args.detach:
        wait_for_service(api, service_id, quiet=args.quiet, timeout_ns=args.timeout)


# --- commands ---------------------------------------------------------------------------------------


def cmd_create(api: Client, args: argparse.Namespace) -> int:
    spec = service_args.create_spec(args, _network_resolver(api))
    service_container.apply_create(spec["TaskTemplate"]["ContainerSpec"], args)  # --mount, --dns, --host, ...
    headers = service_image.prepare_image(api, args, spec, image_changed=True)
    resp = api.request("POST", "/services/create", body=spec, headers=headers)
    _warnings(resp)
    service_id = str(resp.get("ID", ""))
    print(service_id, flush=True)
    _wait(api, service_id, args)
    return 0


def cmd_ls(api: Client, args: argparse.Namespace) -> int:
    filters = argtypes.parse_filters(args.filter)
    services = api.get("/services", status=True, filters=filters or None) or []  # filtered by the agent only
    if not args.quiet and any("ServiceStatus" not in s for s in services):
        nodes = api.get("/nodes") or []
        active = {str(n.get("ID")) for n in nodes if (n.get("Status") or {}).get("State") != "down"}
        tasks = api.get("/tasks", filters={"desired-state": ["running"]}) or []
        computed = status_from_tasks(services, tasks, active)
        services = [{**s, "ServiceStatus": s.get("ServiceStatus") or computed[s["ID"]]} for s in services]
    print(format_services(services, args.format, args.quiet), end="")
    return 0


def cmd_ps(api: Client, args: argparse.Namespace) -> int:
    filters = argtypes.parse_filters(args.filter)  # filtered by the agent only (docker's way)
    found, errors = [], []
    for ref in args.services:
        try:
            found.append(_service(api, ref))
        except CLIError as e:
            errors.append(e.message.removeprefix("Error: "))
    nodes = api.get("/nodes") or []
    if filters.get("node"):
        self_id = ""
        if "self" in filters["node"]:
            self_id = str((api.get("/info").get("Swarm") or {}).get("NodeID") or "")
        filters["node"] = [str(resolve_node(nodes, ref, self_id)["ID"]) for ref in filters["node"]]
    tasks: list[Task] = []
    if found:
        query = {**filters, "service": [str(s["ID"]) for s in found]}
        tasks = api.get("/tasks", filters=query) or []
    service_names = {str(s["ID"]): str((s.get("Spec") or {}).get("Name", "")) for s in found}
    tasks = [t for t in tasks if t.get("ServiceID") in service_names]
    if found:
        out = format_tasks(
            tasks,
            service_names,
            _node_names(nodes),
            time.time_ns(),
            trunc=not args.no_trunc,
            quiet=args.quiet,
            fmt=args.format,
        )
        print(out, end="")
    if errors:
        raise CLIError("\n".join(errors))
    return 0


def cmd_inspect(api: Client, args: argparse.Namespace) -> int:
    found, errors = [], []
    for ref in args.services:
        try:
            found.append(_service(api, ref))
        except CLIError as e:
            errors.append(e.message)
    if args.pretty and args.format:
        raise CLIError("--format is incompatible with human friendly format")
    if args.format:
        print(inspect_format(args.format, found), end="")
    elif args.pretty:
        attached = any(((s.get("Spec") or {}).get("TaskTemplate") or {}).get("Networks") for s in found)
        names = _network_names(api) if attached else {}
        print("".join(pretty_service(s, names) for s in found), end="")
    else:
        print(inspect_json(found), end="")
    if errors:  # like docker: print what was found, then fail for the rest
        raise CLIError("\n".join(errors))
    return 0


def _update(
    api: Client,
    service: Service,
    spec: Mapping[str, Any],
    rollback: bool = False,
    headers: Mapping[str, str] | None = None,
) -> None:
    version = (service.get("Version") or {}).get("Index", 0)
    # without new credentials the service keeps those it has (registryAuthFrom's default: spec)
    query: dict[str, Any] = {"version": version}
    if rollback:
        query["rollback"] = "previous"
    path = f"/services/{service['ID']}/update"
    _warnings(api.request("POST", path, query=query, body=dict(spec), headers=headers))


def _modify(
    api: Client,
    ref: str,
    change: Any,
    rollback: bool = False,
    attempts: int = 3,
    prepare: Callable[[dict[str, Any]], dict[str, str]] | None = None,
) -> Service:
    """Read, change, write with the version read. The orchestrator also writes services (UpdateStatus
    while an update runs), so a stale version is retried on a fresh read: the flags are relative.
    `prepare` pins the new spec's image and gives the call's headers (`service_image`)."""
    for attempt in range(attempts):
        service = _service(api, ref)
        try:
            spec = dict(change(service))
            headers = prepare(spec) if prepare else None
            _update(api, service, spec, rollback=rollback, headers=headers)
            return service
        except APIError as e:
            if e.status != 409 or "out of sequence" not in e.message or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def cmd_update(api: Client, args: argparse.Namespace) -> int:
    resolve = _network_resolver(api)

    def change(service: Service) -> Mapping[str, Any]:
        spec = service_args.update_spec(service.get("Spec") or {}, args, resolve)
        service_container.apply_update(spec["TaskTemplate"]["ContainerSpec"], args)
        if args.rollback and (spec != (service.get("Spec") or {}) or args.with_registry_auth):
            raise CLIError("other flags may not be combined with --rollback")
        return spec

    def prepare(spec: dict[str, Any]) -> dict[str, str]:
        return {} if args.rollback else service_image.prepare_image(api, args, spec, args.image is not None)

    service = _modify(api, args.service, change, rollback=args.rollback, prepare=prepare)
    print(args.service, flush=True)
    _wait(api, str(service["ID"]), args)
    return 0


def cmd_rollback(api: Client, args: argparse.Namespace) -> int:
    service = _service(api, args.service)
    _update(api, service, service.get("Spec") or {}, rollback=True)
    print(args.service, flush=True)
    _wait(api, str(service["ID"]), args)
    return 0


def cmd_scale(api: Client, args: argparse.Namespace) -> int:
    wanted = [service_args.parse_scale(item) for item in args.scales]  # all checked before any call
    errors: list[str] = []
    scaled: list[tuple[str, str]] = []
    for ref, replicas in wanted:
        try:

            def change(service: Service, replicas: int = replicas) -> Mapping[str, Any]:
                spec = dict(service.get("Spec") or {})
                spec["Mode"] = scaled_mode(spec.get("Mode") or {}, replicas)  # job_args.py
                return spec

            service = _modify(api, ref, change)
        except CLIError as e:
            errors.append(f"{ref}: {e.message.removeprefix('Error: ')}")
            continue
        print(f"{ref} scaled to {replicas}", flush=True)
        scaled.append((ref, str(service["ID"])))
    for ref, service_id in scaled:
        try:
            _wait(api, service_id, args)
        except CLIError as e:
            errors.append(f"{ref}: {e.message}")
    if errors:
        raise CLIError("\n".join(errors))
    return 0


def for_each(refs: Iterable[str], action: Callable[[str], Any]) -> int:
    """docker's way with several references: act on each one that can be, print it, then fail
    with the errors of the others."""
    errors: list[str] = []
    for ref in refs:
        try:
            action(ref)
        except CLIError as e:
            errors.append(str(e))
            continue
        print(ref)
    if errors:
        raise CLIError("\n".join(errors))
    return 0


def cmd_rm(api: Client, args: argparse.Namespace) -> int:
    return for_each(args.services, lambda ref: api.delete(f"/services/{_service(api, ref)['ID']}"))


def _tail(text: str) -> str:
    if text != "all" and not text.isdigit():
        raise argparse.ArgumentTypeError(f"invalid --tail {text!r}: a number of lines or 'all'")
    return text


def cmd_logs(api: Client, args: argparse.Namespace) -> int:
    service = _service(api, args.service)
    service_id = str(service["ID"])
    name = str((service.get("Spec") or {}).get("Name", service_id))
    replicas = ((service.get("Spec") or {}).get("Mode") or {}).get("Replicated") or {}
    tasks: dict[str, Task] = {}
    nodes: dict[str, str] = {}

    def task(task_id: str) -> Task | None:
        if task_id not in tasks:  # a task started since the last look (follow mode): look again
            tasks.update({str(t["ID"]): t for t in api.get("/tasks", filters={"service": [service_id]}) or ()})
        return tasks.get(task_id)

    def node(node_id: str) -> str:
        if node_id not in nodes:
            nodes.update(_node_names(api.get("/nodes") or ()))
        return nodes.get(node_id, node_id)

    fmt = LogFormatter(
        task,
        lambda sid: name if sid == service_id else sid,
        node,
        padding=max_length(int(replicas.get("Replicas") or 1)),
        timestamps=args.timestamps,
        details=args.details,
        no_trunc=args.no_trunc,
        no_task_ids=args.no_task_ids,
    )
    query = {
        "stdout": 1,
        "stderr": 1,
        "follow": int(args.follow),
        "timestamps": int(args.timestamps),
        "details": int(args.details or not args.raw),
        "tail": args.tail,
        "since": since_value(args.since, time.time()) if args.since else None,
    }
    demux = Demuxer()
    lines = {1: Lines(), 2: Lines()}
    outs = {1: sys.stdout, 2: sys.stderr}

    def emit(stream_no: int, data: list[bytes]) -> None:
        out = outs[stream_no]
        for raw in data:
            text = raw.decode("utf-8", "replace")
            out.write(text if args.raw else fmt.format(text))
        out.flush()

    timeout = None if args.follow else api.timeout
    for chunk in stream(api, f"/services/{service_id}/logs", query, timeout=timeout):
        for stream_no, payload in demux.feed(chunk):
            if stream_no == 3:  # stdcopy's system error frame
                raise CLIError(f"Error grabbing logs: {payload.decode('utf-8', 'replace').strip()}")
            stream_no = 2 if stream_no == 2 else 1
            emit(stream_no, lines[stream_no].feed(payload))
    for stream_no, payload in demux.close():
        emit(stream_no, lines[stream_no].feed(payload))
    for stream_no, buf in lines.items():
        emit(stream_no, buf.flush())
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("service", help="Manage swarm services", description="Manage swarm services")
    group.set_defaults(func=None, group=group)
    cmds = group.add_subparsers(title="commands", metavar="COMMAND")

    p = cmds.add_parser("create", help="Create a new service", usage="%(prog)s [OPTIONS] IMAGE [COMMAND] [ARG...]")
    service_args.add_create_flags(p)
    service_container.add_create_flags(p)
    p.set_defaults(func=cmd_create)

    p = cmds.add_parser("ls", aliases=["list"], help="List services")
    p.add_argument("-f", "--filter", action="append", metavar="KEY=VALUE", help=f"filter: {', '.join(LS_FILTERS)}")
    p.add_argument("--format", help="'table' (default), 'json', or a template like '{{.ID}}\\t{{.Name}}'")
    p.add_argument("-q", "--quiet", action="store_true", help="only display IDs")
    p.set_defaults(func=cmd_ls)

    p = cmds.add_parser("ps", help="List the tasks of one or more services")
    p.add_argument("-f", "--filter", action="append", metavar="KEY=VALUE", help=f"filter: {', '.join(PS_FILTERS)}")
    p.add_argument("--format", help="'table' (default), 'json', or a template like '{{.ID}}\\t{{.Name}}'")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="only display task IDs")
    p.add_argument("services", nargs="+", metavar="SERVICE")
    p.set_defaults(func=cmd_ps)

    p = cmds.add_parser("inspect", help="Display detailed information on one or more services")
    p.add_argument("--pretty", action="store_true", help="print the information in a human friendly format")
    p.add_argument("-f", "--format", help="'json' or a Go template like '{{.Spec.Name}}'")
    p.add_argument("services", nargs="+", metavar="SERVICE")
    p.set_defaults(func=cmd_inspect)

    p = cmds.add_parser("scale", help="Scale one or multiple replicated services")
    p.add_argument("-d", "--detach", action="store_true", help="exit immediately instead of waiting to converge")
    p.add_argument("--timeout", type=argtypes.duration, default=60 * service_args.SECOND, help=argparse.SUPPRESS)
    p.add_argument("scales", nargs="+", metavar="SERVICE=REPLICAS")
    p.set_defaults(func=cmd_scale, quiet=False)

    p = cmds.add_parser("update", help="Update a service", usage="%(prog)s [OPTIONS] SERVICE")
    service_args.add_update_flags(p)
    service_container.add_update_flags(p)
    p.set_defaults(func=cmd_update)

    p = cmds.add_parser("rollback", help="Revert changes to a service's configuration")
    p.add_argument("-d", "--detach", action="store_true", help="exit immediately instead of waiting to converge")
    p.add_argument("-q", "--quiet", action="store_true", help="suppress progress output")
    p.add_argument("--timeout", type=argtypes.duration, default=60 * service_args.SECOND, help=argparse.SUPPRESS)
    p.add_argument("service", metavar="SERVICE")
    p.set_defaults(func=cmd_rollback)

    p = cmds.add_parser("rm", aliases=["remove"], help="Remove one or more services")
    p.add_argument("services", nargs="+", metavar="SERVICE")
    p.set_defaults(func=cmd_rm)

    p = cmds.add_parser("logs", help="Fetch the logs of a service")
    p.add_argument("-f", "--follow", action="store_true", help="follow log output")
    p.add_argument("-n", "--tail", type=_tail, metavar="N", help="number of lines to show from the end (all)")
    p.add_argument("-t", "--timestamps", action="store_true", help="show timestamps")
    p.add_argument("--since", metavar="TIME", help="show logs since a timestamp or a duration ago (42m)")
    p.add_argument("--details", action="store_true", help="show extra details provided to logs")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate task IDs")
    p.add_argument("--no-task-ids", action="store_true", help="do not include task IDs in output")
    p.add_argument("--raw", action="store_true", help="do not neatly format logs")
    p.add_argument("service", metavar="SERVICE")
    p.set_defaults(func=cmd_logs)
