#!/usr/bin/python
# Copyright: shoal developers
# Apache License 2.0 (see galaxy.yml)
from __future__ import annotations

DOCUMENTATION = r"""
module: swarm_service
short_description: Create, update and remove services of a shoal swarm
version_added: 0.1.0
description:
  - Manages one service of a shoal swarm, shaped after C(docker service create|update|rm) and
    community.docker's C(docker_swarm_service).
  - The task must run on a manager (use C(delegate_to) and C(run_once)).
  - Only the options you give are compared with the service in place and changed; an option left out keeps the
    service's current value (on creation, the swarm's default). Give an empty list or dictionary to clear a list
    or O(labels) (for example O(constraints=[]) or O(labels={})).
    For the dictionary options O(resources), O(restart_policy), O(update_config) and O(rollback_config), only the
    sub-options given are compared and changed (a limit of V(0) removes it).
  - A change updates the service in place with the version it was read at (C(POST /services/{id}/update)),
    which starts a rolling update when the tasks need to change. The module never removes and creates a service
    again to apply a change; what cannot change in place (the mode, V(replicated) or V(global)) fails with a
    message that says so.
  - With O(wait), returns when the service has converged, that is when all its desired tasks run with the
    current spec, or fails after O(wait_timeout) seconds with the tasks' last error.
author:
  - shoal developers (@shoal-swarm)
extends_documentation_fragment:
  - shoal.swarm.shoal
  - shoal.swarm.shoal.attributes
  - shoal.swarm.container
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: partial
    details: O(force_update=true) updates the service on every run.
options:
  name:
    description:
      - Name of the service (a DNS label; letters, digits, C(-) and C(_), at most 63 characters).
    type: str
    required: true
  state:
    description:
      - V(present) creates the service or brings it to the given spec; V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  image:
    description:
      - Image of the tasks (C(shoal/hello), C(shoal/host), an image the nodes have, or one of a registry, which each
        node pulls before it starts a task). Required to create a service.
      - Without a digest, it is compared with the service's image without its digest, so that an image pinned by
        O(resolve_image) or by C(shoal service create) does not count as a change.
    type: str
  resolve_image:
    description:
      - Whether to ask the image's registry (through the manager, C(GET /distribution/{name}/json)) for the digest
        its tag names now and pin the service to C(image:tag@sha256:...), so that every node runs the same bits.
      - V(always) asks on every run and updates the service when the tag names other bits now.
      - V(changed) asks only when the service is created or O(image) names another tag than the service has.
      - V(never) uses O(image) as given (community.docker's C(resolve_image=false)); each node then pulls the tag.
      - An image given with a digest is never resolved. A registry that cannot answer fails the task with its
        reason.
    type: str
    choices: [always, changed, never]
    default: never
  with_registry_auth:
    description:
      - Send registry credentials with the creation or update, so that the workers pull the image with them
        (C(docker service create --with-registry-auth)). They are kept with the service's tasks and never shown
        by the API, in the diff or in the module's result.
      - The credentials are O(registry_username) and O(registry_password) when given, otherwise those that
        C(docker login) stored for the image's registry in the docker CLI's C(config.json) on the managed host
        (C($DOCKER_CONFIG) or C(~/.docker)); without either, an empty set of credentials is sent, which removes the
        ones the service had.
      - They are also used to ask the registry for the digest (O(resolve_image)).
      - Credentials alone are not a change (they cannot be read back); they are sent when other options change the
        service or create it. Tasks that already pulled their image are not replaced for new credentials only.
    type: bool
    default: false
  registry_username:
    description:
      - User name for the image's registry, sent with O(with_registry_auth=true).
    type: str
  registry_password:
    description:
      - Password or token for the image's registry, sent with O(with_registry_auth=true). Never logged nor returned.
    type: str
  command:
    description:
      - Command of the tasks, replacing the image's entry point; a string is split like a shell would.
    type: raw
  args:
    description:
      - Arguments of the command.
    type: list
    elements: str
  env:
    description:
      - Environment of the tasks, as a dictionary or a list of C(KEY=value) strings.
      - The order does not matter when comparing with the service in place.
    type: raw
  mode:
    description:
      - V(replicated) runs O(replicas) tasks; V(global) runs one task on every node that fits the placement.
      - V(replicated-job) runs tasks to completion until O(replicas) of them completed, at most O(max_concurrent)
        at once; V(global-job) runs one task to completion on every node that fits the placement. A completed
        job stays (its tasks show C(Complete)); O(force_update=true) or any change of its spec runs it again.
      - The mode of an existing service cannot change (remove it first).
    type: str
    choices: [replicated, global, replicated-job, global-job]
  replicas:
    description:
      - Number of tasks of a replicated service, or completions of a replicated job. Left out, an existing
        service keeps its number and a new one gets 1.
    type: int
  max_concurrent:
    description:
      - Most tasks of a replicated job that run at once (Docker's C(--max-concurrent)). Left out, a new job
        runs all its O(replicas) at once. Only with O(mode=replicated-job).
    type: int
  constraints:
    description:
      - Placement constraints such as C(node.role==worker), C(node.hostname!=swarm01) or C(node.labels.zone==a).
    type: list
    elements: str
  placement_preferences:
    description:
      - Placement preferences, in order.
    type: list
    elements: dict
    suboptions:
      spread:
        description:
          - Spread the tasks evenly over the values of this node attribute, such as C(node.labels.zone).
        type: str
        required: true
  max_replicas:
    description:
      - Most tasks of the service on one node (V(0) is no limit). Replicated services only.
    type: int
  resources:
    description:
      - Limits and reservations of the tasks.
    type: dict
    suboptions:
      limits:
        description: What a task may use at most.
        type: dict
        suboptions:
          cpus:
            description: CPUs (V(0.5) is half a CPU; V(0) is no limit).
            type: float
          memory:
            description: Memory, such as V(64M) or V(1G) (binary units; a bare number is bytes; V(0) is no limit).
            type: str
          pids:
            description: Number of processes (V(0) is no limit).
            type: int
      reservations:
        description: What a node must have free to take a task.
        type: dict
        suboptions:
          cpus:
            description: CPUs.
            type: float
          memory:
            description: Memory, such as V(32M).
            type: str
  restart_policy:
    description:
      - When and how the swarm restarts the tasks.
    type: dict
    suboptions:
      condition:
        description: Restart after V(any) exit, V(on-failure) only, or V(none).
        type: str
        choices: [none, on-failure, any]
      delay:
        description: Wait between restarts, as a duration such as V(5s).
        type: str
      max_attempts:
        description: Most restarts within O(restart_policy.window) (V(0) is no limit).
        type: int
      window:
        description: The window O(restart_policy.max_attempts) counts in, as a duration.
        type: str
  update_config:
    description:
      - How a rolling update replaces the tasks.
    type: dict
    suboptions:
      parallelism:
        description: Tasks replaced at once (V(0) is all at once).
        type: int
      delay:
        description: Wait between batches, as a duration such as V(10s).
        type: str
      failure_action:
        description: What to do when an update fails.
        type: str
        choices: [continue, pause, rollback]
      monitor:
        description: How long a new task must run to count as a success, as a duration.
        type: str
      max_failure_ratio:
        description: Share of tasks that may fail before O(update_config.failure_action) applies (0 to 1).
        type: float
      order:
        description: Stop the old task first, or start the new one first.
        type: str
        choices: [stop-first, start-first]
  rollback_config:
    description:
      - How a rollback replaces the tasks; as O(update_config), but a rollback cannot roll back.
    type: dict
    suboptions:
      parallelism:
        description: Tasks replaced at once (V(0) is all at once).
        type: int
      delay:
        description: Wait between batches, as a duration.
        type: str
      failure_action:
        description: What to do when a rollback fails.
        type: str
        choices: [continue, pause]
      monitor:
        description: How long a task must run to count as a success, as a duration.
        type: str
      max_failure_ratio:
        description: Share of tasks that may fail (0 to 1).
        type: float
      order:
        description: Stop the old task first, or start the new one first.
        type: str
        choices: [stop-first, start-first]
  networks:
    description:
      - The overlay networks the tasks attach to (see M(shoal.swarm.overlay_network)), as in community.docker's
        C(docker_swarm_service) each either a network's name (or ID) or a dictionary with the keys C(name)
        (required), C(aliases) (more names of the service on that network, answered by the embedded DNS like the
        service's own name) and C(options) (the attachment's driver options, a dictionary of strings; shoal's
        overlay driver takes none, so the agent refuses a non-empty one).
      - The order of the networks and of the aliases does not matter when comparing; a network listed without
        C(aliases) has none (its aliases in place are removed).
    type: list
    elements: raw
  publish:
    description:
      - Ports published through the routing mesh (V(ingress), on every node) or on the nodes that run a task
        (V(host)). The order does not matter when comparing.
    type: list
    elements: dict
    suboptions:
      published_port:
        description: Port on the nodes. Left out, the swarm picks one (from 30000) for V(ingress).
        type: int
      target_port:
        description: Port the task listens on.
        type: int
        required: true
      protocol:
        description: Protocol.
        type: str
        choices: [tcp, udp, sctp]
        default: tcp
      mode:
        description: V(ingress) (the routing mesh) or V(host).
        type: str
        choices: [ingress, host]
        default: ingress
  endpoint_mode:
    description:
      - V(vip) gives the service a virtual IP that balances over its tasks; V(dnsrr) answers DNS with the tasks'
        addresses (then ports can only be published in V(host) mode).
    type: str
    choices: [vip, dnsrr]
  labels:
    description:
      - Labels of the service (strings; other values are turned into strings).
    type: dict
  container_labels:
    description:
      - Labels of the tasks.
    type: dict
  hostname:
    description:
      - Hostname inside the tasks.
    type: str
  user:
    description:
      - User (name or UID, with an optional C(:group)) the tasks run as.
    type: str
  workdir:
    description:
      - Working directory of the tasks (absolute).
    type: str
  stop_signal:
    description:
      - Signal that stops a task, such as V(SIGTERM).
    type: str
  stop_grace_period:
    description:
      - Time between the stop signal and SIGKILL, as a duration such as V(10s).
    type: str
  healthcheck:
    description:
      - The tasks' health check (C(docker service create --health-*)), in community.docker's shape. A task is
        RUNNING, and receives traffic through the service's VIP and the routing mesh, once its check passed;
        an unhealthy task fails and is replaced following O(restart_policy).
      - Compared as a whole; a sub-option left out is its zero value (the image's C(HEALTHCHECK) value).
      - O(healthcheck.test=[NONE]) disables the image's check.
    type: dict
    suboptions:
      test:
        description:
          - The command; a string runs under C(/bin/sh -c) (C(CMD-SHELL)), a list is Docker's form starting
            with C(CMD), C(CMD-SHELL) or C(NONE).
        type: raw
      interval:
        description: Time between checks, as a duration such as V(30s).
        type: str
      timeout:
        description: Time a check may run before it is killed and counted as failed.
        type: str
      retries:
        description: Consecutive failures that make a task unhealthy.
        type: int
      start_period:
        description: Time after the start during which failures do not count.
        type: str
  force_update:
    description:
      - Replace every task even when the spec did not change (C(docker service update --force)).
    type: bool
    default: false
  wait:
    description:
      - Wait until the service has converged (all its desired tasks run with the current spec), or, with
        O(state=absent), until its tasks have stopped. Not in check mode.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait with O(wait).
    type: int
    default: 120
  secrets:
    description:
      - The secrets the tasks get, as files on a tmpfs inside each task at
        C(/run/secrets/FILENAME) (an absolute O(secrets[].filename) as given).
      - Each secret must exist (see M(shoal.swarm.swarm_secret)). Left out, the secrets in place are kept;
        V([]) removes them all.
    type: list
    elements: dict
    suboptions:
      secret_id:
        description:
          - ID of the secret (optional; the swarm resolves O(secrets[].secret_name)).
        type: str
      secret_name:
        description:
          - Name of the secret.
        type: str
        required: true
      filename:
        description:
          - Name of the file inside the task (default the secret's name).
        type: str
      uid:
        description:
          - Owner of the file (a numeric user ID, default V(0)).
        type: str
      gid:
        description:
          - Group of the file (a numeric group ID, default V(0)).
        type: str
      mode:
        description:
          - Permissions of the file (default V(0o444)).
        type: int
  configs:
    description:
      - The configs the tasks get, as files on a tmpfs inside each task at
        C(/FILENAME) (an absolute O(configs[].filename) as given).
      - Each config must exist (see M(shoal.swarm.swarm_config)). Left out, the configs in place are kept;
        V([]) removes them all.
    type: list
    elements: dict
    suboptions:
      config_id:
        description:
          - ID of the config (optional; the swarm resolves O(configs[].config_name)).
        type: str
      config_name:
        description:
          - Name of the config.
        type: str
        required: true
      filename:
        description:
          - Name of the file inside the task (default the config's name).
        type: str
      uid:
        description:
          - Owner of the file (a numeric user ID, default V(0)).
        type: str
      gid:
        description:
          - Group of the file (a numeric group ID, default V(0)).
        type: str
      mode:
        description:
          - Permissions of the file (default V(0o444)).
        type: int
notes:
  - Durations are Go durations (V(500ms), V(10s), V(1m30s)); a bare number is seconds.
seealso:
  - module: shoal.swarm.overlay_network
  - module: shoal.swarm.swarm_info
"""

