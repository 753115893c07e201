"""`shoal node ps [NODE...]`: the tasks on one or more nodes (default: this one), as docker's.

The filtering is the agent's (`/tasks?filters={"node": [...], ...}`); the table is `service ps`'s.
It is its own module because `service` imports `node`: registering it from `node` would be a cycle.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from shoal.cli import args as argtypes
from shoal.cli.client import Client
from shoal.cli.errors import CLIError
from shoal.cli.node import hostname, resolve_node
from shoal.cli.service import format_tasks

FILTERS = ("desired-state", "id", "label", "name")


def cmd_ps(api: Client, args: argparse.Namespace) -> int:
    filters = argtypes.parse_filters(args.filter)
    unknown = sorted(set(filters) - set(FILTERS))
    if unknown:
        raise CLIError(f"invalid filter '{unknown[0]}'")
    nodes = api.get("/nodes") or []
    self_id = str((api.get("/info").get("Swarm") or {}).get("NodeID") or "")
    refs = args.nodes or ["self"]
    found, errors = [], []
    for ref in refs:
        try:
            found.append(resolve_node(nodes, ref, self_id))
        except CLIError as e:
            errors.append(e.message.removeprefix("Error: "))
    tasks: list[dict[str, Any]] = []
    for node in found:
        tasks += api.get("/tasks", filters={**filters, "node": [str(node["ID"])]}) or []
    services = {str(s["ID"]): str((s.get("Spec") or {}).get("Name", "")) for s in api.get("/services") or []}
    names = {str(n.get("ID")): hostname(n) or str(n.get("ID")) for n in nodes}
    if args.no_resolve:
        services, names = {}, {}
    if found:
        trunc, now = not args.no_trunc, time.time_ns()
        print(format_tasks(tasks, services, names, now, trunc=trunc, quiet=args.quiet, fmt=args.format), end="")
    if errors:
        raise CLIError("\n".join(errors))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds `ps` to the `node` group that node.register made (argparse keeps a group's
    subcommands in its one _SubParsersAction)."""
    group = sub.choices["node"]
    cmds = next(a for a in group._actions if isinstance(a, argparse._SubParsersAction))
    p = cmds.add_parser("ps", help="List tasks running on one or more nodes, defaults to current node")
    p.add_argument("-f", "--filter", action="append", metavar="KEY=VALUE", help=f"filter: {', '.join(FILTERS)}")
    p.add_argument("--format", help="'table' (default), 'json', or a template like '{{.ID}}\\t{{.Name}}'")
    p.add_argument("--no-resolve", action="store_true", help="do not map IDs to names")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="only display task IDs")
    p.add_argument("nodes", nargs="*", metavar="NODE", help="ID, ID prefix, hostname, or 'self' (default)")
    p.set_defaults(func=cmd_ps)
