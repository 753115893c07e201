#!/usr/bin/python
# Copyright: shoal developers
# Apache License 2.0 (see galaxy.yml)
from __future__ import annotations

DOCUMENTATION = r"""
module: swarm_init
short_description: Create a shoal swarm on this node, tune it, rotate its join tokens, or leave it
version_added: 0.1.0
description:
  - With O(state=present), makes the managed host the first manager of a new swarm (C(shoal swarm init)),
    or, when it already manages one, brings the swarm's settings to the given values and rotates join tokens
    on request.
  - Returns the cluster ID and both join tokens, so that later tasks can join other hosts with
    M(shoal.swarm.swarm_node).
  - With O(state=absent), the node leaves the swarm it is in (C(shoal swarm leave)).
  - Settings that only exist at creation (O(advertise_addr), O(listen_addr), O(default_addr_pool),
    O(subnet_size), O(data_path_port)) are not changed on an existing swarm; a warning says when they differ.
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
    support: partial
    details: Rotating a join token (O(rotate_worker_token), O(rotate_manager_token)) or the unlock key
      (O(rotate_unlock_key)) changes it on every run.
options:
  state:
    description:
      - V(present) creates the swarm (or updates its settings); V(absent) leaves the swarm.
    type: str
    choices: [present, absent]
    default: present
  advertise_addr:
    description:
      - Address (IP or network interface name such as C(eth0)) other nodes use to reach this manager.
      - Default is the agent's own setting (C(advertise_addr) in C(/etc/shoal/shoald.yml)) or its only
        non-loopback address.
      - Used when the swarm is created only.
    type: str
  listen_addr:
    description:
      - Address and port of the cluster API, such as C(0.0.0.0:2377). Used when the swarm is created only.
    type: str
  default_addr_pool:
    description:
      - Address pools (IPv4 CIDR, not overlapping each other) that the subnets of overlay networks created
        without one are taken from, in order. Default C(10.0.0.0/8). Used when the swarm is created only.
      - The ingress network keeps its own subnet, C(10.255.0.0/16); a pool that covers it skips it.
    type: list
    elements: str
  subnet_size:
    description:
      - Prefix length of the subnets taken from O(default_addr_pool), at most 29. Default 24.
        Used when the swarm is created only.
    type: int
  data_path_port:
    description:
      - UDP port of the VXLAN traffic of every overlay network (1024 to 49151). Default 4789.
        Used when the swarm is created only.
    type: int
  labels:
    description:
      - User labels of the swarm. Replaces the labels in place when given; V({}) removes them all.
    type: dict
  task_history_limit:
    description:
      - How many old tasks of each service slot the swarm keeps.
    type: int
  dispatcher_heartbeat_period:
    description:
      - How often nodes report to the managers, as a duration such as V(1s) or V(500ms) (a bare number is seconds),
        from 50ms to 24h. Every node uses the new period from its next heartbeat on, and a node is Down after
        three periods without one.
      - When the swarm is created without it, the period is the first manager's C(heartbeat_period) agent setting.
    type: str
  node_cert_expiry:
    description:
      - Validity of node certificates, as a duration such as V(2160h) (at least V(1h)). Certificates
        issued from then on get it; nodes renew theirs at a random point of the second half of its life.
    type: str
  signing_ca_cert:
    description:
      - The root CA certificate (PEM contents, not a path) that signs node certificates.
      - On an existing swarm, a certificate other than the one in effect starts a root CA rotation to it
        (C(shoal swarm ca --rotate --ca-cert)); requires O(signing_ca_key).
      - Compared by its DER contents, so a re-wrapped PEM of the same certificate changes nothing.
    type: str
  signing_ca_key:
    description:
      - The private key (PEM contents) of O(signing_ca_cert). Never shown in diffs or results; the swarm
        keeps it in its replicated store, not in the spec that reads return.
    type: str
  ca_force_rotate:
    description:
      - A counter; a value other than the swarm's C(CAConfig.ForceRotate) generates a new root CA and
        rotates every node to it (C(shoal swarm ca --rotate)); the same value again changes nothing.
    type: int
  snapshot_interval:
    description:
      - Number of Raft log entries between snapshots.
    type: int
  keep_old_snapshots:
    description:
      - Number of old Raft snapshots to keep.
    type: int
  log_entries_for_slow_followers:
    description:
      - Number of Raft log entries kept to let slow followers catch up after a snapshot.
    type: int
  election_tick:
    description:
      - Raft election timeout, in ticks; must be greater than O(heartbeat_tick).
    type: int
  heartbeat_tick:
    description:
      - Raft heartbeat interval, in ticks.
    type: int
  autolock_managers:
    description:
      - Lock the managers' keys at rest with an unlock key, as C(shoal swarm init --autolock) and
        C(shoal swarm update --autolock) do. A restarted manager stays locked until
        C(shoal swarm unlock) (or C(playbooks/unlock.yml)) gives it the key.
      - The key is returned as RV(unlock_key); keep it in a vault, since without it a restarted manager cannot start.
      - V(false) writes the managers' keys in clear (root-only files) again.
    type: bool
  rotate_unlock_key:
    description:
      - Replace the unlock key by a new one (C(shoal swarm unlock-key --rotate)); needs autolock on.
        Every running manager re-wraps its keys; the old key stops working.
    type: bool
    default: false
  rotate_worker_token:
    description:
      - Replace the worker join token by a new one. The old one stops working at once.
    type: bool
    default: false
  rotate_manager_token:
    description:
      - Replace the manager join token by a new one. The old one stops working at once.
    type: bool
    default: false
  force:
    description:
      - With O(state=absent), leave even when the node is a manager (the remaining managers lose it
        from their quorum; demote it first to avoid that).
    type: bool
    default: false
seealso:
  - module: shoal.swarm.swarm_node
  - module: shoal.swarm.swarm_info
"""

