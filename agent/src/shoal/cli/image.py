"""`shoal image ls|import`: the node-local images of the process driver, like `docker image ls` and
`docker import` (the image store is per node: import on every node that may run the service)."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

from shoal.cli.client import Client
from shoal.cli.errors import CLIError
from shoal.cli.output import human_duration, render_format
from shoal.cli.service import timestamp_ns

Image = Mapping[str, Any]

LS_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
LS_HEADERS = {
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "ID": "IMAGE ID",
    "CreatedSince": "CREATED",
    "Size": "SIZE",
}
_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: float) -> str:
    """go-units HumanSizeWithPrecision(size, 3), what `docker image ls` prints: "13.3kB", "0B"."""
    i = 0
    while size >= 1000 and i < len(_DECIMAL_UNITS) - 1:
        size /= 1000
        i += 1
    return f"{size:.3g}{_DECIMAL_UNITS[i]}"


def image_row(image: Image, now_ns: int, trunc: bool = True) -> dict[str, Any]:
    image_id = str(image.get("ID") or image.get("Id") or "")
    created = image.get("Created")
    return {
        "Repository": image.get("Name", ""),
        "Tag": image.get("Tag", ""),
        "ID": image_id.removeprefix("sha256:")[:12] if trunc else image_id,
        "CreatedSince": f"{human_duration(now_ns - timestamp_ns(created))} ago" if created else "N/A",
        "CreatedAt": created or "",
        "Size": human_size(float(image.get("Size") or 0)),
    }


def format_images(
    images: Iterable[Image], now_ns: int, *, trunc: bool = True, quiet: bool = False, fmt: str | None = None
) -> str:
    """Newest first (docker's order), then by name."""
    ordered = sorted(images, key=lambda i: (-timestamp_ns(i.get("Created")), str(i.get("Name")), str(i.get("Tag"))))
    rows = [image_row(i, now_ns, trunc) for i in ordered]
    if quiet:
        return "".join(f"{r['ID']}\n" for r in rows)
    return render_format(fmt, rows, default_table=LS_TABLE, headers=LS_HEADERS, sample=image_row({}, now_ns))


def split_reference(ref: str) -> tuple[str, str]:
    """`name[:tag]` → (name, tag), the tag defaulting to latest; a registry port is not a tag."""
    name, tag = ref, "latest"
    colon = ref.rfind(":")
    if colon > ref.rfind("/"):
        name, tag = ref[:colon], ref[colon + 1 :]
    if not name or not tag:
        raise CLIError(f"invalid reference format: {ref!r}")
    return name, tag


def import_request(source: str, ref: str, changes: Iterable[str]) -> dict[str, Any]:
    """The body of POST /shoal/images/import; the source must exist here (the agent reads it on
    this host), so a typo fails before the call."""
    path = os.path.abspath(source)
    if not os.path.exists(path):
        raise CLIError(f"open {source}: no such file or directory")
    name, tag = split_reference(ref)
    return {"Source": path, "Name": name, "Tag": tag, "Changes": list(changes)}


def cmd_ls(api: Client, args: argparse.Namespace) -> int:
    images = api.get("/shoal/images") or []
    print(format_images(images, time.time_ns(), trunc=not args.no_trunc, quiet=args.quiet, fmt=args.format), end="")
    return 0


def cmd_import(api: Client, args: argparse.Namespace) -> int:
    resp = api.post("/shoal/images/import", import_request(args.source, args.reference, args.change or ()))
    if isinstance(resp, Mapping):
        print(resp.get("ID") or resp.get("Id") or "")
    elif resp:
        print(resp)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("image", help="Manage the images of this node", description="Manage the images of this node")
    group.set_defaults(func=None, group=group)
    cmds = group.add_subparsers(title="commands", metavar="COMMAND")

    p = cmds.add_parser("ls", aliases=["list"], help="List images")
    p.add_argument("--format", help="'table' (default), 'json', or a template like '{{.Repository}}:{{.Tag}}'")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    p.set_defaults(func=cmd_ls)

    p = cmds.add_parser("import", help="Import a root filesystem (directory or tar) as an image")
    p.add_argument(
        "-c",
        "--change",
        action="append",
        metavar="INSTR",
        help="apply a Dockerfile instruction (ENTRYPOINT, CMD, ENV...)",
    )
    p.add_argument("source", metavar="DIR|TAR")
    p.add_argument("reference", metavar="NAME[:TAG]")
    p.set_defaults(func=cmd_import)