EXAMPLES = r"""
- name: The seed's web app on the workers, published on port 80 of every node
  shoal.swarm.swarm_service:
    name: nodejs
    image: shoal/hello
    replicas: 2
    publish:
      - published_port: 80
        target_port: 8080
    constraints:
      - node.role==worker
    wait: true
  delegate_to: "{{ groups['managers'][0] }}"
  run_once: true

- name: Scale it, leaving everything else as it is
  shoal.swarm.swarm_service:
    name: nodejs
    replicas: 3
    wait: true

- name: A global service on an overlay network, with limits and a rolling-update policy
  shoal.swarm.swarm_service:
    name: agent
    image: shoal/host
    command: sleep infinity
    mode: global
    networks:
      - backend
      - name: frontend
        aliases: [api, api-v2]
    env:
      LOG_LEVEL: debug
    resources:
      limits:
        cpus: 0.5
        memory: 64M
    update_config:
      parallelism: 1
      delay: 5s
      order: start-first

- name: The seed's app from a private registry, pinned to the digest its tag names now
  shoal.swarm.swarm_service:
    name: nodejs
    image: 10.213.0.1:5000/kalise/nodejs-web-app:latest
    resolve_image: changed
    with_registry_auth: true
    registry_username: "{{ registry_user }}"
    registry_password: "{{ registry_password }}"
    replicas: 2
    wait: true

- name: A database with its data in a node-local volume, a read-only config bind and a tmpfs
  shoal.swarm.swarm_service:
    name: db
    image: 10.213.0.1:5000/postgres:16
    constraints: [node.hostname==swarm01]
    mounts:
      - source: pgdata
        target: /var/lib/postgresql/data
        type: volume
      - source: /etc/shoal-db
        target: /etc/db
        readonly: true
      - target: /run/scratch
        type: tmpfs
        tmpfs_size: 64M
    dns: [10.213.0.53]
    dns_search: [example.org]
    hosts:
      ldap: 10.213.0.20
    sysctls:
      net.core.somaxconn: "1024"
    ulimits: [nofile:4096:8192]
    cap_drop: [NET_RAW]
    init: true

- name: Traffic only to healthy tasks; a failing check fails the task and a failing update rolls back
  shoal.swarm.swarm_service:
    name: nodejs
    healthcheck:
      test: wget -q -O /dev/null http://127.0.0.1:8080/
      interval: 5s
      timeout: 2s
      retries: 3
      start_period: 10s
    update_config:
      failure_action: rollback
      monitor: 30s

- name: Restart every task
  shoal.swarm.swarm_service:
    name: nodejs
    force_update: true

- name: Remove the service and wait until its tasks stopped
  shoal.swarm.swarm_service:
    name: nodejs
    state: absent
    wait: true
"""

