"""`shoal secret create|ls|inspect|rm` and `shoal config create|ls|inspect|rm`, after docker's.

One implementation for both groups (`Group` says what differs). The data comes from a file or
`-` (stdin) and goes to the agent base64-encoded; the size limits and name rules are the
agent's (its message is printed). A secret's data is never printed: the agent does not return it.
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shoal.cli import args as argtypes
from shoal.cli.client import Client
from shoal.cli.errors import APIError, CLIError
from shoal.cli.network import format_inspect
from shoal.cli.output import field, go_time, human_duration, inspect_json, natural_key, render_format
from shoal.errors import SpecError
from shoal.model.ids import parse_rfc3339
from shoal.model.validate import parse_labels

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Group:
    name: str  # "secret" / "config"
    table: str
    shows_data: bool

    @property
    def path(self) -> str:
        return f"/{self.name}s"


SECRETS = Group("secret", "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.CreatedAt}}\t{{.UpdatedAt}}", False)
CONFIGS = Group("config", "table {{.ID}}\t{{.Name}}\t{{.CreatedAt}}\t{{.UpdatedAt}}", True)
HEADERS = {
    "ID": "ID",
    "Name": "NAME",
    "Driver": "DRIVER",
    "CreatedAt": "CREATED",
    "UpdatedAt": "UPDATED",
    "Labels": "LABELS",
}


def read_data(source: str) -> bytes:
    """The payload from a file, or from stdin for `-`."""
    try:
        if source == "-":
            return sys.stdin.buffer.read()
        with open(source, "rb") as f:
            return f.read()
    except OSError as exc:
        raise CLIError(f"error reading content from {source!r}: {exc.strerror or exc}") from None


def create_request(name: str, data: bytes, labels: Iterable[str]) -> dict[str, Any]:
    try:
        parsed = parse_labels(labels)
    except SpecError as exc:
        raise CLIError(exc.message) from None
    return {"Name": name, "Labels": parsed, "Data": base64.b64encode(data).decode()}


def _ago(rfc3339: Any, now_ns: int) -> str:
    try:
        return f"{human_duration(now_ns - parse_rfc3339(str(rfc3339)))} ago"
    except ValueError:
        return ""


def row(obj: Obj, now_ns: int) -> dict[str, str]:
    spec = obj.get("Spec") or {}
    return {
        "ID": str(obj.get("ID", "")),
        "Name": str(spec.get("Name", "")),
        "Driver": str((spec.get("Driver") or {}).get("Name", "")),
        "CreatedAt": _ago(obj.get("CreatedAt"), now_ns),
        "UpdatedAt": _ago(obj.get("UpdatedAt"), now_ns),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted((spec.get("Labels") or {}).items())),
    }


def format_list(group: Group, objects: Sequence[Obj], fmt: str | None, quiet: bool, now_ns: int) -> str:
    ordered = sorted(objects, key=lambda o: natural_key(str((o.get("Spec") or {}).get("Name", ""))))
    if quiet:
        return "".join(f"{o.get('ID', '')}\n" for o in ordered)
    rows = [row(o, now_ns) for o in ordered]
    return render_format(fmt, rows, default_table=group.table, headers=HEADERS, sample=row({}, now_ns))


def pretty(group: Group, obj: Obj) -> str:
    spec = obj.get("Spec") or {}
    lines = [field("ID:", obj.get("ID", ""), 17), field("Name:", spec.get("Name", ""), 17)]
    labels = spec.get("Labels") or {}
    if labels:
        lines.append("Labels:")
        lines += [f" - {k}={v}" for k, v in sorted(labels.items())]
    if not group.shows_data:
        lines.append(field("Driver:", (spec.get("Driver") or {}).get("Name", ""), 17))
    lines += [
        field("Created at:", go_time(str(obj.get("CreatedAt", ""))), 17),
        field("Updated at:", go_time(str(obj.get("UpdatedAt", ""))), 17),
    ]
    if group.shows_data:
        data = base64.b64decode(spec.get("Data") or "").decode(errors="replace")
        lines += ["Data:", data]
    return "\n".join(lines) + "\n"


def _get(api: Client, group: Group, ref: str) -> dict[str, Any]:
    try:
        return api.get(f"{group.path}/{ref}")
    except APIError as e:
        if e.status == 404:
            raise CLIError(f"Error response from daemon: {group.name} {ref} not found") from None
        raise


def commands(group: Group) -> dict[str, Any]:
    def cmd_create(api: Client, args: argparse.Namespace) -> int:
        if args.template_driver:
            raise CLIError(f"--template-driver is not supported by shoal ({group.name} templating is not implemented)")
        if getattr(args, "driver", None):
            raise CLIError("--driver is not supported by shoal (secret drivers are not implemented)")
        if args.file is None:
            raise CLIError(f'"shoal {group.name} create" requires exactly 2 arguments: NAME and FILE (or - for stdin)')
        body = create_request(args.name, read_data(args.file), args.label or ())
        resp = api.post(f"{group.path}/create", body) or {}
        print(resp.get("ID", ""))
        return 0

    def cmd_ls(api: Client, args: argparse.Namespace) -> int:
        objects = api.get(group.path, filters=argtypes.parse_filters(args.filter) or None) or []
        print(format_list(group, objects, args.format, args.quiet, time.time_ns()), end="")
        return 0

    def cmd_inspect(api: Client, args: argparse.Namespace) -> int:
        found, errors = [], []
        for ref in args.refs:
            try:
                found.append(_get(api, group, ref))
            except CLIError as e:
                errors.append(str(e))
        if args.pretty:
            print("\n".join(pretty(group, o) for o in found), end="")
        elif args.format:
            print(format_inspect(args.format, found), end="")  # `{{.Spec.Name}}`, `{{json .Spec.Labels}}`
        else:
            print(inspect_json(found), end="")
        if errors:
            raise CLIError("\n".join(errors))
        return 0

    def cmd_rm(api: Client, args: argparse.Namespace) -> int:
        errors: list[str] = []
        for ref in args.refs:
            try:
                obj = _get(api, group, ref)
                api.delete(f"{group.path}/{obj.get('ID') or ref}")
            except CLIError as e:
                errors.append(str(e))
                continue
            print(ref, flush=True)
        if errors:
            raise CLIError("\n".join(errors))
        return 0

    return {"create": cmd_create, "ls": cmd_ls, "inspect": cmd_inspect, "rm": cmd_rm}


def _register(sub: argparse._SubParsersAction[argparse.ArgumentParser], group: Group) -> None:
    cmds_of = commands(group)
    title = f"{group.name.capitalize()}s"
    top = sub.add_parser(group.name, help=f"Manage swarm {group.name}s", description=f"Manage swarm {group.name}s")
    top.set_defaults(func=None, group=top)
    cmds = top.add_subparsers(title="commands", metavar="COMMAND")

    p = cmds.add_parser("create", help=f"Create a {group.name} from a file or STDIN as content")
    p.add_argument("-l", "--label", action="append", metavar="KEY=VALUE", help=f"{title[:-1]} labels")
    p.add_argument("--template-driver", help="template driver (not supported)")
    if group.name == "secret":
        p.add_argument("-d", "--driver", help="secret driver (not supported)")
    p.add_argument("name", metavar=group.name.upper())
    p.add_argument("file", nargs="?", metavar="FILE|-")
    p.set_defaults(func=cmds_of["create"])

    p = cmds.add_parser("ls", aliases=["list"], help=f"List {group.name}s")
    p.add_argument("-f", "--filter", action="append", metavar="KEY=VALUE", help="filter: id, label, name, names")
    p.add_argument("--format", help="'table' (default), 'json', or a template like '{{.ID}}\\t{{.Name}}'")
    p.add_argument("-q", "--quiet", action="store_true", help="only display IDs")
    p.set_defaults(func=cmds_of["ls"])

    p = cmds.add_parser("inspect", help=f"Display detailed information on one or more {group.name}s")
    p.add_argument("-f", "--format", help="'json' or a template like '{{.ID}}'")
    p.add_argument("--pretty", action="store_true", help="print the information in a human friendly format")
    p.add_argument("refs", nargs="+", metavar=group.name.upper())
    p.set_defaults(func=cmds_of["inspect"])

    p = cmds.add_parser("rm", aliases=["remove"], help=f"Remove one or more {group.name}s")
    p.add_argument("refs", nargs="+", metavar=group.name.upper())
    p.set_defaults(func=cmds_of["rm"])


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register(sub, SECRETS)
    _register(sub, CONFIGS)
