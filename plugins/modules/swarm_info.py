#!/usr/bin/python
# Copyright: shoal developers
# Apache License 2.0 (see galaxy.yml)
from __future__ import annotations

DOCUMENTATION = r"""
module: swarm_info
short_description: Facts about a shoal swarm and the node the task runs on
version_added: 0.1.0
description:
  - Asks the shoal agent of the managed host about its swarm, as C(docker info), C(docker node ls),
    C(docker service ls), C(docker service ps) and C(docker network ls) would.
  - Works on any node. Managers answer everything; workers answer the node list through a manager and
    return empty lists for what they cannot see. Lists the agent does not serve yet are empty.
  - Never fails because the agent is down; RV(can_talk_to_agent) says whether it answered.
author:
  - shoal developers (@shoal-swarm)
extends_documentation_fragment:
  - shoal.swarm.shoal
  - shoal.swarm.shoal.attributes
attributes:
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: N/A
    details: The module only reads.
  idempotent:
    support: full
options:
  nodes:
    description: Return the swarm's nodes in RV(nodes).
    type: bool
    default: true
  nodes_filters:
    description:
      - Filters for the node list, as C(docker node ls --filter) takes them (C(role), C(name), C(node.label), ...).
    type: dict
  services:
    description: Return the swarm's services in RV(services).
    type: bool
    default: true
  services_filters:
    description: Filters for the service list (C(name), C(label), C(mode), ...).
    type: dict
  tasks:
    description: Return the swarm's tasks in RV(tasks).
    type: bool
    default: true
  tasks_filters:
    description: Filters for the task list (C(node), C(service), C(desired-state), ...).
    type: dict
  networks:
    description: Return the swarm's networks in RV(networks).
    type: bool
    default: true
  networks_filters:
    description: Filters for the network list (C(name), C(driver), C(scope), ...).
    type: dict
seealso:
  - module: shoal.swarm.swarm_init
  - module: shoal.swarm.swarm_node
"""

EXAMPLES = r"""
- name: Read the swarm from a manager
  shoal.swarm.swarm_info:
  register: swarm
  delegate_to: "{{ groups['managers'][0] }}"
  run_once: true

- name: Every node is ready
  ansible.builtin.assert:
    that: swarm.nodes | rejectattr('Status.State', 'equalto', 'ready') | list | length == 0

- name: Only the managers, and no tasks or services
  shoal.swarm.swarm_info:
    nodes_filters:
      role: [manager]
    services: false
    tasks: false
    networks: false

- name: Wait until the agent answers
  shoal.swarm.swarm_info:
    nodes: false
    services: false
    tasks: false
    networks: false
  register: agent
  until: agent.can_talk_to_agent
  retries: 30
  delay: 1
"""

RETURN = r"""
can_talk_to_agent:
  description: Whether the shoal agent answered on O(socket_path).
  returned: always
  type: bool
  sample: true
swarm_active:
  description: Whether the node is part of a swarm.
  returned: always
  type: bool
is_manager:
  description: Whether the node is a manager (it can change the swarm).
  returned: always
  type: bool
local_node_state:
  description: The node's swarm state (V(inactive), V(active), V(error)); empty when the agent does not answer.
  returned: always
  type: str
  sample: active
node_id:
  description: The node's ID in the swarm (empty when it is in no swarm).
  returned: always
  type: str
cluster_id:
  description: The swarm's ID (known to managers; empty elsewhere).
  returned: always
  type: str
agent_version:
  description: The agent's version.
  returned: when the agent answers
  type: str
  sample: 0.1.0
host_info:
  description: What C(GET /info) answers (Docker's C(SystemInfo) shape, with the C(Swarm) part).
  returned: when the agent answers
  type: dict
swarm_facts:
  description:
    - The swarm as C(GET /swarm) shows it, without the join tokens (use M(shoal.swarm.swarm_init) to read them).
  returned: on managers
  type: dict
nodes:
  description: The nodes (Docker's C(Node) objects), empty when not asked for or not visible from this node.
  returned: always
  type: list
  elements: dict
services:
  description: The services (Docker's C(Service) objects).
  returned: always
  type: list
  elements: dict
tasks:
  description: The tasks (Docker's C(Task) objects).
  returned: always
  type: list
  elements: dict
networks:
  description: The networks (Docker's C(Network) objects).
  returned: always
  type: list
  elements: dict
"""

from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.shoal.swarm.plugins.module_utils._shoal_api import (  # noqa: E402
    AgentUnreachable,
    ShoalAPIError,
    ShoalClient,
    common_argument_spec,
)

LISTS = ("nodes", "services", "tasks", "networks")


def argument_spec() -> dict[str, Any]:
    spec: dict[str, Any] = {}
    for name in LISTS:
        spec[name] = {"type": "bool", "default": True}
        spec[f"{name}_filters"] = {"type": "dict"}
    spec.update(common_argument_spec())
    return spec


def normalise_filters(filters: dict[str, Any] | None) -> dict[str, list[str]] | None:
    """Docker filters: every value a list of strings (a single value is accepted)."""
    if not filters:
        return None
    out: dict[str, list[str]] = {}
    for key, value in filters.items():
        values = value if isinstance(value, list) else [value]
        out[str(key)] = [("true" if v else "false") if isinstance(v, bool) else str(v) for v in values]
    return out


def gather(api: ShoalClient, params: dict[str, Any], warn: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "changed": False,
        "can_talk_to_agent": False,
        "swarm_active": False,
        "is_manager": False,
        "local_node_state": "",
        "node_id": "",
        "cluster_id": "",
        **{name: [] for name in LISTS},
    }
    try:
        info = api.info()
    except AgentUnreachable as exc:
        result["msg"] = exc.message
        return result
    swarm = info.get("Swarm") or {}
    result.update(
        can_talk_to_agent=True,
        host_info=info,
        agent_version=info.get("ServerVersion", ""),
        local_node_state=swarm.get("LocalNodeState", ""),
        swarm_active=swarm.get("LocalNodeState") == "active",
        is_manager=bool(swarm.get("ControlAvailable")),
        node_id=swarm.get("NodeID", ""),
        cluster_id=(swarm.get("Cluster") or {}).get("ID", ""),
    )
    if not result["swarm_active"]:
        return result
    if result["is_manager"]:
        try:
            facts = api.swarm()
            result["swarm_facts"] = {k: v for k, v in facts.items() if k != "JoinTokens"}
            result["cluster_id"] = facts.get("ID", result["cluster_id"])
        except ShoalAPIError as exc:
            warn(f"could not read the swarm: {exc.message}")
    for name in LISTS:
        if not params[name]:
            continue
        try:
            result[name] = api.get(f"/{name}", filters=normalise_filters(params.get(f"{name}_filters"))) or []
        except AgentUnreachable:
            raise
        except ShoalAPIError as exc:
            if exc.status not in (404, 503):  # not served (yet), or not visible from a worker
                warn(f"could not list {name}: {exc.message}")
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    api = ShoalClient(module.params["socket_path"], module.params["timeout"])
    try:
        result = gather(api, module.params, module.warn)
    except ShoalAPIError as exc:
        module.fail_json(msg=exc.message, status=exc.status)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