RETURN = r"""
service_id:
  description: ID of the service (empty when it does not exist, or in check mode before it is created).
  returned: always
  type: str
  sample: lo6p4xrhlz3nmvq3ge6xm2bwp
service:
  description:
    - The service as C(GET /services/{id}) shows it (Docker's C(Service) object) after the change.
    - Registry credentials sent with O(with_registry_auth) are never part of it.
  returned: when the service exists
  type: dict
  sample: {"ID": "lo6p4xrhlz3nmvq3ge6xm2bwp", "Spec": {"Name": "nodejs", "Mode": {"Replicated": {"Replicas": 2}}}}
actions:
  description: What was done (or would be done in check mode).
  returned: always
  type: list
  elements: str
  sample: [service updated]
changes:
  description: Names of the options whose values differ from the service in place (V(state) for a creation or removal).
  returned: always
  type: list
  elements: str
  sample: [replicas, image]
tasks:
  description: With O(wait), the service's tasks that run with its current spec (Docker's C(Task) objects).
  returned: when O(wait=true) and O(state=present), outside check mode
  type: list
  elements: dict
"""

import copy  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from ansible_collections.shoal.swarm.plugins.module_utils import _shoal_container as container_opts  # noqa: E402
from ansible_collections.shoal.swarm.plugins.module_utils import _shoal_healthcheck as healthcheck  # noqa: E402
from ansible_collections.shoal.swarm.plugins.module_utils._shoal_api import (  # noqa: E402
    format_duration,
    label_map,
    parse_duration,
    service_path,
    wait_until,
)
from ansible_collections.shoal.swarm.plugins.module_utils._shoal_diff import Comparison, compare  # noqa: E402
from ansible_collections.shoal.swarm.plugins.module_utils._shoal_jobs import (  # noqa: E402
    MODES,
    is_job,
    job_done,
    mode_conflict,
    mode_spec,
    mode_view,
)
from ansible_collections.shoal.swarm.plugins.module_utils._shoal_registry import (  # noqa: E402
    auth_for,
    resolve_digest,
    tagged,
)
from ansible_collections.shoal.swarm.plugins.module_utils._shoal_runner import (  # noqa: E402
    ParamError,
    ShoalTask,
    run_task,
)
from ansible_collections.shoal.swarm.plugins.module_utils._shoal_service_refs import (  # noqa: E402
    apply_refs,
    current_refs,
    desired_refs,
    refs_argument_spec,
)

NAME_RE = re.compile(r"^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$")
MAX_NAME = 63
MIN_MEMORY = 4 * 1024 * 1024
_MEMORY_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)$", re.I)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}

# the options that make up the spec, in the order the diff shows them
SPEC_OPTIONS = (
    "image",
    "command",
    "args",
    "env",
    "mode",
    "replicas",
    "max_concurrent",
    "constraints",
    "placement_preferences",
    "max_replicas",
    "resources",
    "restart_policy",
    "update_config",
    "rollback_config",
    "networks",
    "publish",
    "endpoint_mode",
    "labels",
    "container_labels",
    "hostname",
    "user",
    "workdir",
    "stop_signal",
    "stop_grace_period",
    *container_opts.OPTIONS,  # mounts, dns*, hosts, sysctls, ulimits, cap_add/drop, init, read_only
    "healthcheck",
    "secrets",  # module_utils/_shoal_service_refs.py
    "configs",
)
REGISTRY_OPTIONS = ("resolve_image", "with_registry_auth", "registry_username", "registry_password")
UNORDERED = ("env", "constraints", "networks", "publish", *container_opts.UNORDERED)
SECTIONS = ("resources", "restart_policy", "update_config", "rollback_config")
RESTART_FIELDS = {"condition": "Condition", "delay": "Delay", "max_attempts": "MaxAttempts", "window": "Window"}
ROLLOUT_FIELDS = {
    "parallelism": "Parallelism",
    "delay": "Delay",
    "failure_action": "FailureAction",
    "monitor": "Monitor",
    "max_failure_ratio": "MaxFailureRatio",
    "order": "Order",
}
SECTION_DURATIONS = {
    "restart_policy": ("delay", "window"),
    "update_config": ("delay", "monitor"),
    "rollback_config": ("delay", "monitor"),
}
CONTAINER_FIELDS = {
    "image": "Image",
    "command": "Command",
    "args": "Args",
    "env": "Env",
    "container_labels": "Labels",
    "hostname": "Hostname",
    "user": "User",
    "workdir": "Dir",
    "stop_signal": "StopSignal",
}


