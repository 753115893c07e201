#!/usr/bin/python
# Copyright: shoal developers
# Apache License 2.0 (see galaxy.yml)
from __future__ import annotations

DOCUMENTATION = r"""
module: swarm_node
short_description: Join or leave a shoal swarm; promote, demote, drain, pause and label nodes
version_added: 0.1.0
description:
  - Manages one node of a shoal swarm, shaped after C(docker swarm join|leave)
    and C(docker node update|promote|demote|rm).
  - Without O(hostname), acts on the node the task runs on. With O(state=present) it joins the swarm of
    O(join_token) through O(remote_addrs) when the node is in no swarm, and checks that a node already in a swarm
    is in B(that) swarm (the CA digest in the token must be the node's CA), failing clearly otherwise.
    With O(state=absent) the node leaves its swarm.
  - With O(hostname) (a node name, ID or unique ID prefix), acts on another node of the swarm; the task must run on
    a manager (use C(delegate_to)). O(state=absent) then removes that node from the node list (C(docker node rm)).
  - O(role), O(availability) and O(labels) change the node's spec, which only managers can do; for the node a
    worker runs on, run the task on a manager with O(hostname).
  - With O(wait), waits until the node is ready, a role change is complete (the node became a reachable Raft member,
    or stopped being one), and a drained node runs no task of a replicated service any more.
author:
  - shoal developers (@shoal-swarm)
extends_documentation_fragment:
  - shoal.swarm.shoal
  - shoal.swarm.shoal.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  state:
    description:
      - V(present) makes sure the node is in the swarm with the given spec; V(absent) makes it leave (or, with
        O(hostname), removes it from the swarm's node list).
    type: str
    choices: [present, absent]
    default: present
  hostname:
    description:
      - The node to act on, by hostname, ID or unique ID prefix. Default is the node the task runs on.
      - For another node, the task must run on a manager.
    type: str
  join_token:
    description:
      - Token to join with (from M(shoal.swarm.swarm_init)'s RV(shoal.swarm.swarm_init#module:join_tokens)); the
        manager token joins as a manager, the worker token as a worker.
      - On a node already in a swarm, the token's CA digest must match that swarm's CA, else the task fails.
    type: str
  remote_addrs:
    description:
      - Cluster API addresses (C(host:port), the port defaults to 2377) of managers to join through.
      - Given together with O(join_token).
    type: list
    elements: str
  advertise_addr:
    description:
      - Address (IP or interface name) this node advertises when it joins. Default is the agent's own setting.
      - Needs O(join_token) (it applies to a join only).
    type: str
  listen_addr:
    description:
      - Cluster API listen address (C(host:port)) this node uses when it joins as a manager.
      - Needs O(join_token) (it applies to a join only).
    type: str
  role:
    description:
      - Promote the node to V(manager) or demote it to V(worker). A demotion that would lose the managers' quorum is
        refused by the swarm.
    type: str
    choices: [manager, worker]
  availability:
    description:
      - V(active) accepts tasks, V(pause) keeps its tasks but takes no new ones, V(drain) moves its tasks elsewhere.
    type: str
    choices: [active, pause, drain]
  labels:
    description:
      - Node labels (strings; other values are turned into strings).
    type: dict
  labels_state:
    description:
      - V(merge) adds O(labels) to the node's labels; V(replace) makes them exactly O(labels)
        (V(replace) without O(labels) removes all labels).
    type: str
    choices: [merge, replace]
    default: merge
  labels_to_remove:
    description:
      - Label keys to remove from the node.
    type: list
    elements: str
  wait:
    description:
      - Wait until the node is ready and the requested role and availability have taken effect (see description).
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait with O(wait).
    type: int
    default: 120
  force:
    description:
      - With O(state=absent), leave even when the node is a manager; with O(hostname), remove a node that is not down.
    type: bool
    default: false
seealso:
  - module: shoal.swarm.swarm_init
  - module: shoal.swarm.swarm_info
"""