EXAMPLES = r"""
- name: Create the swarm on the first manager
  shoal.swarm.swarm_init:
    advertise_addr: eth0
  register: swarm

- name: Join a worker with the token read from the first manager
  shoal.swarm.swarm_node:
    join_token: "{{ hostvars[groups['managers'][0]].swarm.join_tokens.worker }}"
    remote_addrs: "{{ hostvars[groups['managers'][0]].swarm.manager_addrs }}"
  when: inventory_hostname in groups['workers']

- name: Keep less task history and beat every two seconds
  shoal.swarm.swarm_init:
    task_history_limit: 2
    dispatcher_heartbeat_period: 2s

- name: Create the swarm with its own address pool and VXLAN port
  shoal.swarm.swarm_init:
    advertise_addr: eth0
    default_addr_pool: [10.20.0.0/16]
    subnet_size: 26
    data_path_port: 7789

- name: Rotate the root CA to a generated one (bump the counter to rotate again)
  shoal.swarm.swarm_init:
    ca_force_rotate: 1

- name: Rotate the root CA to one of our own
  shoal.swarm.swarm_init:
    signing_ca_cert: "{{ lookup('file', 'swarm-ca.crt') }}"
    signing_ca_key: "{{ lookup('file', 'swarm-ca.key') }}"

- name: Lock the managers with an unlock key, and keep the key (it is a secret)
  shoal.swarm.swarm_init:
    autolock_managers: true
  register: locked
  no_log: true

- name: Rotate the worker join token
  shoal.swarm.swarm_init:
    rotate_worker_token: true

- name: Leave the swarm (a manager needs force)
  shoal.swarm.swarm_init:
    state: absent
    force: true
"""

