"""`shoal node ls|inspect|promote|demote|update|rm`, shaped after `docker node`.

Node references (an ID, a unique ID prefix, a hostname, or `self`) are resolved here, against
GET /nodes, so that the agent only ever sees full IDs.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from shoal.cli import args as argtypes
from shoal.cli.client import Client
from shoal.cli.errors import CLIError
from shoal.cli.inspect_format import inspect_format
from shoal.cli.node_pretty import pretty_node
from shoal.cli.output import capitalize, inspect_json, natural_key, render_format
from shoal.errors import NotFound
from shoal.model.objects import NODE_AVAILABILITIES, NODE_ROLES
from shoal.model.resolve import resolve
from shoal.model.validate import parse_label

Node = Mapping[str, Any]

DEFAULT_TABLE = (
    "table {{.ID}} {{._self}}\t{{.Hostname}}\t{{.Status}}\t{{.Availability}}\t{{.ManagerStatus}}\t{{.EngineVersion}}"
)
HEADERS = {
    "ID": "ID",
    "_self": "",
    "Hostname": "HOSTNAME",
    "Status": "STATUS",
    "Availability": "AVAILABILITY",
    "ManagerStatus": "MANAGER STATUS",
    "EngineVersion": "ENGINE VERSION",
    "TLSStatus": "TLS STATUS",
    "Self": "SELF",
}
FILTERS = ("id", "label", "membership", "name", "node.label", "role")


# --- pure helpers ---------------------------------------------------------------------------------


def hostname(node: Node) -> str:
    return str(node.get("Description", {}).get("Hostname", ""))


def manager_status(node: Node) -> str:
    """ "Leader", "Reachable", "Unreachable", "Unknown"; "" for a worker (no ManagerStatus)."""
    ms = node.get("ManagerStatus")
    if not ms:
        return ""
    return "Leader" if ms.get("Leader") else capitalize(ms.get("Reachability", ""))


def tls_status(node: Node, cluster_tls: Mapping[str, Any] | None) -> str:
    """docker's TLS STATUS: the node's certificate issuer is the cluster's current root."""
    if cluster_tls is None:
        return "Unknown"
    node_tls = node.get("Description", {}).get("TLSInfo") or {}
    return "Ready" if dict(node_tls) == dict(cluster_tls) else "Needs Rotation"


