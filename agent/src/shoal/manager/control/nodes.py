"""Node control calls (GET/POST/DELETE /nodes...) over the replicated store.

Shaped after SwarmKit's controlapi/node.go: the same refusals (last manager, quorum loss,
removing a manager or a node that is not down) with messages that say why.
"""

from __future__ import annotations

import copy
from typing import Any

from shoal.errors import Conflict, InvalidArgument
from shoal.manager.control.filters import Filters, filter_nodes, node_names
from shoal.manager.raftview import RaftView
from shoal.model.ids import now_rfc3339
from shoal.model.resolve import resolve
from shoal.model.validate import validate_node_spec
from shoal.store.changes import Change
from shoal.store.protocol import StoreReader


def resolve_node(nodes: list[dict[str, Any]], ref: str) -> dict[str, Any]:
    """A node by full ID, hostname (or Spec.Name) or unique ID prefix (as `docker node inspect`)."""
    return resolve(nodes, ref, "node", node_names)


def is_manager(node: dict[str, Any]) -> bool:
    return node["Spec"].get("Role") == "manager" or "ManagerStatus" in node


def raft_addr_of(node: dict[str, Any]) -> str | None:
    status = node.get("ManagerStatus") or {}
    return status.get("RaftAddr")


def decorate(node: dict[str, Any], raft: RaftView) -> dict[str, Any]:
    """Live Leader/Reachability (not stored: they change without a write)."""
    node = copy.deepcopy(node)
    status = node.get("ManagerStatus")
    if status is not None:
        addr = status.get("RaftAddr")
        status["Leader"] = bool(addr) and addr == raft.leader
        status["Reachability"] = "reachable" if raft.reachable(addr) else "unreachable"
        status.pop("RaftAddr", None)
    return node


def list_nodes(store: StoreReader, filters: Filters, raft: RaftView) -> list[dict[str, Any]]:
    nodes = filter_nodes(store.list("node"), filters)
    nodes.sort(key=lambda n: n["Description"]["Hostname"])
    return [decorate(n, raft) for n in nodes]


def can_remove_manager(managers: list[dict[str, Any]], removed_id: str, raft: RaftView) -> bool:
    """SwarmKit's CanRemoveMember: the remaining reachable managers must still form a quorum."""
    remaining = [m for m in managers if m["ID"] != removed_id]
    reachable = sum(1 for m in remaining if raft.reachable(raft_addr_of(m)))
    quorum = len(remaining) // 2 + 1
    return reachable >= quorum


def update_node_change(
    current: dict[str, Any], spec: Any, version: int, nodes: list[dict[str, Any]], raft: RaftView
) -> Change:
    if current["Version"]["Index"] != version:
        raise Conflict(
            f"update out of sequence: node {current['ID']} is at version {current['Version']['Index']}, "
            f"the update was for version {version}"
        )
    new_spec = validate_node_spec(spec)
    old_role = current["Spec"].get("Role")
    if old_role == "manager" and new_spec["Role"] == "worker":
        managers = [n for n in nodes if n["Spec"].get("Role") == "manager"]
        if len(managers) <= 1:
            raise InvalidArgument("attempting to demote the last manager of the swarm")
        if not can_remove_manager(managers, current["ID"], raft):
            raise InvalidArgument(
                f"can't demote node {current['Description']['Hostname']}: the remaining reachable managers "
                "would not form a quorum (this would result in a loss of quorum)"
            )
    node = copy.deepcopy(current)
    node["Spec"] = new_spec
    node["UpdatedAt"] = now_rfc3339()
    return Change(op="update", kind="node", obj=node, obj_id=node["ID"], expected_version=version)


def remove_node_change(node: dict[str, Any], force: bool) -> Change:
    name = node["Description"]["Hostname"] or node["ID"]
    if is_manager(node):
        raise InvalidArgument(
            f"node {name} is a cluster manager and is a member of the raft cluster. "
            "It must be demoted to worker before removal"
        )
    if node["Status"]["State"] == "ready" and not force:
        raise InvalidArgument(f"node {name} is not down and can't be removed (use force to remove it anyway)")
    # at the version checked: a node that came back (or was promoted) meanwhile fails the batch, and
    # the caller re-plans from what is there now (`commit_retrying`) instead of removing it blindly
    return Change(op="delete", kind="node", obj=None, obj_id=node["ID"], expected_version=node["Version"]["Index"])


# ---- the entry points the API calls: resolve the reference, check, return the changes to commit


def update(store: StoreReader, ref: str, version: int, spec: Any, raft: RaftView) -> list[Change]:
    """`POST /nodes/{ref}/update?version=`: the new spec, at the version the caller read."""
    nodes = store.list("node")
    return [update_node_change(resolve_node(nodes, ref), spec, version, nodes, raft)]


def remove(store: StoreReader, ref: str, force: bool) -> list[Change]:
    """`DELETE /nodes/{ref}`: commit with `commit_retrying`, which re-plans on a VersionConflict."""
    return [remove_node_change(resolve_node(store.list("node"), ref), force)]