RETURN = r"""
cluster_id:
  description: ID of the swarm (empty after leaving).
  returned: always
  type: str
  sample: 4d5ik0wbq5jxdc2ldrrqg5nq3
node_id:
  description: ID of this node in the swarm (empty after leaving, or in check mode before the swarm exists).
  returned: always
  type: str
  sample: 9x0yq3ia6wsdt1d4y5uz2vcfd
join_tokens:
  description:
    - The join tokens of the swarm (after rotation, the new ones). Empty strings when there is no swarm.
    - They are secrets; do not print them in logs.
  returned: always
  type: dict
  contains:
    worker:
      description: Token that joins a node as a worker.
      type: str
      sample: SWMTKN-1-0cqjeg3h1qmwwp6e3xq7oik9lt5hx6bph6s1lm6h3iyzwr0r6d-3kvpqcg6zch3t0l2xgp7g59pj
    manager:
      description: Token that joins a node as a manager.
      type: str
      sample: SWMTKN-1-0cqjeg3h1qmwwp6e3xq7oik9lt5hx6bph6s1lm6h3iyzwr0r6d-0y8ez0y4bxv8ni1pbybl2bn7n
manager_addrs:
  description:
    - Cluster API addresses (C(ip:port)) of the swarm's managers,
      for O(shoal.swarm.swarm_node#module:remote_addrs).
  returned: always
  type: list
  elements: str
  sample: [10.213.0.10:2377]
unlock_key:
  description:
    - The swarm's unlock key (C(SWMKEY-1-...)) when O(autolock_managers) is on, as community.docker's
      docker_swarm returns C(UnlockKey); empty otherwise, and in check mode before it exists.
    - It is a secret that unlocks every manager's keys; register it with C(no_log) and keep it in a vault.
  returned: always
  type: str
  sample: SWMKEY-1-7c37Cc8654o6p38HnroywCi19pllOnGtbdZEgtKxZu8
nodes:
  description:
    - The swarm's nodes as this manager sees them, by node ID (empty when there is no swarm, and in check mode
      before it exists).
    - C(reachability) is a manager's Raft reachability, empty for a worker.
  returned: always
  type: dict
  sample:
    9x0yq3ia6wsdt1d4y5uz2vcfd:
      hostname: swarm00
      role: manager
      availability: active
      labels: {}
      state: ready
      reachability: reachable
swarm_facts:
  description: The swarm as C(GET /swarm) shows it (Docker's C(Swarm) object), without the join tokens.
  returned: when the node manages a swarm
  type: dict
actions:
  description: What was done (or would be done in check mode).
  returned: always
  type: list
  elements: str
  sample: [swarm initialized]
changes:
  description: Names of the settings that differ from the swarm in place.
  returned: always
  type: list
  elements: str
  sample: [task_history_limit]
"""

import hashlib  # noqa: E402
from typing import Any  # noqa: E402

from ansible_collections.shoal.swarm.plugins.module_utils._shoal_api import (  # noqa: E402
    format_duration,
    label_map,
    parse_duration,
)
from ansible_collections.shoal.swarm.plugins.module_utils._shoal_diff import Comparison, compare  # noqa: E402
from ansible_collections.shoal.swarm.plugins.module_utils._shoal_runner import (  # noqa: E402
    ParamError,
    ShoalTask,
    run_task,
)

# option name -> (section of the SwarmSpec, field); None section = top level
SPEC_FIELDS: dict[str, tuple[str | None, str]] = {
    "labels": (None, "Labels"),
    "task_history_limit": ("Orchestration", "TaskHistoryRetentionLimit"),
    "dispatcher_heartbeat_period": ("Dispatcher", "HeartbeatPeriod"),
    "node_cert_expiry": ("CAConfig", "NodeCertExpiry"),
    "snapshot_interval": ("Raft", "SnapshotInterval"),
    "keep_old_snapshots": ("Raft", "KeepOldSnapshots"),
    "log_entries_for_slow_followers": ("Raft", "LogEntriesForSlowFollowers"),
    "election_tick": ("Raft", "ElectionTick"),
    "heartbeat_tick": ("Raft", "HeartbeatTick"),
    "ca_force_rotate": ("CAConfig", "ForceRotate"),
    "signing_ca_cert": ("CAConfig", "SigningCACert"),
    "autolock_managers": ("EncryptionConfig", "AutoLockManagers"),
}
DURATIONS = ("dispatcher_heartbeat_period", "node_cert_expiry")
# option -> field of POST /swarm/init
CREATION_ONLY = {
    "advertise_addr": "AdvertiseAddr",
    "listen_addr": "ListenAddr",
    "default_addr_pool": "DefaultAddrPool",
    "subnet_size": "SubnetSize",
    "data_path_port": "DataPathPort",
}
DATA_PATH_PORTS = (1024, 49151)  # Docker's range; 0 means the default, 4789