def node_row(node: Node, self_id: str = "", cluster_tls: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The fields `node ls` shows and `--format` can use (docker's names)."""
    is_self = bool(self_id) and node.get("ID") == self_id
    return {
        "ID": node.get("ID", ""),
        "Self": is_self,
        "_self": "*" if is_self else " ",
        "Hostname": hostname(node),
        "Status": capitalize(node.get("Status", {}).get("State", "")),
        "Availability": capitalize(node.get("Spec", {}).get("Availability", "")),
        "ManagerStatus": manager_status(node),
        "EngineVersion": node.get("Description", {}).get("Engine", {}).get("EngineVersion", ""),
        "TLSStatus": tls_status(node, cluster_tls),
    }


def sort_nodes(nodes: Iterable[Node]) -> list[Node]:
    """By hostname, digits compared as numbers (docker), then ID so that the order is stable."""
    return sorted(nodes, key=lambda n: (natural_key(hostname(n)), hostname(n), n.get("ID", "")))


def format_nodes(
    nodes: Iterable[Node],
    self_id: str = "",
    cluster_tls: Mapping[str, Any] | None = None,
    fmt: str | None = None,
    quiet: bool = False,
) -> str:
    ordered = sort_nodes(nodes)
    if quiet:
        return "".join(f"{n.get('ID', '')}\n" for n in ordered)
    rows = [node_row(n, self_id, cluster_tls) for n in ordered]
    return render_format(fmt, rows, default_table=DEFAULT_TABLE, headers=HEADERS, sample=node_row({}))


def resolve_node(nodes: Sequence[Node], ref: str, self_id: str = "") -> Node:
    """A node by full ID, then hostname (or Spec.Name), then unique ID prefix; `self` = local node.

    The order is SwarmKit's (daemon/cluster getNode): an exact ID always wins, a name beats a
    prefix, and a name or prefix that matches several nodes is an error, never a guess."""
    if ref == "self":
        if not self_id:
            raise CLIError("Error: this node is not part of a swarm, so 'self' names no node")
        ref = self_id
    try:
        return resolve(
            list(nodes), ref, "node", lambda n: [x for x in (hostname(n), n.get("Spec", {}).get("Name")) if x]
        )
    except NotFound as e:
        raise CLIError(f"Error: {e.message}" if "ambiguous" in e.message else f"Error: No such node: {ref}") from None


def validate_update(availability: str | None, role: str | None) -> tuple[str | None, str | None]:
    """Lower-cased and checked before any call, so that a typo never half-applies an update."""
    if availability is not None:
        availability = availability.lower()
        if availability not in NODE_AVAILABILITIES:
            raise CLIError(f"invalid availability {availability!r}: use active, pause or drain")
    if role is not None:
        role = role.lower()
        if role not in NODE_ROLES:
            raise CLIError(f"invalid role {role!r}: use worker or manager")
    return availability, role


def updated_spec(
    spec: Mapping[str, Any],
    *,
    availability: str | None = None,
    role: str | None = None,
    label_add: Iterable[str] = (),
    label_rm: Iterable[str] = (),
) -> dict[str, Any]:
    """A new NodeSpec with docker's merge order: availability, role, label-add, label-rm."""
    new = copy.deepcopy(dict(spec))
    if availability is not None:
        new["Availability"] = availability
    if role is not None:
        new["Role"] = role
    labels = dict(new.get("Labels") or {})
    for item in label_add:
        try:
            key, value = parse_label(item)
        except ValueError as e:
            raise CLIError(str(e)) from None
        labels[key] = value
    for key in label_rm:
        if key not in labels:
            raise CLIError(f"key {key} doesn't exist in node's labels")
        del labels[key]
    new["Labels"] = labels
    return new


# --- commands ---------------------------------------------------------------------------------------


def _self_id(api: Client) -> str:
    return str((api.get("/info").get("Swarm") or {}).get("NodeID") or "")


def _resolve_all(api: Client, refs: Sequence[str]) -> list[Node | CLIError]:
    """Each reference's node, or the error that names why it has none (callers decide)."""
    nodes = api.get("/nodes")
    self_id = _self_id(api) if "self" in refs else ""
    out: list[Node | CLIError] = []
    for ref in refs:
        try:
            out.append(resolve_node(nodes, ref, self_id))
        except CLIError as e:
            out.append(e)
    return out


def _resolve_one(api: Client, ref: str) -> Node:
    (found,) = _resolve_all(api, [ref])
    if isinstance(found, CLIError):
        raise found
    return found


def cmd_ls(api: Client, args: argparse.Namespace) -> int:
    filters = argtypes.parse_filters(args.filter)
    nodes = api.get("/nodes", filters=filters or None)  # filtered by the agent only (docker's way)
    swarm = api.get("/info").get("Swarm") or {}
    cluster_tls = (swarm.get("Cluster") or {}).get("TLSInfo")
    print(
        format_nodes(nodes, swarm.get("NodeID", ""), cluster_tls, args.format, args.quiet),
        end="",
    )
    return 0


def cmd_inspect(api: Client, args: argparse.Namespace) -> int:
    found = _resolve_all(api, args.nodes)
    nodes = [n for n in found if not isinstance(n, CLIError)]
    if args.pretty and args.format:
        raise CLIError("--format is incompatible with human friendly format")
    if args.format:
        print(inspect_format(args.format, nodes), end="")
    elif args.pretty:
        print("".join(pretty_node(n) for n in nodes), end="")
    else:
        print(inspect_json(nodes), end="")
    errors = [e for e in found if isinstance(e, CLIError)]
    if errors:  # like docker: print what was found, then fail for the rest
        raise CLIError("\n".join(e.message for e in errors))
    return 0


def _change_role(api: Client, refs: Sequence[str], role: str, done: Callable[[str], str], same: str) -> int:
    for ref in refs:
        node = _resolve_one(api, ref)
        if node.get("Spec", {}).get("Role") == role:
            print(same.format(node.get("ID")))
            continue
        spec = updated_spec(node.get("Spec", {}), role=role)
        api.post(f"/nodes/{node['ID']}/update", spec, version=node.get("Version", {}).get("Index", 0))
        print(done(ref))
    return 0


def cmd_promote(api: Client, args: argparse.Namespace) -> int:
    return _change_role(
        api,
        args.nodes,
        "manager",
        lambda ref: f"Node {ref} promoted to a manager in the swarm.",
        "Node {} is already a manager.",
    )


def cmd_demote(api: Client, args: argparse.Namespace) -> int:
    return _change_role(
        api, args.nodes, "worker", lambda ref: f"Manager {ref} demoted in the swarm.", "Node {} is already a worker."
    )


def cmd_update(api: Client, args: argparse.Namespace) -> int:
    availability, role = validate_update(args.availability, args.role)
    node = _resolve_one(api, args.node)
    spec = updated_spec(
        node.get("Spec", {}),
        availability=availability,
        role=role,
        label_add=args.label_add or (),
        label_rm=args.label_rm or (),
    )
    api.post(f"/nodes/{node['ID']}/update", spec, version=node.get("Version", {}).get("Index", 0))
    print(args.node)
    return 0


def cmd_rm(api: Client, args: argparse.Namespace) -> int:
    errors: list[str] = []
    for ref, found in zip(args.nodes, _resolve_all(api, args.nodes), strict=True):
        try:
            if isinstance(found, CLIError):
                raise found
            api.delete(f"/nodes/{found['ID']}", force=bool(args.force))
        except CLIError as e:  # docker removes what it can and reports the rest at the end
            errors.append(str(e))
            continue
        print(ref)
    if errors:
        raise CLIError("\n".join(errors))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("node", help="Manage swarm nodes", description="Manage swarm nodes")
    group.set_defaults(func=None, group=group)
    cmds = group.add_subparsers(title="commands", metavar="COMMAND")

    p = cmds.add_parser("ls", aliases=["list"], help="List nodes in the swarm")
    p.add_argument("-f", "--filter", action="append", metavar="KEY=VALUE", help=f"filter: {', '.join(FILTERS)}")
    p.add_argument("--format", help="'table' (default), 'json', or a template like '{{.ID}}\\t{{.Hostname}}'")
    p.add_argument("-q", "--quiet", action="store_true", help="only display IDs")
    p.set_defaults(func=cmd_ls)

    p = cmds.add_parser("inspect", help="Display detailed information on one or more nodes")
    p.add_argument("--pretty", action="store_true", help="print the information in a human friendly format")
    p.add_argument("-f", "--format", help="'json' or a Go template like '{{.Description.Hostname}}'")
    p.add_argument("nodes", nargs="+", metavar="NODE", help="ID, ID prefix, hostname, or 'self'")
    p.set_defaults(func=cmd_inspect)

    p = cmds.add_parser("promote", help="Promote one or more nodes to manager in the swarm")
    p.add_argument("nodes", nargs="+", metavar="NODE")
    p.set_defaults(func=cmd_promote)

    p = cmds.add_parser("demote", help="Demote one or more nodes from manager in the swarm")
    p.add_argument("nodes", nargs="+", metavar="NODE")
    p.set_defaults(func=cmd_demote)

    p = cmds.add_parser("update", help="Update a node")
    p.add_argument("--availability", help="availability of the node (active, pause, drain)")
    p.add_argument("--role", help="role of the node (worker, manager)")
    p.add_argument("--label-add", action="append", metavar="KEY[=VALUE]", help="add or update a node label")
    p.add_argument("--label-rm", action="append", metavar="KEY", help="remove a node label if exists")
    p.add_argument("node", metavar="NODE")
    p.set_defaults(func=cmd_update)

    p = cmds.add_parser("rm", aliases=["remove"], help="Remove one or more nodes from the swarm")
    p.add_argument("-f", "--force", action="store_true", help="force remove a node from the swarm")
    p.add_argument("nodes", nargs="+", metavar="NODE")
    p.set_defaults(func=cmd_rm)