EXAMPLES = r"""
- name: Join the swarm as a worker (fails if the host is in another swarm)
  shoal.swarm.swarm_node:
    join_token: "{{ hostvars['swarm00'].swarm.join_tokens.worker }}"
    remote_addrs: [10.213.0.10:2377]
    wait: true

- name: Drain swarm01 and wait until its replicated tasks have moved
  shoal.swarm.swarm_node:
    hostname: swarm01
    availability: drain
    wait: true
  delegate_to: swarm00

- name: Promote swarm01 and wait until it is a reachable manager
  shoal.swarm.swarm_node:
    hostname: swarm01
    role: manager
    wait: true
  delegate_to: swarm00

- name: Label a node, keeping its other labels
  shoal.swarm.swarm_node:
    hostname: swarm02
    labels:
      zone: b
      disk: ssd
  delegate_to: swarm00

- name: Leave the swarm
  shoal.swarm.swarm_node:
    state: absent
"""

RETURN = r"""
node_id:
  description: ID of the node (empty when it is in no swarm, or in check mode before a join).
  returned: always
  type: str
  sample: 9x0yq3ia6wsdt1d4y5uz2vcfd
node:
  description: The node as C(GET /nodes/{id}) shows it (Docker's C(Node) object) after the change.
  returned: when the node is in the swarm
  type: dict
  sample: {"ID": "9x0yq3ia6wsdt1d4y5uz2vcfd", "Spec": {"Role": "worker", "Availability": "active", "Labels": {}}}
actions:
  description: What was done (or would be done in check mode).
  returned: always
  type: list
  elements: str
  sample: [joined the swarm, availability set to drain]
changes:
  description: Names of the node settings that differ (role, availability, labels; state for a join or leave).
  returned: always
  type: list
  elements: str
  sample: [availability]
"""

from typing import Any  # noqa: E402

from ansible_collections.shoal.swarm.plugins.module_utils._shoal_api import (  # noqa: E402
    ShoalAPIError,
    ShoalClient,
    ca_digest,
    label_map,
    node_path,
    parse_join_token,
    wait_until,
)
from ansible_collections.shoal.swarm.plugins.module_utils._shoal_diff import Comparison, compare  # noqa: E402
from ansible_collections.shoal.swarm.plugins.module_utils._shoal_runner import (  # noqa: E402
    ParamError,
    ShoalTask,
    run_task,
)

JOIN_OPTIONS = ("join_token", "remote_addrs", "advertise_addr", "listen_addr")
SPEC_OPTIONS = ("role", "availability", "labels", "labels_to_remove")
DEFAULT_CA_FILE = "/var/lib/shoal/certificates/swarm-root-ca.crt"


def desired_labels(current: dict[str, str], params: dict[str, Any]) -> dict[str, str] | None:
    """The labels the node should end with, or None when the user asked for no label change."""
    if params.get("labels") is None and params.get("labels_to_remove") is None and params["labels_state"] == "merge":
        return None
    wanted = label_map(params.get("labels"))
    labels = wanted if params["labels_state"] == "replace" else {**current, **wanted}
    for key in params.get("labels_to_remove") or []:
        labels.pop(key, None)
    return labels


def node_view(node: dict[str, Any]) -> dict[str, Any]:
    spec = node.get("Spec") or {}
    return {
        "role": spec.get("Role"),
        "availability": spec.get("Availability"),
        "labels": dict(spec.get("Labels") or {}),
    }