def cert_view(pem: str | None) -> str | None:
    """A PEM certificate as diffs show it: a digest of its DER contents (base64 between the markers)."""
    if not pem:
        return None
    body = "".join(line.strip() for line in pem.strip().splitlines() if not line.startswith("-----"))
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()[:16]


def desired_view(params: dict[str, Any]) -> dict[str, Any]:
    """The settings the user asked for, in the module's terms (None = leave as is)."""
    view: dict[str, Any] = {}
    for name in SPEC_FIELDS:
        value = params.get(name)
        if value is None:
            view[name] = None
        elif name == "signing_ca_cert":
            view[name] = cert_view(value)
        elif name in DURATIONS:
            view[name] = format_duration(parse_duration(value, name))
        elif name == "labels":
            view[name] = label_map(value)
        else:
            view[name] = value
    return view


def current_view(spec: dict[str, Any]) -> dict[str, Any]:
    view: dict[str, Any] = {}
    for name, (section, field) in SPEC_FIELDS.items():
        value = (spec.get(section) or {}).get(field) if section else spec.get(field)
        if name in DURATIONS:
            value = format_duration(value)
        elif name == "labels":
            value = dict(value or {})
        elif name == "ca_force_rotate":
            value = int(value or 0)
        elif name == "signing_ca_cert":
            value = cert_view(value)
        view[name] = value
    return view


