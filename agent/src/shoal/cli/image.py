"""`shoal image pull|load|ls|inspect|rm|prune|import`: this node's images, like `docker image ...`
(the image store is per node; services pull on the nodes that run them)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

from shoal.cli import image_progress as progress
from shoal.cli.client import Client
from shoal.cli.errors import APIError, CLIError
from shoal.cli.output import human_duration, render_format
from shoal.cli.registry_auth import registry_auth_header, registry_domain
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
    register_more(cmds)


# ---- pull, load, inspect, rm, prune (Docker Engine API: /images/...)
def render_stream(messages: Iterable[Mapping[str, Any]], tty: bool) -> None:
    renderer = progress.Renderer(tty=tty)
    try:
        for msg in messages:
            sys.stdout.write(renderer.feed(msg))
            sys.stdout.flush()
    except progress.PullFailed as exc:
        raise CLIError(exc.message) from None


def cmd_pull(api: Client, args: argparse.Namespace) -> int:
    ref = args.reference
    name, tag = ref, ""
    if "@" in ref:
        name, tag = ref.split("@", 1)
    elif ref.rfind(":") > ref.rfind("/"):
        name, tag = ref[: ref.rfind(":")], ref[ref.rfind(":") + 1 :]
    headers = {}
    auth = registry_auth_header(registry_domain(name))
    if auth:
        headers["X-Registry-Auth"] = auth
    query = {"fromImage": name, "tag": tag or "latest", "platform": args.platform}
    messages = api.stream("POST", "/images/create", query=query, headers=headers)
    render_stream(messages, tty=sys.stdout.isatty() and not args.quiet)
    return 0


def cmd_load(api: Client, args: argparse.Namespace) -> int:
    if args.input in (None, "-"):
        if sys.stdin.isatty():
            raise CLIError("requested load from stdin, but stdin is empty: use -i FILE")
        data: Any = sys.stdin.buffer.read()
    else:
        try:
            data = open(args.input, "rb")  # noqa: SIM115 - streamed to the agent, closed below
        except OSError as exc:
            raise CLIError(f"open {args.input}: {exc.strerror.lower() if exc.strerror else exc}") from None
    try:
        render_stream(api.stream("POST", "/images/load", query={"quiet": args.quiet}, body=data), tty=False)
    finally:
        if hasattr(data, "close"):
            data.close()
    return 0


def cmd_inspect(api: Client, args: argparse.Namespace) -> int:
    out, rc = [], 0
    for name in args.names:
        try:
            out.append(api.get(f"/images/{name}/json"))
        except APIError as exc:
            print(f"Error: {exc.message}", file=sys.stderr)
            rc = 1
    if args.format:
        for doc in out:
            print(render_format(args.format, [doc], default_table=args.format, headers={}, sample=doc), end="")
    else:
        print(json.dumps(out, indent=4))
    return rc


def cmd_rm(api: Client, args: argparse.Namespace) -> int:
    rc = 0
    for name in args.names:
        try:
            for entry in api.delete(f"/images/{name}", force=args.force or None) or []:
                for key, value in entry.items():
                    print(f"{key}: {value}")
        except APIError as exc:
            print(f"Error response from daemon: {exc.message}", file=sys.stderr)
            rc = 1
    return rc


def cmd_prune(api: Client, args: argparse.Namespace) -> int:
    filters = {"dangling": ["false"]} if args.all else {}
    if not args.force:
        what = "all images without at least one task using them" if args.all else "all dangling images"
        print(f"WARNING! This will remove {what}.")
        if input("Are you sure you want to continue? [y/N] ").strip().lower() not in ("y", "yes"):
            return 0
    resp = api.post("/images/prune", filters=filters or None) or {}
    deleted = resp.get("ImagesDeleted") or []
    if deleted:
        print("Deleted Images:")
        for entry in deleted:
            for key, value in entry.items():
                print(f"{key.lower()}: {value}")
        print()
    print(f"Total reclaimed space: {human_size(float(resp.get('SpaceReclaimed') or 0))}")
    return 0


def register_more(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = cmds.add_parser("pull", help="Download an image from a registry to this node")
    p.add_argument("-q", "--quiet", action="store_true", help="suppress verbose output")
    p.add_argument("--platform", help="only linux/amd64 here")
    p.add_argument("reference", metavar="NAME[:TAG|@DIGEST]")
    p.set_defaults(func=cmd_pull)

    p = cmds.add_parser("load", help="Load images from a tar archive (docker save, OCI archive)")
    p.add_argument("-i", "--input", help="read from a tar archive file instead of stdin")
    p.add_argument("-q", "--quiet", action="store_true", help="suppress the load output")
    p.set_defaults(func=cmd_load)

    p = cmds.add_parser("inspect", help="Display detailed information on images")
    p.add_argument("-f", "--format", help="Go-style template")
    p.add_argument("names", nargs="+", metavar="IMAGE")
    p.set_defaults(func=cmd_inspect)

    p = cmds.add_parser("rm", aliases=["remove"], help="Remove images")
    p.add_argument("-f", "--force", action="store_true", help="force removal")
    p.add_argument("names", nargs="+", metavar="IMAGE")
    p.set_defaults(func=cmd_rm)

    p = cmds.add_parser("prune", help="Remove unused images")
    p.add_argument("-a", "--all", action="store_true", help="remove all unused images, not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    p.set_defaults(func=cmd_prune)
