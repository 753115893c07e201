"""`shoal stack deploy|ls|ps|services|rm`, shaped after `docker stack`.

Client side, like the docker CLI: the compose files are loaded, validated and converted here
(`shoal.compose`); every service spec is checked by the manager before the first write; then the
networks, secrets, configs and services named `NAME_x` are created or updated. A service whose
converted spec equals the current one is left alone, so deploying the same files twice writes
nothing. The stack is the set of objects labelled `com.docker.stack.namespace=NAME`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Mapping
from typing import Any

from shoal.cli import service as service_cmd
from shoal.cli import service_image
from shoal.cli.client import Client
from shoal.cli.errors import APIError, CLIError
from shoal.cli.output import render_format
from shoal.compose import convert, loader
from shoal.compose.convert import IMAGE_LABEL, NAMESPACE_LABEL
from shoal.compose.deploy import Deployer, Plan
from shoal.compose.errors import ComposeError

# docker's rule for a stack name (it becomes a prefix of object names)
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
LS_TABLE = "table {{.Name}}\t{{.Services}}"
LS_HEADERS = {"Name": "NAME", "Services": "SERVICES"}


def _namespace_filter(name: str) -> dict[str, list[str]]:
    return {"label": [f"{NAMESPACE_LABEL}={name}"]}


def _check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise CLIError(
            f"invalid stack name {name!r}: use letters, digits, '_', '.' and '-', starting with a letter or digit"
        )
    return name


def _stack_services(api: Client, name: str) -> list[dict[str, Any]]:
    return api.get("/services", filters=_namespace_filter(name)) or []


def _eprint(text: str) -> None:
    print(text, file=sys.stderr)


def load_stack(files: list[str], name: str) -> tuple[convert.Stack, Any]:
    try:
        project = loader.load(files, warn=_eprint)
        return convert.convert(project, name), project.locator
    except ComposeError as exc:
        raise CLIError(exc.message) from None


def _image_preparer(api: Client, args: argparse.Namespace) -> Any:
    """--resolve-image: pin the image to its registry digest (always, or when the file's image
    changed); an image the files did not change keeps the digest its service already runs."""

    def prepare(spec: dict[str, Any], current: Mapping[str, Any] | None) -> None:
        container = spec["TaskTemplate"]["ContainerSpec"]
        image = container["Image"]
        image_changed = current is None or (current["Spec"].get("Labels") or {}).get(IMAGE_LABEL) != image
        if service_image.needs_resolving(image, args.resolve_image, image_changed):
            container["Image"] = service_image.resolve(api, image, service_image.auth_headers(args, image))
        elif current is not None and not image_changed:
            container["Image"] = current["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]

    return prepare


def plan_deploy(api: Client, args: argparse.Namespace) -> tuple[Deployer, Plan]:
    stack, locator = load_stack(args.compose_file, args.name)
    deployer = Deployer(api, stack, locator)
    try:
        return deployer, deployer.plan(prune=args.prune, prepare=_image_preparer(api, args))
    except ComposeError as exc:
        raise CLIError(exc.message) from None


def cmd_deploy(api: Client, args: argparse.Namespace) -> int:
    _check_name(args.name)
    deployer, plan = plan_deploy(api, args)

    def headers(spec: dict[str, Any]) -> dict[str, str]:
        return service_image.auth_headers(args, spec["TaskTemplate"]["ContainerSpec"]["Image"])

    # --json (the Ansible module's way in): progress on stderr, the plan as JSON on stdout
    say = _eprint if args.json else print
    for warning in plan.warnings:
        _eprint(f"WARNING: {warning}")
    if not args.dry_run:
        deployer.apply(plan, headers=headers, say=say)
    else:
        for a in plan.actions:
            say(f"Would {a.op} {a.kind} {a.name}")
    if args.json:
        print(json.dumps(plan.summary(), sort_keys=True))
    return 0


def cmd_ls(api: Client, args: argparse.Namespace) -> int:
    counts: dict[str, int] = {}
    for s in api.get("/services") or []:
        ns = ((s.get("Spec") or {}).get("Labels") or {}).get(NAMESPACE_LABEL)
        if ns:
            counts[ns] = counts.get(ns, 0) + 1
    rows = [{"Name": n, "Services": str(c)} for n, c in sorted(counts.items())]
    print(render_format(args.format, rows, default_table=LS_TABLE, headers=LS_HEADERS), end="")
    return 0


def _nothing_found(name: str) -> CLIError:
    return CLIError(f"nothing found in stack: {name}")


def cmd_services(api: Client, args: argparse.Namespace) -> int:
    if not _stack_services(api, args.name):
        raise _nothing_found(args.name)
    ns = argparse.Namespace(
        filter=[*args.filter, f"label={NAMESPACE_LABEL}={args.name}"], format=args.format, quiet=args.quiet
    )
    return service_cmd.cmd_ls(api, ns)


def cmd_ps(api: Client, args: argparse.Namespace) -> int:
    services = _stack_services(api, args.name)
    if not services:
        raise _nothing_found(args.name)
    names = {str(s["ID"]): str(s["Spec"]["Name"]) for s in services}
    tasks = api.get("/tasks", filters={"service": sorted(names)}) or []
    nodes = {
        str(n["ID"]): str((n.get("Description") or {}).get("Hostname") or n["ID"]) for n in api.get("/nodes") or []
    }
    tasks = [t for t in tasks if t.get("ServiceID") in names]
    out = service_cmd.format_tasks(
        tasks, names, nodes, time.time_ns(), trunc=not args.no_trunc, quiet=args.quiet, fmt=args.format
    )
    print(out, end="")
    return 0


def _optional_list(api: Client, path: str, name: str) -> list[dict[str, Any]]:
    try:
        return api.get(path, filters=_namespace_filter(name)) or []
    except APIError as exc:
        if exc.status == 404:  # an agent without secrets/configs has none to remove
            return []
        raise


def _remove(api: Client, path: str, attempts: int = 40, pause: float = 0.5) -> None:
    """DELETE, retried while the object is still in use by the tasks of the services just
    removed (they take a moment to stop and let go of their networks); at most ~20 s."""
    for attempt in range(attempts):
        try:
            api.delete(path)
            return
        except APIError as exc:
            if (exc.status not in (403, 409) and "in use" not in exc.message) or attempt == attempts - 1:
                raise
            time.sleep(pause)


def cmd_rm(api: Client, args: argparse.Namespace) -> int:
    failed = False
    for name in args.names:
        services = _stack_services(api, name)
        objects = [
            ("secret", _optional_list(api, "/secrets", name)),
            ("config", _optional_list(api, "/configs", name)),
            ("network", api.get("/networks", filters=_namespace_filter(name)) or []),
        ]
        if not services and not any(objs for _, objs in objects):
            _eprint(f"Nothing found in stack: {name}")
            continue
        for s in sorted(services, key=lambda s: s["Spec"]["Name"]):
            print(f"Removing service {s['Spec']['Name']}")
            api.delete(f"/services/{s['ID']}")
        for kind, objs in objects:
            for o in sorted(objs, key=lambda o: (o.get("Spec") or o).get("Name", "")):
                label = (o.get("Spec") or o).get("Name", o.get("ID"))
                print(f"Removing {kind} {label}")
                try:
                    _remove(api, f"/{kind}s/{o.get('ID') or o.get('Id')}")
                except APIError as exc:
                    failed = True
                    _eprint(f"Failed to remove {kind} {label}: {exc.message}")
    if failed:
        raise CLIError("failed to remove some resources from the stack")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("stack", help="Manage swarm stacks", description="Manage swarm stacks")
    group.set_defaults(func=None, group=group)
    cmds = group.add_subparsers(title="commands", metavar="COMMAND")

    p = cmds.add_parser("deploy", aliases=["up"], help="Deploy a new stack or update an existing stack")
    p.add_argument(
        "-c",
        "--compose-file",
        action="append",
        required=True,
        metavar="FILE",
        help="path to a compose file (repeat for overrides, applied in order)",
    )
    p.add_argument("--prune", action="store_true", help="prune services that are no longer referenced")
    p.add_argument("--dry-run", action="store_true", help="check everything and say what would change; write nothing")
    p.add_argument("--json", action="store_true", help="print what changed (or would) as JSON on stdout")
    service_image.add_flags(p, default_resolve=service_image.RESOLVE_ALWAYS)
    p.add_argument("name", metavar="STACK")
    p.set_defaults(func=cmd_deploy)

    p = cmds.add_parser("ls", aliases=["list"], help="List stacks")
    p.add_argument("--format", help="'table' (default), 'json', or a template like '{{.Name}}'")
    p.set_defaults(func=cmd_ls)

    p = cmds.add_parser("ps", help="List the tasks in the stack")
    p.add_argument("--format", help="'table' (default), 'json', or a template")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="only display task IDs")
    p.add_argument("name", metavar="STACK")
    p.set_defaults(func=cmd_ps)

    p = cmds.add_parser("services", help="List the services in the stack")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE", help="filter output")
    p.add_argument("--format", help="'table' (default), 'json', or a template")
    p.add_argument("-q", "--quiet", action="store_true", help="only display IDs")
    p.add_argument("name", metavar="STACK")
    p.set_defaults(func=cmd_services)

    p = cmds.add_parser("rm", aliases=["remove", "down"], help="Remove one or more stacks")
    p.add_argument("names", nargs="+", metavar="STACK")
    p.set_defaults(func=cmd_rm)