def spec_patch(view: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
    """A (partial) SwarmSpec with the non-None settings of ``view``; a signing CA comes from ``params``
    (the view holds its digest only) with its key."""
    spec: dict[str, Any] = {}
    for name, value in view.items():
        if value is None:
            continue
        section, field = SPEC_FIELDS[name]
        if name == "signing_ca_cert":
            ca = spec.setdefault("CAConfig", {})
            ca["SigningCACert"], ca["SigningCAKey"] = (
                (params or {})["signing_ca_cert"],
                (params or {})["signing_ca_key"],
            )
            continue
        if name in DURATIONS:
            value = parse_duration(value, name)
        if section is None:
            spec[field] = value
        else:
            spec.setdefault(section, {})[field] = value
    return spec


def apply_patch(spec: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in spec.items()}
    for key, value in patch.items():
        if isinstance(value, dict) and key != "Labels":
            out[key] = {**(out.get(key) or {}), **value}
        else:
            out[key] = value
    return out


def creation_warnings(params: dict[str, Any], info: dict[str, Any], swarm: dict[str, Any]) -> list[str]:
    warnings = []
    if params.get("default_addr_pool") is not None and list(params["default_addr_pool"]) != list(
        swarm.get("DefaultAddrPool") or []
    ):
        warnings.append(
            f"default_addr_pool is set when the swarm is created only; the swarm has {swarm.get('DefaultAddrPool')}"
        )
    if params.get("subnet_size") is not None and params["subnet_size"] != swarm.get("SubnetSize"):
        warnings.append(f"subnet_size is set when the swarm is created only; the swarm has {swarm.get('SubnetSize')}")
    port = params.get("data_path_port")
    if port is not None and (port or 4789) != swarm.get("DataPathPort"):
        warnings.append(
            f"data_path_port is set when the swarm is created only; the swarm has {swarm.get('DataPathPort')}"
        )
    addr = params.get("advertise_addr")
    node_addr = (info.get("Swarm") or {}).get("NodeAddr")
    if addr and addr[:1].isdigit() and node_addr and addr.split(":")[0] != node_addr:
        warnings.append(f"advertise_addr is set when the swarm is created only; this node advertises {node_addr}")
    return warnings


class SwarmTask(ShoalTask):
    state_options = {
        "present": (
            *SPEC_FIELDS,
            *CREATION_ONLY,
            "signing_ca_key",
            "rotate_worker_token",
            "rotate_manager_token",
            "rotate_unlock_key",
        ),
        "absent": ("force",),
    }
    bounds = {
        "task_history_limit": (0, None),
        "snapshot_interval": (0, None),
        "keep_old_snapshots": (0, None),
        "log_entries_for_slow_followers": (0, None),
        "election_tick": (1, None),
        "heartbeat_tick": (1, None),
        "subnet_size": (1, 29),
        "ca_force_rotate": (0, None),
    }

    @staticmethod
    def argument_spec() -> dict[str, Any]:
        return {
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "advertise_addr": {"type": "str"},
            "listen_addr": {"type": "str"},
            "default_addr_pool": {"type": "list", "elements": "str"},
            "subnet_size": {"type": "int"},
            "data_path_port": {"type": "int"},
            "labels": {"type": "dict"},
            "task_history_limit": {"type": "int"},
            "dispatcher_heartbeat_period": {"type": "str"},
            "node_cert_expiry": {"type": "str"},
            "signing_ca_cert": {"type": "str"},
            "signing_ca_key": {"type": "str", "no_log": True},
            "ca_force_rotate": {"type": "int"},
            "snapshot_interval": {"type": "int"},
            "keep_old_snapshots": {"type": "int"},
            "log_entries_for_slow_followers": {"type": "int"},
            "election_tick": {"type": "int"},
            "heartbeat_tick": {"type": "int"},
            "autolock_managers": {"type": "bool"},
            "rotate_unlock_key": {"type": "bool", "default": False},
            "rotate_worker_token": {"type": "bool", "default": False},
            "rotate_manager_token": {"type": "bool", "default": False},
            "force": {"type": "bool", "default": False},
        }

    def validate(self) -> None:
        if (self.params.get("signing_ca_cert") is None) != (self.params.get("signing_ca_key") is None):
            raise ParamError("signing_ca_cert and signing_ca_key go together (shoal has no external CA)")
        for name in DURATIONS:
            if self.params.get(name) is not None:
                try:
                    positive = parse_duration(self.params[name], name) > 0
                except ValueError as exc:
                    raise ParamError(str(exc)) from None
                if not positive:
                    raise ParamError(f"{name} must be positive")
        port = self.params.get("data_path_port")
        if port not in (None, 0) and not DATA_PATH_PORTS[0] <= port <= DATA_PATH_PORTS[1]:
            low, high = DATA_PATH_PORTS
            raise ParamError(f"data_path_port must be between {low} and {high} (or 0 for 4789), not {port}")

    def result(self, **facts: Any) -> dict[str, Any]:
        empty = {
            "cluster_id": "",
            "node_id": "",
            "join_tokens": {"worker": "", "manager": ""},
            "manager_addrs": [],
            "unlock_key": "",
            "nodes": {},
        }
        return super().result(**{**empty, **facts})

    def swarm_facts(self, info: dict[str, Any]) -> dict[str, Any]:
        swarm = self.api.swarm()
        tokens = swarm.get("JoinTokens") or {}
        remote = (info.get("Swarm") or {}).get("RemoteManagers") or []
        return {
            "cluster_id": swarm.get("ID", ""),
            "node_id": (info.get("Swarm") or {}).get("NodeID", ""),
            "join_tokens": {"worker": tokens.get("Worker", ""), "manager": tokens.get("Manager", "")},
            "manager_addrs": sorted(m["Addr"] for m in remote if m.get("Addr")),
            "swarm_facts": {k: v for k, v in swarm.items() if k != "JoinTokens"},
            "unlock_key": self.unlock_key(swarm),
            "nodes": {node["ID"]: node_summary(node) for node in self.api.nodes() if node.get("ID")},
        }

    def unlock_key(self, swarm: dict[str, Any]) -> str:
        if not (swarm.get("Spec") or {}).get("EncryptionConfig", {}).get("AutoLockManagers"):
            return ""
        return str((self.api.get("/swarm/unlockkey") or {}).get("UnlockKey") or "")

    def run(self) -> dict[str, Any]:
        info = self.api.info()
        swarm = info.get("Swarm") or {}
        state = swarm.get("LocalNodeState", "inactive")
        if self.params["state"] == "absent":
            return self.leave(state)
        if state == "inactive":
            return self.init()
        if state == "locked":
            self.fail(
                "this manager is locked (autolock): unlock it first with `shoal swarm unlock` or playbooks/unlock.yml"
            )
        if state != "active":
            self.fail(f"this node's swarm membership is in state {state!r}: {swarm.get('Error') or 'no details'}")
        if not swarm.get("ControlAvailable"):
            cluster = (swarm.get("Cluster") or {}).get("ID") or "a swarm"
            self.fail(
                f"this node is a worker of {cluster}; swarm_init creates a swarm or manages it from a manager "
                "(run it on a manager, or leave the swarm first with state=absent)",
                node_id=swarm.get("NodeID", ""),
            )
        return self.update(info)

    def init(self) -> dict[str, Any]:
        desired = desired_view(self.params)
        creation = {n: self.params[n] for n in CREATION_ONLY if self.params.get(n) is not None}
        self.record_state(
            "swarm initialized",
            {"state": "absent"},
            {"state": "present", **{k: v for k, v in desired.items() if v is not None}, **creation},
        )
        if self.check_mode:
            return self.result()
        body: dict[str, Any] = {"Spec": spec_patch(desired, self.params)}
        body.update({field: self.params[n] for n, field in CREATION_ONLY.items() if self.params.get(n) is not None})
        self.api.post("/swarm/init", body)
        return self.result(**self.swarm_facts(self.api.info()))

    def update(self, info: dict[str, Any]) -> dict[str, Any]:
        desired = desired_view(self.params)
        rotate = {"Worker": self.params["rotate_worker_token"], "Manager": self.params["rotate_manager_token"]}
        rotate_unlock = bool(self.params["rotate_unlock_key"])

        def compare_spec(swarm: dict[str, Any]) -> Comparison:
            comparison = compare(current_view(swarm.get("Spec") or {}), desired)
            for role, wanted in rotate.items():
                if wanted:
                    comparison.tracker.add(f"{role.lower()}_join_token", parameter="(new)", active="(current)")
            if rotate_unlock:
                autolock = desired["autolock_managers"]
                if autolock is None:
                    autolock = current_view(swarm.get("Spec") or {})["autolock_managers"]
                if not autolock:
                    self.fail("cannot rotate because autolock is not turned on")
                comparison.tracker.add("unlock_key", parameter="(new)", active="(current)")
            return comparison

        def write(swarm: dict[str, Any], comparison: Comparison) -> None:
            changed = {k: desired[k] for k in comparison.changes if k in SPEC_FIELDS}
            self.api.post(
                "/swarm/update",
                apply_patch(swarm.get("Spec") or {}, spec_patch(changed, self.params)),
                version=swarm["Version"]["Index"],
                rotateWorkerToken=rotate["Worker"] or None,
                rotateManagerToken=rotate["Manager"] or None,
                rotateManagerUnlockKey=rotate_unlock or None,
            )

        comparison, swarm = self.converge(self.api.swarm(), self.api.swarm, compare_spec, write)
        for warning in creation_warnings(self.params, info, swarm):
            self.warn(warning)
        actions = [f"{n} updated" for n in comparison.changes if n in SPEC_FIELDS]
        actions += [f"{role.lower()} join token rotated" for role, wanted in rotate.items() if wanted]
        actions += ["unlock key rotated"] if rotate_unlock else []
        self.record(comparison, actions)
        return self.result(**self.swarm_facts(info))

    def leave(self, state: str) -> dict[str, Any]:
        if state == "inactive":
            return self.result()
        self.record_state("left the swarm", {"state": "present"}, {"state": "absent"})
        if not self.check_mode:
            self.api.post("/swarm/leave", force=bool(self.params["force"]) or None)
        return self.result()


def node_summary(node: dict[str, Any]) -> dict[str, Any]:
    """What a playbook compares with its inventory to leave a node alone (the cluster role skips the join and
    the node task of a node whose membership, role, availability and labels are already as wanted)."""
    spec = node.get("Spec") or {}
    return {
        "hostname": (node.get("Description") or {}).get("Hostname", ""),
        "role": spec.get("Role", ""),
        "availability": spec.get("Availability", ""),
        "labels": dict(spec.get("Labels") or {}),
        "state": (node.get("Status") or {}).get("State", ""),
        "reachability": (node.get("ManagerStatus") or {}).get("Reachability", ""),
    }


def main() -> None:
    run_task(SwarmTask)


if __name__ == "__main__":
    main()