def _rollout_spec(failure_actions: list[str]) -> dict[str, Any]:
    return {
        "parallelism": {"type": "int"},
        "delay": {"type": "str"},
        "failure_action": {"type": "str", "choices": failure_actions},
        "monitor": {"type": "str"},
        "max_failure_ratio": {"type": "float"},
        "order": {"type": "str", "choices": ["stop-first", "start-first"]},
    }


def argument_spec() -> dict[str, Any]:
    return {
        "name": {"type": "str", "required": True},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        "image": {"type": "str"},
        "command": {"type": "raw"},
        "args": {"type": "list", "elements": "str"},
        "env": {"type": "raw"},
        "mode": {"type": "str", "choices": MODES},
        "replicas": {"type": "int"},
        "max_concurrent": {"type": "int"},
        "constraints": {"type": "list", "elements": "str"},
        "placement_preferences": {
            "type": "list",
            "elements": "dict",
            "options": {"spread": {"type": "str", "required": True}},
        },
        "max_replicas": {"type": "int"},
        "resources": {
            "type": "dict",
            "options": {
                "limits": {
                    "type": "dict",
                    "options": {"cpus": {"type": "float"}, "memory": {"type": "str"}, "pids": {"type": "int"}},
                },
                "reservations": {
                    "type": "dict",
                    "options": {"cpus": {"type": "float"}, "memory": {"type": "str"}},
                },
            },
        },
        "restart_policy": {
            "type": "dict",
            "options": {
                "condition": {"type": "str", "choices": ["none", "on-failure", "any"]},
                "delay": {"type": "str"},
                "max_attempts": {"type": "int"},
                "window": {"type": "str"},
            },
        },
        "update_config": {"type": "dict", "options": _rollout_spec(["continue", "pause", "rollback"])},
        "rollback_config": {"type": "dict", "options": _rollout_spec(["continue", "pause"])},
        "networks": {"type": "list", "elements": "raw"},
        "publish": {
            "type": "list",
            "elements": "dict",
            "options": {
                "published_port": {"type": "int"},
                "target_port": {"type": "int", "required": True},
                "protocol": {"type": "str", "choices": ["tcp", "udp", "sctp"], "default": "tcp"},
                "mode": {"type": "str", "choices": ["ingress", "host"], "default": "ingress"},
            },
        },
        "endpoint_mode": {"type": "str", "choices": ["vip", "dnsrr"]},
        "labels": {"type": "dict"},
        "container_labels": {"type": "dict"},
        "hostname": {"type": "str"},
        "user": {"type": "str"},
        "workdir": {"type": "str"},
        "stop_signal": {"type": "str"},
        "stop_grace_period": {"type": "str"},
        "healthcheck": healthcheck.ARGUMENT_SPEC,
        "force_update": {"type": "bool", "default": False},
        "resolve_image": {"type": "str", "choices": ["always", "changed", "never"], "default": "never"},
        "with_registry_auth": {"type": "bool", "default": False},
        "registry_username": {"type": "str"},
        "registry_password": {"type": "str", "no_log": True},
        "wait": {"type": "bool", "default": False},
        "wait_timeout": {"type": "int", "default": 120},
        **container_opts.argument_spec(),
        **refs_argument_spec(),
    }


