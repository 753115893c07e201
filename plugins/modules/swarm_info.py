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
  - Works on any node. Managers answer every list; workers answer the node list through a manager. By default
    the module reads the lists the node can answer; a list asked for explicitly that the agent refuses (a
    worker asked for services, or an agent that does not serve a list) fails with the agent's message.
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
    description:
      - Return the swarm's nodes in RV(nodes); V(false) does not read them.
      - Left out, they are read when the node can answer (any node of a swarm).
      - V(true) on a node that cannot answer fails with the agent's message.
    type: bool
  nodes_filters:
    description:
      - Filters for the node list, as C(docker node ls --filter) takes them (C(role), C(name), C(node.label), ...).
    type: dict
  services:
    description:
      - Return the swarm's services in RV(services); V(false) does not read them.
      - Left out, they are read when the node can answer (managers).
      - V(true) on a node that cannot answer fails with the agent's message.
    type: bool
  services_filters:
    description: Filters for the service list (C(name), C(label), C(mode), ...).
    type: dict
  tasks:
    description:
      - Return the swarm's tasks in RV(tasks); V(false) does not read them.
      - Left out, they are read when the node can answer (managers).
      - V(true) on a node that cannot answer fails with the agent's message.
    type: bool
  tasks_filters:
    description: Filters for the task list (C(node), C(service), C(desired-state), ...).
    type: dict
  networks:
    description:
      - Return the swarm's networks in RV(networks); V(false) does not read them.
      - Left out, they are read when the node can answer (managers).
      - V(true) on a node that cannot answer fails with the agent's message.
    type: bool
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
    nodes: true
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
  description: The nodes (Docker's C(Node) objects).
  returned: when read (see O(nodes))
  type: list
  elements: dict
services:
  description: The services (Docker's C(Service) objects).
  returned: when read (see O(services))
  type: list
  elements: dict
tasks:
  description: The tasks (Docker's C(Task) objects).
  returned: when read (see O(tasks))
  type: list
  elements: dict
networks:
  description: The networks (Docker's C(Network) objects).
  returned: when read (see O(networks))
  type: list
  elements: dict
"""

from typing import Any  # noqa: E402

from ansible_collections.shoal.swarm.plugins.module_utils._shoal_api import (  # noqa: E402
    AgentUnreachable,
    ShoalAPIError,
)
from ansible_collections.shoal.swarm.plugins.module_utils._shoal_runner import (  # noqa: E402
    ParamError,
    ShoalTask,
    run_task,
)

LISTS = ("nodes", "services", "tasks", "networks")


def normalise_filters(filters: dict[str, Any] | None) -> dict[str, list[str]] | None:
    """Docker filters: every value a list of strings (a single value is accepted)."""
    if not filters:
        return None
    out: dict[str, list[str]] = {}
    for key, value in filters.items():
        values = value if isinstance(value, list) else [value]
        out[str(key)] = [("true" if v else "false") if isinstance(v, bool) else str(v) for v in values]
    return out


class InfoTask(ShoalTask):
    @staticmethod
    def argument_spec() -> dict[str, Any]:
        spec: dict[str, Any] = {}
        for name in LISTS:
            spec[name] = {"type": "bool"}
            spec[f"{name}_filters"] = {"type": "dict"}
        return spec

    def validate(self) -> None:
        ignored = [f"{n}_filters" for n in LISTS if self.params[n] is False and self.params[f"{n}_filters"]]
        if ignored:
            raise ParamError(f"{', '.join(ignored)} given, but the list is not read ({ignored[0][:-8]}=false)")

    def run(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "changed": False,
            "can_talk_to_agent": False,
            "swarm_active": False,
            "is_manager": False,
            "local_node_state": "",
            "node_id": "",
            "cluster_id": "",
        }
        try:
            info = self.api.info()
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
        if result["is_manager"]:
            try:
                facts = self.api.swarm()
                result["swarm_facts"] = {k: v for k, v in facts.items() if k != "JoinTokens"}
                result["cluster_id"] = facts.get("ID", result["cluster_id"])
            except ShoalAPIError as exc:  # an election under way: the facts above still hold
                self.warn(f"could not read the swarm: {exc.message}")
        for name in LISTS:
            asked = self.params[name]
            if asked is None:  # by default, what the node can answer
                asked = result["is_manager"] or (name == "nodes" and result["swarm_active"])
            if asked:  # an agent that refuses (404, 503) fails the task with its message
                result[name] = self.api.get(f"/{name}", filters=normalise_filters(self.params[f"{name}_filters"])) or []
        return result


def main() -> None:
    run_task(InfoTask)


if __name__ == "__main__":
    main()
