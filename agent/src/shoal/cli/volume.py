"""`shoal volume create|ls|inspect|rm|prune`: this node's volumes, like `docker volume ...`
(volumes are node-local, Docker's `local` driver: the command talks to the local agent)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from shoal.cli.client import Client
from shoal.cli.errors import APIError
from shoal.cli.image import human_size
from shoal.cli.output import inspect_json, render_format
from shoal.cli.service_args import _labels

LS_TABLE = "table {{.Driver}}\t{{.Name}}"
LS_HEADERS = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT", "Scope": "SCOPE"}


def volume_row(volume: Mapping[str, Any]) -> dict[str, Any]:
    labels = volume.get("Labels") or {}
    return {
        "Name": volume.get("Name", ""),
        "Driver": volume.get("Driver", ""),
        "Mountpoint": volume.get("Mountpoint", ""),
        "Scope": volume.get("Scope", ""),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "CreatedAt": volume.get("CreatedAt", ""),
    }


def format_volumes(volumes: Iterable[Mapping[str, Any]], *, quiet: bool = False, fmt: str | None = None) -> str:
    rows = [volume_row(v) for v in sorted(volumes, key=lambda v: str(v.get("Name")))]
    if quiet:
        return "".join(f"{r['Name']}\n" for r in rows)
    return render_format(fmt, rows, default_table=LS_TABLE, headers=LS_HEADERS, sample=volume_row({}))


def _filters(items: Iterable[str] | None) -> str | None:
    out: dict[str, list[str]] = {}
    for item in items or ():
        key, _, value = item.partition("=")
        out.setdefault(key, []).append(value)
    return json.dumps(out) if out else None


def cmd_create(api: Client, args: argparse.Namespace) -> int:
    name = args.name or args.volume or ""
    body = {"Name": name, "Driver": args.driver, "DriverOpts": _labels(args.opt), "Labels": _labels(args.label)}
    resp = api.post("/volumes/create", body) or {}
    print(resp.get("Name", name))
    return 0


def cmd_ls(api: Client, args: argparse.Namespace) -> int:
    resp = api.get("/volumes", filters=_filters(args.filter)) or {}
    print(format_volumes(resp.get("Volumes") or [], quiet=args.quiet, fmt=args.format), end="")
    return 0


def cmd_inspect(api: Client, args: argparse.Namespace) -> int:
    out, rc = [], 0
    for name in args.names:
        try:
            out.append(api.get(f"/volumes/{name}"))
        except APIError as exc:
            print(f"Error response from daemon: {exc.message}", file=sys.stderr)
            rc = 1
    if args.format:
        for doc in out:
            print(render_format(args.format, [doc], default_table=args.format, headers={}, sample=doc), end="")
    else:
        print(inspect_json(out), end="")
    return rc


def cmd_rm(api: Client, args: argparse.Namespace) -> int:
    rc = 0
    for name in args.names:
        try:
            api.delete(f"/volumes/{name}", force="1" if args.force else None)
            print(name)
        except APIError as exc:
            print(f"Error response from daemon: {exc.message}", file=sys.stderr)
            rc = 1
    return rc


def cmd_prune(api: Client, args: argparse.Namespace) -> int:
    filters = list(args.filter or []) + (["all=true"] if args.all else [])
    if not args.force:
        what = (
            "all local volumes not used by at least one task"
            if args.all
            else "anonymous local volumes not used by at least one task"
        )
        print(f"WARNING! This will remove {what}.")
        if input("Are you sure you want to continue? [y/N] ").strip().lower() not in ("y", "yes"):
            return 0
    resp = api.post("/volumes/prune", filters=_filters(filters)) or {}
    deleted = resp.get("VolumesDeleted") or []
    if deleted:
        print("Deleted Volumes:")
        print("".join(f"{name}\n" for name in deleted))
    print(f"Total reclaimed space: {human_size(float(resp.get('SpaceReclaimed') or 0))}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser(
        "volume", help="Manage the volumes of this node", description="Manage the volumes of this node"
    )
    group.set_defaults(func=None, group=group)
    cmds = group.add_subparsers(title="commands", metavar="COMMAND")

    p = cmds.add_parser("create", help="Create a volume")
    p.add_argument("-d", "--driver", default="local", help="volume driver name (local)")
    p.add_argument("--label", action="append", metavar="K=V", help="set metadata for a volume")
    p.add_argument("-o", "--opt", action="append", metavar="K=V", help="driver specific options")
    p.add_argument("--name", help="volume name")
    p.add_argument("volume", nargs="?", metavar="VOLUME")
    p.set_defaults(func=cmd_create)

    p = cmds.add_parser("ls", aliases=["list"], help="List volumes")
    p.add_argument("-f", "--filter", action="append", metavar="KEY=VALUE", help="dangling, driver, label, name")
    p.add_argument("--format", help="'table' (default), 'json', or a template like '{{.Name}}'")
    p.add_argument("-q", "--quiet", action="store_true", help="only display volume names")
    p.set_defaults(func=cmd_ls)

    p = cmds.add_parser("inspect", help="Display detailed information on one or more volumes")
    p.add_argument("-f", "--format", help="Go-style template")
    p.add_argument("names", nargs="+", metavar="VOLUME")
    p.set_defaults(func=cmd_inspect)

    p = cmds.add_parser("rm", aliases=["remove"], help="Remove one or more volumes")
    p.add_argument("-f", "--force", action="store_true", help="do not fail on a volume that does not exist")
    p.add_argument("names", nargs="+", metavar="VOLUME")
    p.set_defaults(func=cmd_rm)

    p = cmds.add_parser("prune", help="Remove unused local volumes")
    p.add_argument("-a", "--all", action="store_true", help="remove all unused volumes, not just anonymous ones")
    p.add_argument("--filter", action="append", metavar="KEY=VALUE", help="label=K[=V], label!=K[=V]")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    p.set_defaults(func=cmd_prune)