# ---- values: the module's terms <-> the API's
def parse_memory(value: Any, name: str) -> int:
    """Bytes from V(64M), V(1.5g), V(512MiB) or a number of bytes (Docker's RAMInBytes: binary units)."""
    if isinstance(value, bool):
        raise ParamError(f"{name}: expected a size such as 64M, not {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    match = _MEMORY_RE.match(str(value).strip())
    if not match:
        raise ParamError(f"{name}: {value!r} is not a size (examples: 64M, 512MiB, 1G, or a number of bytes)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _duration(value: Any, name: str) -> str:
    try:
        ns = parse_duration(value, name)
    except ValueError as exc:
        raise ParamError(str(exc)) from None
    if ns < 0:
        raise ParamError(f"{name} cannot be negative, not {value}")
    return format_duration(ns)


def _ns(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


def env_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        out = []
        for key, item in value.items():
            if isinstance(item, bool):
                item = "true" if item else "false"
            out.append(f"{key}={'' if item is None else item}")
        return out
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise ParamError("env: a list of KEY=value strings or a dictionary is expected")
        if any(not v.partition("=")[0] for v in value):
            raise ParamError(f"env: invalid environment variable {next(v for v in value if not v.partition('=')[0])!r}")
        return list(value)
    raise ParamError(f"env: a dictionary or a list of KEY=value strings is expected, not {type(value).__name__}")


def command_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ParamError(f"command: {exc}") from None
    if isinstance(value, list):
        return [str(v) for v in value]
    raise ParamError(f"command: a string or a list of strings is expected, not {type(value).__name__}")


def _cpus(nano: Any) -> float:
    return round(int(nano or 0) / 1e9, 9)


def _section_values(params: dict[str, Any] | None, durations: tuple[str, ...], name: str) -> dict[str, Any] | None:
    """The sub-options of a dictionary option the user set (None: the option was left out)."""
    if params is None:
        return None
    out = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = _duration(value, f"{name}.{key}") if key in durations else value
    return out


NETWORK_KEYS = ("name", "aliases", "options")


def network_item(name: str, aliases: list[str], options: dict[str, str]) -> str | dict[str, Any]:
    """One network in the module's view: its name alone when it has no aliases nor options (so that the plain
    list of names a user gives compares equal), else ``{name, aliases, options}``."""
    if not aliases and not options:
        return name
    return {"name": name, "aliases": list(aliases), "options": dict(options)}


def network_name(item: str | dict[str, Any]) -> str:
    return item if isinstance(item, str) else item["name"]


def network_items(value: list[Any]) -> list[str | dict[str, Any]]:
    """The ``networks`` option (names, or dictionaries as community.docker takes them) in the view's terms."""
    out: list[str | dict[str, Any]] = []
    for i, item in enumerate(value):
        where = f"networks[{i}]"
        if isinstance(item, str):
            if not item:
                raise ParamError(f"{where}: a network name cannot be empty")
            out.append(item)
            continue
        if not isinstance(item, dict):
            raise ParamError(f"{where}: a network name or a dictionary is expected, not {type(item).__name__}")
        unknown = sorted(set(item) - set(NETWORK_KEYS))
        if unknown:
            raise ParamError(f"{where}: unsupported key(s) {', '.join(unknown)} (supported: {', '.join(NETWORK_KEYS)})")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise ParamError(f"{where}: name is required (the network's name or ID)")
        aliases = item.get("aliases") or []
        if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
            raise ParamError(f"{where}.aliases: a list of names is expected")
        options = item.get("options") or {}
        if not isinstance(options, dict):
            raise ParamError(f"{where}.options: a dictionary is expected")
        options = {str(k): "true" if v is True else "false" if v is False else str(v) for k, v in options.items()}
        out.append(network_item(name, list(dict.fromkeys(aliases)), options))
    return out


def desired_view(params: dict[str, Any]) -> dict[str, Any]:
    """What the user asked for, in the module's terms and canonical units; None = leave as is.

    Sections (dictionary options) hold only the sub-options that were set; ``merged_view`` lays them
    over the service's current values."""
    view: dict[str, Any] = {name: None for name in SPEC_OPTIONS}
    for name in ("image", "args", "mode", "replicas", "max_concurrent", "constraints", "max_replicas", "endpoint_mode"):
        view[name] = params.get(name)
    for name in ("hostname", "user", "workdir", "stop_signal"):
        view[name] = params.get(name)
    view["command"] = command_list(params.get("command"))
    view["env"] = env_list(params.get("env"))
    for name in ("labels", "container_labels"):
        if params.get(name) is not None:
            view[name] = label_map(params[name])
    if params.get("stop_grace_period") is not None:
        view["stop_grace_period"] = _duration(params["stop_grace_period"], "stop_grace_period")
    view["healthcheck"] = healthcheck.desired(params.get("healthcheck"))
    if params.get("placement_preferences") is not None:
        view["placement_preferences"] = [{"spread": p["spread"]} for p in params["placement_preferences"]]
    if params.get("networks") is not None:
        view["networks"] = network_items(params["networks"])
    if params.get("publish") is not None:
        view["publish"] = [
            {
                "published_port": p.get("published_port") or 0,
                "target_port": p["target_port"],
                "protocol": p.get("protocol") or "tcp",
                "mode": p.get("mode") or "ingress",
            }
            for p in params["publish"]
        ]
    resources = params.get("resources")
    if resources is not None:
        view["resources"] = {}
        for part in ("limits", "reservations"):
            given = resources.get(part)
            if given is None:
                continue
            values: dict[str, Any] = {}
            for key, value in given.items():
                if value is None:
                    continue
                if key == "memory":
                    values[key] = parse_memory(value, f"resources.{part}.memory")
                elif key == "cpus":
                    values[key] = round(float(value), 9)
                else:
                    values[key] = value
            view["resources"][part] = values
    for name in ("restart_policy", "update_config", "rollback_config"):
        view[name] = _section_values(params.get(name), SECTION_DURATIONS.get(name, ()), name)
    for name in ("update_config", "rollback_config"):
        if view[name] and "max_failure_ratio" in view[name]:
            view[name]["max_failure_ratio"] = float(view[name]["max_failure_ratio"])
    view.update(container_opts.desired(params))
    view.update(desired_refs(params))
    return view


def current_view(spec: dict[str, Any], network_names: dict[str, str]) -> dict[str, Any]:
    """The service's spec in the module's terms (the agent has filled every default)."""
    template = spec.get("TaskTemplate") or {}
    container = template.get("ContainerSpec") or {}
    placement = template.get("Placement") or {}
    resources = template.get("Resources") or {}
    limits, reservations = resources.get("Limits") or {}, resources.get("Reservations") or {}
    restart = template.get("RestartPolicy") or {}
    endpoint = spec.get("EndpointSpec") or {}

    def rollout(config: dict[str, Any] | None) -> dict[str, Any]:
        config = config or {}
        out = {key: config.get(field) for key, field in ROLLOUT_FIELDS.items()}
        for key in ("delay", "monitor"):
            out[key] = format_duration(out[key])
        if out["max_failure_ratio"] is not None:
            out["max_failure_ratio"] = float(out["max_failure_ratio"])
        return out

    view = {
        "image": container.get("Image"),
        "command": list(container.get("Command") or []),
        "args": list(container.get("Args") or []),
        "env": list(container.get("Env") or []),
        **mode_view(spec.get("Mode")),  # mode, replicas, max_concurrent (_shoal_jobs)
        "constraints": list(placement.get("Constraints") or []),
        "placement_preferences": [
            {"spread": (p.get("Spread") or {}).get("SpreadDescriptor")} for p in placement.get("Preferences") or []
        ],
        "max_replicas": placement.get("MaxReplicas", 0),
        "resources": {
            "limits": {
                "cpus": _cpus(limits.get("NanoCPUs")),
                "memory": int(limits.get("MemoryBytes") or 0),
                "pids": int(limits.get("Pids") or 0),
            },
            "reservations": {
                "cpus": _cpus(reservations.get("NanoCPUs")),
                "memory": int(reservations.get("MemoryBytes") or 0),
            },
        },
        "restart_policy": {
            "condition": restart.get("Condition"),
            "delay": format_duration(restart.get("Delay")),
            "max_attempts": restart.get("MaxAttempts"),
            "window": format_duration(restart.get("Window")),
        },
        "update_config": rollout(spec.get("UpdateConfig")),
        "rollback_config": rollout(spec.get("RollbackConfig")),
        "networks": [
            network_item(
                network_names.get(n.get("Target"), n.get("Target")), n.get("Aliases") or [], n.get("DriverOpts") or {}
            )
            for n in template.get("Networks") or []
        ],
        "publish": [
            {
                "published_port": p.get("PublishedPort") or 0,
                "target_port": p.get("TargetPort"),
                "protocol": p.get("Protocol") or "tcp",
                "mode": p.get("PublishMode") or "ingress",
            }
            for p in endpoint.get("Ports") or []
        ],
        "endpoint_mode": endpoint.get("Mode") or "vip",
        "labels": dict(spec.get("Labels") or {}),
        "container_labels": dict(container.get("Labels") or {}),
        "hostname": container.get("Hostname") or "",
        "user": container.get("User") or "",
        "workdir": container.get("Dir") or "",
        "stop_signal": container.get("StopSignal") or "",
        "stop_grace_period": format_duration(container.get("StopGracePeriod")),
        **container_opts.current(container),
        "healthcheck": healthcheck.current(container),
        **current_refs(container),
    }
    return view


def merged_view(desired: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """``desired`` with each section's unset sub-options taken from ``current`` (so that they compare equal)."""
    out = dict(desired)
    for name in SECTIONS:
        wanted = desired.get(name)
        if wanted is None:
            continue
        have = current.get(name) or {}
        if name == "resources":
            out[name] = {part: {**(have.get(part) or {}), **values} for part, values in wanted.items()}
            for part, values in have.items():
                out[name].setdefault(part, values)
        else:
            out[name] = {**have, **wanted}
    return out


BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "replicas": (0, None),
    "max_concurrent": (0, None),
    "max_replicas": (0, None),
    "wait_timeout": (1, None),
    "publish.target_port": (1, 65535),
    "publish.published_port": (0, 65535),
    "resources.limits.cpus": (0, None),
    "resources.limits.pids": (0, None),
    "resources.reservations.cpus": (0, None),
    "restart_policy.max_attempts": (0, None),
    "update_config.parallelism": (0, None),
    "update_config.max_failure_ratio": (0, 1),
    "rollback_config.parallelism": (0, None),
    "rollback_config.max_failure_ratio": (0, 1),
}


def check_params(params: dict[str, Any]) -> None:
    """Raise ParamError for arguments that contradict each other (what the argument spec and BOUNDS cannot say)."""
    name = params["name"]
    if not NAME_RE.match(name) or len(name) > MAX_NAME:
        raise ParamError(
            f"invalid service name {name!r}: use letters, digits, '-' and '_' (a DNS label of at most {MAX_NAME} "
            "characters, starting and ending with a letter or digit)"
        )
    if params["state"] == "absent":
        return
    if params.get("image") is not None and not params["image"].strip():
        raise ParamError("image cannot be empty")
    if params.get("registry_username") and not params.get("with_registry_auth"):
        raise ParamError("registry_username and registry_password are only used with with_registry_auth=true")
    conflict = mode_conflict(params.get("mode"), params)
    if conflict:
        raise ParamError(conflict)
    if params.get("workdir") and not params["workdir"].startswith("/"):
        raise ParamError(f"workdir must be an absolute path, not {params['workdir']!r}")
    publish = params.get("publish") or []
    ports = [(p.get("protocol") or "tcp", p["published_port"]) for p in publish if p.get("published_port")]
    dupes = sorted({f"{port}/{proto}" for proto, port in ports if ports.count((proto, port)) > 1})
    if dupes:
        raise ParamError(f"publish: port {dupes[0]} is published more than once")
    if params.get("endpoint_mode") == "dnsrr" and any((p.get("mode") or "ingress") == "ingress" for p in publish):
        raise ParamError(
            "endpoint_mode=dnsrr gives the service no virtual IP, which the routing mesh needs: "
            "publish its ports with mode=host, or use endpoint_mode=vip"
        )
    networks = [network_name(n) for n in network_items(params.get("networks") or [])]
    if len(set(networks)) != len(networks):
        raise ParamError("networks: a network is listed more than once")
    view = desired_view(params)  # sizes and durations
    res = view.get("resources") or {}
    for part in ("limits", "reservations"):
        memory = (res.get(part) or {}).get("memory")
        if memory is not None and 0 < memory < MIN_MEMORY:
            raise ParamError(f"resources.{part}.memory must be at least 4M (or 0 for none), not {memory} bytes")
    for key in ("cpus", "memory"):
        limit, reservation = (res.get("limits") or {}).get(key), (res.get("reservations") or {}).get(key)
        if limit and reservation and reservation > limit:
            raise ParamError(f"resources: the {key} reservation ({reservation}) exceeds the limit ({limit})")


# ---- the module's view -> a ServiceSpec
def apply_view(
    spec: dict[str, Any],
    view: dict[str, Any],
    names: list[str],
    network_ids: dict[str, str],
    params: dict[str, Any] | None = None,
) -> None:
    """Write the options ``names`` of ``view`` into ``spec`` (a ServiceSpec), in place."""
    template = spec.setdefault("TaskTemplate", {})
    container = template.setdefault("ContainerSpec", {})
    for name in names:
        value = view.get(name)
        if value is None:
            continue
        if name in CONTAINER_FIELDS:
            container[CONTAINER_FIELDS[name]] = copy.deepcopy(value)
        elif name == "stop_grace_period":
            container["StopGracePeriod"] = parse_duration(value)
        elif name == "healthcheck":
            container.pop("Healthcheck", None)
            container["HealthCheck"] = healthcheck.to_spec(value)
        elif name in ("mode", "replicas", "max_concurrent"):
            spec["Mode"] = mode_spec(view, spec.get("Mode"))
        elif name in ("constraints", "max_replicas", "placement_preferences"):
            placement = template.setdefault("Placement", {})
            if name == "constraints":
                placement["Constraints"] = list(value)
            elif name == "max_replicas":
                placement["MaxReplicas"] = value
            else:
                placement["Preferences"] = [{"Spread": {"SpreadDescriptor": p["spread"]}} for p in value]
        elif name == "resources":
            resources = template.setdefault("Resources", {})
            for part, field in (("limits", "Limits"), ("reservations", "Reservations")):
                if part not in value:
                    continue
                out = resources.setdefault(field, {})
                for key, item in value[part].items():
                    if key == "cpus":
                        out["NanoCPUs"] = round(item * 1e9)
                    elif key == "memory":
                        out["MemoryBytes"] = item
                    elif key == "pids":
                        out["Pids"] = item
        elif name == "restart_policy":
            policy = template.setdefault("RestartPolicy", {})
            for key, item in value.items():
                if item is not None:
                    policy[RESTART_FIELDS[key]] = _ns(item) if key in ("delay", "window") else item
        elif name in ("update_config", "rollback_config"):
            config = spec.setdefault("UpdateConfig" if name == "update_config" else "RollbackConfig", {}) or {}
            for key, item in value.items():
                if item is not None:
                    config[ROLLOUT_FIELDS[key]] = _ns(item) if key in ("delay", "monitor") else item
            spec["UpdateConfig" if name == "update_config" else "RollbackConfig"] = config
        elif name == "networks":
            out = []
            for item in value:
                ref = network_name(item)
                attachment: dict[str, Any] = {"Target": network_ids.get(ref, ref)}
                if isinstance(item, dict):
                    if item["aliases"]:
                        attachment["Aliases"] = list(item["aliases"])
                    if item["options"]:
                        attachment["DriverOpts"] = dict(item["options"])
                out.append(attachment)
            template["Networks"] = out
        elif name == "publish":
            endpoint = spec.setdefault("EndpointSpec", {})
            endpoint["Ports"] = [
                {
                    "Protocol": p["protocol"],
                    "TargetPort": p["target_port"],
                    "PublishedPort": p["published_port"],
                    "PublishMode": p["mode"],
                }
                for p in value
            ]
        elif name == "endpoint_mode":
            spec.setdefault("EndpointSpec", {})["Mode"] = value
        elif name == "labels":
            spec["Labels"] = dict(value)
        elif name in container_opts.OPTIONS:
            container_opts.apply(container, name, value)
    apply_refs(container, view, names, params or {})


# ---- convergence, as the API sees it
UPDATE_STOPPED = {
    "paused": "its update was paused",
    "rollback_paused": "its rollback was paused",
    "rollback_completed": "its update was rolled back",
}


def converged(service: dict[str, Any], current: list[dict[str, Any]]) -> tuple[bool, int, int]:
    """(converged, running up-to-date tasks, desired tasks) of a service read with ``status=true``, given
    ``current``, its tasks that the API counts as up to date (``_up-to-date``) and wanted (desired state running).

    Converged: no rolling update under way, every desired task runs the current spec, and no other task runs
    (``ServiceStatus.RunningTasks`` counts the stale ones too). A global service needs at least one task."""
    status = service.get("ServiceStatus") or {}
    desired, running_all = int(status.get("DesiredTasks") or 0), int(status.get("RunningTasks") or 0)
    running = sum(1 for t in current if (t.get("Status") or {}).get("State") == "running")
    rolling = (service.get("UpdateStatus") or {}).get("State") in ("updating", "rollback_started")
    glob = ((service.get("Spec") or {}).get("Mode") or {}).get("Global") is not None
    done = not rolling and running == len(current) == desired == running_all and (desired > 0 or not glob)
    return done, running, desired


class ServiceTask(ShoalTask):
    argument_spec = staticmethod(argument_spec)
    state_options = {"present": (*SPEC_OPTIONS, "force_update", *REGISTRY_OPTIONS)}
    rules = {"required_together": [["registry_username", "registry_password"]]}
    bounds = BOUNDS

    def __init__(self, module: Any) -> None:
        super().__init__(module)
        self.name: str = self.params["name"]
        self._networks: list[dict[str, Any]] | None = None

    def validate(self) -> None:
        check_params(self.params)

    def result(self, service: dict[str, Any] | None = None, **facts: Any) -> dict[str, Any]:  # type: ignore[override]
        return super().result(service_id=(service or {}).get("ID", ""), service=service, **facts)

    # ---- networks: names <-> IDs
    def networks(self) -> list[dict[str, Any]]:
        if self._networks is None:
            self._networks = self.api.networks()
        return self._networks

    def network_names(self) -> dict[str, str]:
        return {n.get("Id"): n.get("Name") for n in self.networks()}

    def resolve_networks(self, refs: list[Any] | None) -> tuple[list[Any] | None, dict[str, str]]:
        """The networks' names (as the current view shows them) and name -> ID; unknown ones fail (or,
        in check mode, where an earlier task may create them, warn)."""
        if refs is None:
            return None, {}
        names: list[Any] = []
        ids: dict[str, str] = {}
        for item in refs:
            ref = network_name(item)
            found = next((n for n in self.networks() if ref in (n.get("Name"), n.get("Id"))), None)
            if found is None:
                found = self.api.network(ref)
            if found is None:
                message = f"network {ref} not found: create it first (shoal.swarm.overlay_network)"
                if not self.check_mode:
                    self.fail(message)
                self.warn(message)
                names.append(item)
                continue
            if found.get("Scope") not in (None, "swarm") or found.get("Ingress"):
                what = "the routing mesh's network" if found.get("Ingress") else f"a {found.get('Scope')} network"
                self.fail(f"network {ref} is {what}: a service can only be attached to overlay networks of the swarm")
            names.append(found["Name"] if isinstance(item, str) else {**item, "name": found["Name"]})
            ids[found["Name"]] = found["Id"]
        return names, ids

    # ---- entry
    def run(self) -> dict[str, Any]:
        service = self.api.service(self.name)
        if self.params["state"] == "absent":
            return self.absent(service)
        desired = desired_view(self.params)
        current_image = (((service or {}).get("Spec") or {}).get("TaskTemplate") or {}).get("ContainerSpec") or {}
        desired["image"] = self.image_to_run(desired["image"], current_image.get("Image"))
        desired["networks"], network_ids = self.resolve_networks(desired["networks"])
        service = self.create(desired, network_ids) if service is None else self.update(service, desired, network_ids)
        if self.params["wait"] and not self.check_mode and service is not None:
            service, tasks = self.wait_converged(service)
            return self.result(service, tasks=tasks)
        return self.result(service)

    # ---- the image and the registry's credentials
    def registry_auth(self, image: str) -> str | None:
        """X-Registry-Auth with with_registry_auth=true (never logged: registry_password is no_log)."""
        if not self.params["with_registry_auth"]:
            return None
        return auth_for(image, self.params.get("registry_username"), self.params.get("registry_password"))

    def auth_headers(self, image: str | None) -> dict[str, str] | None:
        auth = self.registry_auth(image or "")
        return {"X-Registry-Auth": auth} if auth else None

    def image_to_run(self, image: str | None, current: str | None) -> str | None:
        """The image to compare and write: pinned where resolve_image asks, the current pinned image
        when ``image`` names the same tag without a digest (community.docker's rule)."""
        if image is None or "@" in image:
            return image
        same_tag = current is not None and tagged(current) == tagged(image)
        mode = self.params["resolve_image"]
        if mode == "never" or (mode == "changed" and same_tag):
            return current if same_tag else image
        return resolve_digest(self.api, image, self.registry_auth(image))

    def create(self, desired: dict[str, Any], network_ids: dict[str, str]) -> dict[str, Any] | None:
        if desired.get("image") is None:
            self.fail(f"service {self.name} does not exist: image is needed to create it")
        given = [n for n in SPEC_OPTIONS if desired.get(n) is not None]
        self.record_state(
            "service created", {"state": "absent"}, {"state": "present", **{n: desired[n] for n in given}}
        )
        if self.check_mode:
            return None
        spec: dict[str, Any] = {"Name": self.name}
        apply_view(spec, desired, given, network_ids, self.params)
        if self.params["force_update"]:
            spec["TaskTemplate"]["ForceUpdate"] = 1
        headers = self.auth_headers(desired["image"])
        answer = self.api.call("POST", "/services/create", body=spec, extra_headers=headers) or {}
        for warning in answer.get("Warnings") or []:
            self.warn(warning)
        return self.api.service(answer.get("ID") or self.name)

    def update(self, service: dict[str, Any], desired: dict[str, Any], network_ids: dict[str, str]) -> dict[str, Any]:
        def compare_spec(fresh: dict[str, Any]) -> Comparison:
            current = current_view(fresh.get("Spec") or {}, self.network_names())
            self.refuse_mode_change(current, desired)
            comparison = compare(current, merged_view(desired, current), unordered=UNORDERED)
            self.refuse_conflicts(comparison.after)
            if self.params["force_update"]:
                comparison.tracker.add("force_update", parameter=True, active=False)
            return comparison

        def write(fresh: dict[str, Any], comparison: Comparison) -> None:
            new_spec = copy.deepcopy(fresh.get("Spec") or {})
            apply_view(new_spec, comparison.after, comparison.changes, network_ids, self.params)
            if self.params["force_update"]:
                template = new_spec.setdefault("TaskTemplate", {})
                template["ForceUpdate"] = int(template.get("ForceUpdate") or 0) + 1
            path = service_path(fresh["ID"], "/update")
            image = ((new_spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image")
            query = {"version": fresh["Version"]["Index"]}
            answer = self.api.call("POST", path, query=query, body=new_spec, extra_headers=self.auth_headers(image))
            answer = answer or {}
            for warning in answer.get("Warnings") or []:
                self.warn(warning)

        def read_again() -> dict[str, Any]:
            return self.api.service(service["ID"]) or service

        comparison, fresh = self.converge(service, read_again, compare_spec, write)
        self.record(comparison, ["service updated" if comparison.changes != ["force_update"] else "tasks replaced"])
        if comparison.changed and not self.check_mode:
            return self.api.service(fresh["ID"]) or fresh
        return fresh

    def refuse_conflicts(self, after: dict[str, Any]) -> None:
        """Options that conflict once merged with what the service keeps (nothing has been written yet)."""
        ingress = [p for p in after.get("publish") or [] if p.get("mode") == "ingress"]
        if after.get("endpoint_mode") == "dnsrr" and ingress:
            ports = ", ".join(f"{p['published_port'] or '(any)'}:{p['target_port']}" for p in ingress)
            self.fail(
                f"endpoint_mode=dnsrr gives the service no virtual IP, which the routing mesh needs, and service "
                f"{self.name} publishes {ports} in ingress mode: publish with mode=host, or use endpoint_mode=vip"
            )

    def refuse_mode_change(self, current: dict[str, Any], desired: dict[str, Any]) -> None:
        mode = current["mode"]
        if desired.get("mode") is not None and desired["mode"] != mode:
            self.fail(
                f"service {self.name} is {mode} and cannot become {desired['mode']} in place: remove it first "
                "(state=absent), then create it again"
            )
        conflict = mode_conflict(mode, desired)
        if conflict:
            self.fail(f"service {self.name}: {conflict}")

    def absent(self, service: dict[str, Any] | None) -> dict[str, Any]:
        if service is None:
            return self.result(None)
        self.record_state("service removed", {"state": "present"}, {"state": "absent"})
        if self.check_mode:
            return self.result(service)
        self.api.delete(service_path(service["ID"]))
        if self.params["wait"]:
            timeout = float(self.params["wait_timeout"])
            if not wait_until(lambda: not self.running_tasks(service["ID"]), timeout)[0]:
                self.fail(
                    f"timed out after {timeout:g} s waiting for the tasks of service {self.name} to stop: "
                    f"{len(self.running_tasks(service['ID']))} still running"
                )
        return self.result(None)

    def running_tasks(self, service_id: str) -> list[dict[str, Any]]:
        """The tasks of a removed service that still run (the API no longer resolves its ID in filters)."""
        return [
            t
            for t in self.api.tasks()
            if t.get("ServiceID") == service_id and (t.get("Status") or {}).get("State") in ("starting", "running")
        ]

    # ---- waiting: the API's own view (GET /services?status=true, the _up-to-date task filter, UpdateStatus)
    def read_status(self, service_id: str) -> dict[str, Any]:
        found = [s for s in self.api.services({"id": [service_id]}, status=True) if s.get("ID") == service_id]
        if not found:
            self.fail(f"service {self.name} disappeared while waiting for it to converge")
        return found[0]

    def current_tasks(self, service_id: str, wanted_only: bool = True) -> list[dict[str, Any]]:
        """The service's tasks that run its current spec, as the API counts them (what `docker service
        create` polls); ``wanted_only``: those the swarm still wants running."""
        filters = {"service": [service_id], "_up-to-date": ["true"]}
        if wanted_only:
            filters["desired-state"] = ["running"]
        return self.api.tasks(filters)

    def wait_converged(self, service: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        timeout = float(self.params["wait_timeout"])
        deadline = time.monotonic() + timeout
        settled = None  # task IDs of the last converged poll: twice the same set is converged
        while True:
            service = self.read_status(service["ID"])
            state = (service.get("UpdateStatus") or {}).get("State")
            # a rollback this run caused means the spec asked for did not take; an older one is history
            if state in UPDATE_STOPPED and (state != "rollback_completed" or self.actions):
                message = (service.get("UpdateStatus") or {}).get("Message") or "no details"
                self.fail(f"service {self.name} did not converge: {UPDATE_STOPPED[state]}: {message}", service=service)
            tasks = self.current_tasks(service["ID"])
            done, running, desired = converged(service, tasks)
            if is_job(service):  # a job has converged when its current run completed (docker waits so)
                done = job_done(service)
                tasks = self.current_tasks(service["ID"], wanted_only=False)
            ids = sorted(t["ID"] for t in tasks)
            if done and settled == ids:
                return service, tasks
            settled = ids if done else None
            if time.monotonic() >= deadline:
                self.fail(
                    f"timed out after {timeout:g} s waiting for service {self.name} to converge: {running} of "
                    f"{desired} task(s) running with the current spec" + self.last_task_error(service["ID"]),
                    service=service,
                )
            time.sleep(0.25 if done else 0.5)

    def last_task_error(self, service_id: str) -> str:
        tasks = self.current_tasks(service_id, wanted_only=False)
        tasks.sort(key=lambda t: (t.get("Status") or {}).get("Timestamp") or t.get("UpdatedAt") or "")
        errors = [(t.get("Status") or {}).get("Err") for t in tasks if (t.get("Status") or {}).get("Err")]
        return f"; last task error: {errors[-1]}" if errors else ""


def main() -> None:
    run_task(ServiceTask)


if __name__ == "__main__":
    main()