def desired_view(node: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    return {
        "role": params.get("role"),
        "availability": params.get("availability"),
        "labels": desired_labels(node_view(node)["labels"], params),
    }


def node_name(node: dict[str, Any]) -> str:
    return (node.get("Description") or {}).get("Hostname") or node.get("ID", "?")


def describe(changes: list[str], after: dict[str, Any]) -> list[str]:
    actions = []
    for name in changes:
        if name == "role":
            actions.append("promoted to manager" if after["role"] == "manager" else "demoted to worker")
        elif name == "labels":
            actions.append("labels updated")
        else:
            actions.append(f"{name} set to {after[name]}")
    return actions


def updated_spec(node: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    spec = dict(node.get("Spec") or {})
    spec.update({"Role": after["role"], "Availability": after["availability"], "Labels": after["labels"]})
    return spec


class NodeTask(ShoalTask):
    rules = {
        "required_together": [("join_token", "remote_addrs")],
        "required_by": {"advertise_addr": "join_token", "listen_addr": "join_token"},
    }
    state_options = {"present": (*SPEC_OPTIONS, *JOIN_OPTIONS)}
    bounds = {"wait_timeout": (1, None)}

    @staticmethod
    def argument_spec() -> dict[str, Any]:
        return {
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "hostname": {"type": "str"},
            "join_token": {"type": "str", "no_log": True},
            "remote_addrs": {"type": "list", "elements": "str"},
            "advertise_addr": {"type": "str"},
            "listen_addr": {"type": "str"},
            "role": {"type": "str", "choices": ["manager", "worker"]},
            "availability": {"type": "str", "choices": ["active", "pause", "drain"]},
            "labels": {"type": "dict"},
            "labels_state": {"type": "str", "choices": ["merge", "replace"], "default": "merge"},
            "labels_to_remove": {"type": "list", "elements": "str"},
            "wait": {"type": "bool", "default": False},
            "wait_timeout": {"type": "int", "default": 120},
            "force": {"type": "bool", "default": False},
        }

    def validate(self) -> None:
        if self.params.get("join_token") is not None:
            try:
                parse_join_token(self.params["join_token"])
            except ValueError as exc:
                raise ParamError(str(exc)) from None
        both = sorted(set(self.params.get("labels") or {}) & set(self.params.get("labels_to_remove") or []))
        if both:
            raise ParamError(f"label {both[0]!r} is both in labels and in labels_to_remove")

    def result(self, node: dict[str, Any] | None = None, **facts: Any) -> dict[str, Any]:  # type: ignore[override]
        return super().result(node_id=(node or {}).get("ID", ""), node=node, **facts)

    # ---- entry
    def run(self) -> dict[str, Any]:
        info = self.api.info()
        swarm = info.get("Swarm") or {}
        state = swarm.get("LocalNodeState", "inactive")
        target = self.params.get("hostname")
        local_id = swarm.get("NodeID") or ""
        local = not target or target in (local_id, info.get("Name"))
        if not local and state == "active":
            node = self.api.node(target)
            local = node is not None and node.get("ID") == local_id
        if not local:
            if any(self.params.get(n) is not None for n in JOIN_OPTIONS):
                self.fail(
                    f"{', '.join(n for n in JOIN_OPTIONS if self.params.get(n) is not None)} apply to the node "
                    f"the task runs on, not to {target}: run the task on that host (leave out hostname)"
                )
            return self.remote(info, target)
        if self.params["state"] == "absent":
            return self.leave(state)
        return self.local(info)

    # ---- the node the task runs on
    def local(self, info: dict[str, Any]) -> dict[str, Any]:
        swarm = info.get("Swarm") or {}
        state = swarm.get("LocalNodeState", "inactive")
        if state == "inactive":
            if not self.params.get("join_token"):
                self.fail(
                    "this node is not part of a swarm: give join_token and remote_addrs to join one "
                    "(shoal.swarm.swarm_init creates a new swarm)"
                )
            wanted = {k: v for k, v in desired_view({}, self.params).items() if v is not None}
            self.record_state("joined the swarm", {"state": "absent"}, {"state": "present", **wanted})
            if self.check_mode:
                return self.result(None)
            self.join()
            info = self.api.info()
            swarm = info.get("Swarm") or {}
        elif state != "active":
            self.fail(f"this node's swarm membership is in state {state!r}: {swarm.get('Error') or 'no details'}")
        elif self.params.get("join_token"):
            self.verify_cluster(info)
        node_id = swarm.get("NodeID") or ""
        done, node = wait_until(lambda: self.api.node(node_id), timeout=15, interval=0.2)
        if not done or node is None:
            self.fail(f"this node ({node_id}) is in a swarm but the managers do not list it")
        node = self.update_spec(node, bool(swarm.get("ControlAvailable")))
        return self.result(self.wait_for(node))

    def join(self) -> None:
        body: dict[str, Any] = {"JoinToken": self.params["join_token"], "RemoteAddrs": self.params["remote_addrs"]}
        if self.params.get("advertise_addr"):
            body["AdvertiseAddr"] = self.params["advertise_addr"]
        if self.params.get("listen_addr"):
            body["ListenAddr"] = self.params["listen_addr"]
        self.api.post("/swarm/join", body)

    def local_ca_pem(self, info: dict[str, Any]) -> str | None:
        swarm = info.get("Swarm") or {}
        pem = ((swarm.get("Cluster") or {}).get("TLSInfo") or {}).get("TrustRoot")
        if pem:
            return pem
        try:
            node = self.api.node(swarm.get("NodeID") or "")
        except ShoalAPIError:
            node = None
        pem = (((node or {}).get("Description") or {}).get("TLSInfo") or {}).get("TrustRoot")
        if pem:
            return pem
        try:
            with open(DEFAULT_CA_FILE) as fh:
                return fh.read()
        except OSError:
            return None

    def verify_cluster(self, info: dict[str, Any]) -> None:
        """The node is in a swarm: it must be the swarm whose CA the join token pins."""
        wanted = parse_join_token(self.params["join_token"])[0]
        swarm = info.get("Swarm") or {}
        pem = self.local_ca_pem(info)
        if not pem:
            self.fail("this node is in a swarm but its CA certificate cannot be read: cannot check the join token")
        try:
            have = ca_digest(pem)
        except ValueError as exc:
            self.fail(f"cannot check the join token against this node's CA: {exc}")
        if have != wanted:
            cluster = (swarm.get("Cluster") or {}).get("ID") or "(ID known to its managers)"
            self.fail(
                f"this node is already part of another swarm: it is in cluster {cluster} whose CA digest is "
                f"{have[:12]}..., and the join token belongs to a swarm whose CA digest is {wanted[:12]}... "
                "Leave the current swarm first (state=absent), or give the token of the swarm it is in.",
                cluster_id=(swarm.get("Cluster") or {}).get("ID", ""),
            )

    def leave(self, state: str) -> dict[str, Any]:
        if state == "inactive":
            return self.result(None)
        self.record_state("left the swarm", {"state": "present"}, {"state": "absent"})
        if not self.check_mode:
            self.api.post("/swarm/leave", force=True if self.params["force"] else None)
        return self.result(None)

    # ---- another node, from a manager
    def remote(self, info: dict[str, Any], target: str) -> dict[str, Any]:
        swarm = info.get("Swarm") or {}
        if swarm.get("LocalNodeState") != "active":
            self.fail(f"this node is not part of a swarm, so it cannot manage node {target}: run the task on a manager")
        node = self.api.node(target)
        if self.params["state"] == "absent":
            if node is None:
                return self.result(None)
            if not swarm.get("ControlAvailable"):
                self.fail(f"removing node {target} needs a manager: run the task on a manager (delegate_to)")
            self.record_state(
                f"removed node {node_name(node)} from the swarm", {"state": "present"}, {"state": "absent"}
            )
            if not self.check_mode:
                self.api.delete(node_path(node["ID"]), force=True if self.params["force"] else None)
            return self.result(None)
        if node is None:
            self.fail(f"node {target} is not part of the swarm (join it by running swarm_node on that host)")
        node = self.update_spec(node, bool(swarm.get("ControlAvailable")))
        return self.result(self.wait_for(node))

    # ---- spec
    def update_spec(self, node: dict[str, Any], can_write: bool) -> dict[str, Any]:
        def compare_node(fresh: dict[str, Any]) -> Comparison:
            comparison = compare(node_view(fresh), desired_view(fresh, self.params))
            if comparison.changed and not can_write:
                self.fail(
                    f"node {node_name(fresh)} needs a change of {', '.join(comparison.changes)}, which only a manager "
                    f"can make: run this task on a manager (delegate_to) with hostname: {node_name(fresh)}",
                    changes=comparison.changes,
                )
            return comparison

        def write(fresh: dict[str, Any], comparison: Comparison) -> None:
            body = updated_spec(fresh, comparison.after)
            self.api.post(node_path(fresh["ID"], "/update"), body, version=fresh["Version"]["Index"])

        comparison, fresh = self.converge(node, lambda: self.api.node(node["ID"]) or node, compare_node, write)
        self.record(comparison, describe(comparison.changes, comparison.after))
        if comparison.changed and not self.check_mode:
            return self.api.node(fresh["ID"]) or fresh
        return fresh

    # ---- waiting
    def wait_for(self, node: dict[str, Any]) -> dict[str, Any]:
        if not self.params["wait"] or self.check_mode:
            return node
        timeout = float(self.params["wait_timeout"])
        node_id = node["ID"]
        spec = node.get("Spec") or {}
        role = self.params.get("role") or spec.get("Role")
        conditions = [("ready", lambda n: (n.get("Status") or {}).get("State") == "ready")]
        if role == "manager":
            conditions.append(
                (
                    "a reachable manager",
                    lambda n: (n.get("ManagerStatus") or {}).get("Reachability") == "reachable",
                )
            )
        elif role == "worker":
            conditions.append(("no longer a Raft member", lambda n: "ManagerStatus" not in n))

        def settled() -> dict[str, Any] | None:
            current = self.api.node(node_id)
            return current if current and all(check(current) for unused, check in conditions) else None

        # a quarter of a second: each look is one local API call, and site.yml waits here for every node
        done, last = wait_until(settled, timeout=timeout, interval=0.25)
        if not done:
            self.fail(
                f"timed out after {timeout:g} s waiting for node {node_name(node)} to be "
                + " and ".join(what for what, unused in conditions),
                node=self.api.node(node_id),
            )
        node = last or node
        if (self.params.get("availability") or spec.get("Availability")) == "drain":
            done = wait_until(lambda: not running_replicated_tasks(self.api, node_id), timeout=timeout)[0]
            if not done:
                left = running_replicated_tasks(self.api, node_id)
                names = ", ".join(sorted(t.get("Name") or t.get("ID", "?") for t in left)[:10])
                self.fail(
                    f"timed out after {timeout:g} s waiting for node {node_name(node)} to drain: "
                    f"{len(left)} task(s) of replicated services still running ({names})",
                    node=node,
                )
        return node


def running_replicated_tasks(api: ShoalClient, node_id: str) -> list[dict[str, Any]]:
    """Tasks RUNNING on the node that belong to replicated services (a missing /tasks endpoint: none)."""
    tasks = [
        t
        for t in api.tasks({"node": [node_id]})
        if t.get("NodeID", node_id) == node_id and (t.get("Status") or {}).get("State") == "running"
    ]
    if not tasks:
        return []
    services = {s.get("ID"): s for s in api.services()}

    def replicated(task: dict[str, Any]) -> bool:
        service = services.get(task.get("ServiceID"))
        if service is None:
            return True  # unknown service: count it, rather than report a drain that is not done
        mode = (service.get("Spec") or {}).get("Mode") or {}
        return not mode or "Replicated" in mode or "ReplicatedJob" in mode

    return [t for t in tasks if replicated(t)]


def main() -> None:
    run_task(NodeTask)


if __name__ == "__main__":
    main()
