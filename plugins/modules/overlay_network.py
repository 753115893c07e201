#!/usr/bin/python
# Copyright: shoal developers
# Apache License 2.0 (see galaxy.yml)
from __future__ import annotations

DOCUMENTATION = r"""
module: overlay_network
short_description: Create and remove overlay networks of a shoal swarm
version_added: 0.1.0
description:
  - Manages one overlay network of a shoal swarm (VXLAN across the nodes), shaped after
    C(docker network create --driver overlay) and C(docker network rm).
  - The task must run on a manager (use C(delegate_to) and C(run_once)).
  - Only the options you give are compared with the network in place; an option left out keeps its value (on
    creation, the swarm chooses the next free /24 of its address pool and its first address as the gateway).
  - A network cannot change in place. When it differs, the module removes it and creates it again, but only when
    no service uses it; otherwise it fails with a message naming those services and changes nothing. With
    O(force=true) it tries anyway, and fails just as clearly when the swarm refuses to remove a network in use.
    Nothing is half applied. If the new network cannot be created after the old one was removed, the old one
    is created again (with a new ID) and the task fails.
  - The swarm's C(ingress) network (the routing mesh) and local networks such as C(shoal_gwbridge) cannot be
    managed with this module.
author:
  - shoal developers (@shoal-swarm)
extends_documentation_fragment:
  - shoal.swarm.shoal
  - shoal.swarm.shoal.attributes
attributes:
  check_mode:
    support: full
    details: In check mode, a network that services use makes a warning instead of a failure, since earlier tasks
      of the play may have removed those services.
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  name:
    description:
      - Name of the network.
    type: str
    required: true
  state:
    description:
      - V(present) creates the network (or creates it again when it differs); V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  subnet:
    description:
      - IPv4 subnet in CIDR notation, such as V(10.0.9.0/24) (at most a /29). It must not overlap another network.
    type: str
  gateway:
    description:
      - Gateway address of the subnet (default its first address).
    type: str
  attachable:
    description:
      - Whether standalone tasks may attach to the network.
    type: bool
  internal:
    description:
      - Whether the network is cut off from outside traffic (no gateway leg for its tasks).
    type: bool
  labels:
    description:
      - Labels of the network (strings; other values are turned into strings).
    type: dict
  encrypted:
    description:
      - Whether the VXLAN traffic of the network between nodes is encrypted with IPsec ESP (AES-GCM), as
        C(docker network create --opt encrypted).
      - The swarm refuses it, and the task fails with its reason, when a node's kernel has no ESP or
        C(rfc4106(gcm(aes))); shoal never creates such a network unencrypted.
    type: bool
  force:
    description:
      - Remove and create the network again when it differs even though services use it (the swarm still refuses
        to remove a network in use, and the task then fails without changing anything).
    type: bool
    default: false
seealso:
  - module: shoal.swarm.swarm_service
  - module: shoal.swarm.swarm_info
"""

EXAMPLES = r"""
- name: A network for the back end
  shoal.swarm.overlay_network:
    name: backend
    subnet: 10.0.9.0/24
    labels:
      tier: back
  delegate_to: "{{ groups['managers'][0] }}"
  run_once: true

- name: An internal network, subnet chosen by the swarm
  shoal.swarm.overlay_network:
    name: private
    internal: true

- name: Remove it (fails while a service uses it)
  shoal.swarm.overlay_network:
    name: private
    state: absent
"""

RETURN = r"""
network_id:
  description: ID of the network (empty when it does not exist, or in check mode before it is created).
  returned: always
  type: str
  sample: 8ccnt7axqlpnwhjy4jbcrx2vf
network:
  description: The network as C(GET /networks/{id}) shows it (Docker's C(Network) object).
  returned: when the network exists
  type: dict
  sample: {"Name": "backend", "Id": "8ccnt7axqlpnwhjy4jbcrx2vf", "Driver": "overlay", "Scope": "swarm"}
actions:
  description: What was done (or would be done in check mode).
  returned: always
  type: list
  elements: str
  sample: [network removed and created again]
changes:
  description: Names of the options whose values differ from the network in place (V(state) for a creation or removal).
  returned: always
  type: list
  elements: str
  sample: [subnet]
"""

import ipaddress  # noqa: E402
import re  # noqa: E402
from typing import Any  # noqa: E402

from ansible_collections.shoal.swarm.plugins.module_utils._shoal_api import (  # noqa: E402
    ShoalAPIError,
    ShoalClient,
    label_map,
    network_path,
)
from ansible_collections.shoal.swarm.plugins.module_utils._shoal_diff import compare  # noqa: E402
from ansible_collections.shoal.swarm.plugins.module_utils._shoal_runner import (  # noqa: E402
    ParamError,
    ShoalTask,
    run_task,
)

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
OPTIONS = ("subnet", "gateway", "attachable", "internal", "labels", "encrypted")
ENCRYPTED = "encrypted"  # Docker's driver option: present means encrypted, whatever its value


def check_addresses(params: dict[str, Any]) -> None:
    """The subnet and the gateway are usable together (the argument spec already requires a subnet for a gateway)."""
    name = params["name"]
    if not NAME_RE.match(name) or len(name) > 63:
        raise ParamError(
            f"invalid network name {name!r}: use letters, digits, '_', '.' and '-' (at most 63 characters)"
        )
    if params.get("subnet") is None:
        return
    try:
        subnet = ipaddress.ip_network(params["subnet"], strict=True)
    except ValueError as exc:
        raise ParamError(f"invalid subnet {params['subnet']!r}: {exc}") from None
    if subnet.version != 4 or subnet.prefixlen > 29:
        raise ParamError(f"invalid subnet {params['subnet']}: an IPv4 subnet of /29 or larger is needed")
    if params.get("gateway") is None:
        return
    try:
        gateway = ipaddress.ip_address(params["gateway"])
    except ValueError:
        raise ParamError(f"invalid gateway {params['gateway']!r}: an IPv4 address is expected") from None
    if gateway not in subnet or gateway in (subnet.network_address, subnet.broadcast_address):
        raise ParamError(f"gateway {gateway} is not a usable address of subnet {subnet}")


def network_view(network: dict[str, Any]) -> dict[str, Any]:
    config = ((network.get("IPAM") or {}).get("Config") or [{}])[0] or {}
    return {
        "subnet": config.get("Subnet"),
        "gateway": config.get("Gateway"),
        "attachable": bool(network.get("Attachable")),
        "internal": bool(network.get("Internal")),
        "labels": dict(network.get("Labels") or {}),
        "encrypted": ENCRYPTED in (network.get("Options") or {}),
    }


def desired_view(params: dict[str, Any]) -> dict[str, Any]:
    view = {name: params.get(name) for name in OPTIONS}
    if view["subnet"] is not None:
        view["subnet"] = str(ipaddress.ip_network(view["subnet"]))
    if view["labels"] is not None:
        view["labels"] = label_map(view["labels"])
    return view


def create_body(name: str, view: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"Name": name, "Driver": "overlay", "CheckDuplicate": True}
    for option, field in (("internal", "Internal"), ("attachable", "Attachable"), ("labels", "Labels")):
        if view.get(option) is not None:
            body[field] = view[option]
    config = {
        field: view[option] for option, field in (("subnet", "Subnet"), ("gateway", "Gateway")) if view.get(option)
    }
    if config:
        body["IPAM"] = {"Driver": "default", "Config": [config]}
    if view.get("encrypted"):
        body["Options"] = {ENCRYPTED: ""}
    return body


def users_of(api: ShoalClient, network: dict[str, Any]) -> list[str]:
    """Names of the services attached to ``network`` (as the swarm counts them when it removes one)."""
    network_id = network.get("Id")
    users = []
    for service in api.services():
        template = (service.get("Spec") or {}).get("TaskTemplate") or {}
        vips = (service.get("Endpoint") or {}).get("VirtualIPs") or []
        if any(a.get("Target") in (network_id, network.get("Name")) for a in template.get("Networks") or []) or any(
            v.get("NetworkID") == network_id for v in vips
        ):
            users.append((service.get("Spec") or {}).get("Name") or service.get("ID", "?"))
    return sorted(users)


class NetworkTask(ShoalTask):
    rules = {"required_by": {"gateway": "subnet"}}
    state_options = {"present": OPTIONS}

    @staticmethod
    def argument_spec() -> dict[str, Any]:
        return {
            "name": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "subnet": {"type": "str"},
            "gateway": {"type": "str"},
            "attachable": {"type": "bool"},
            "internal": {"type": "bool"},
            "labels": {"type": "dict"},
            "encrypted": {"type": "bool"},
            "force": {"type": "bool", "default": False},
        }

    def validate(self) -> None:
        check_addresses(self.params)

    @property
    def name(self) -> str:
        return self.params["name"]

    def result(self, network: dict[str, Any] | None = None, **facts: Any) -> dict[str, Any]:  # type: ignore[override]
        return super().result(network_id=(network or {}).get("Id", ""), network=network, **facts)

    def run(self) -> dict[str, Any]:
        network = self.api.network(self.name)
        if network is not None and (network.get("Ingress") or network.get("Scope") != "swarm"):
            what = "the routing mesh's network" if network.get("Ingress") else f"a {network.get('Scope')} network"
            self.fail(f"network {self.name} is {what} and cannot be managed with this module")
        if self.params["state"] == "absent":
            return self.absent(network)
        desired = desired_view(self.params)
        if network is None:
            return self.create(desired)
        return self.present(network, desired)

    def create(self, desired: dict[str, Any]) -> dict[str, Any]:
        given = {k: v for k, v in desired.items() if v is not None}
        self.record_state("network created", {"state": "absent"}, {"state": "present", **given})
        if self.check_mode:
            return self.result(None)
        answer = self.api.post("/networks/create", create_body(self.name, desired)) or {}
        if answer.get("Warning"):
            self.warn(answer["Warning"])
        return self.result(self.api.network(answer.get("Id") or self.name))

    def in_use(self, network: dict[str, Any], what: str) -> None:
        """Refuse (or, in check mode, warn) when services use the network."""
        users = users_of(self.api, network)
        if not users:
            return
        message = f"network {self.name} is used by service(s) {', '.join(users)}: {what}"
        if self.check_mode:
            self.warn(message)
        else:
            self.fail(message, services=users)

    def present(self, network: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
        current = network_view(network)
        comparison = compare(current, desired)
        self.diff = comparison.diff
        if not comparison.changed:
            return self.result(network)
        if desired["subnet"] is not None and desired["gateway"] is None and "subnet" in comparison.changes:
            # the swarm gives a new subnet its first address as the gateway
            comparison.after["gateway"] = str(ipaddress.ip_network(desired["subnet"]).network_address + 1)
        change = ", ".join(
            f"{name} {comparison.before.get(name)!r} -> {comparison.after.get(name)!r}" for name in comparison.changes
        )
        if not self.params["force"]:
            self.in_use(
                network,
                f"it cannot change in place ({change}) and is not removed while they use it. Remove or detach "
                "those services first (or set force=true to try anyway; the swarm refuses while they use it)",
            )
        self.check_subnet_free(network, comparison.after)
        self.record(comparison, ["network removed and created again"])
        if self.check_mode:
            return self.result(network)
        try:
            self.api.delete(network_path(network["Id"]))
        except ShoalAPIError as exc:
            self.actions.clear()
            self.fail(
                f"network {self.name} cannot change in place ({change}), and the swarm refused to remove it: "
                f"{exc.message}. Nothing was changed.",
                status=exc.status,
            )
        try:
            answer = self.api.post("/networks/create", create_body(self.name, comparison.after)) or {}
        except ShoalAPIError as exc:
            restored = self.restore(current)
            self.fail(
                f"network {self.name} was removed to be created again, but the swarm refused the new one: "
                f"{exc.message}. "
                + (
                    "The old network was created again (with a new ID)."
                    if restored
                    else "Creating the old one again failed too: the network is gone."
                ),
                changed=not restored,
                status=exc.status,
            )
        return self.result(self.api.network(answer.get("Id") or self.name))

    def check_subnet_free(self, network: dict[str, Any], after: dict[str, Any]) -> None:
        """A new subnet must not overlap the other networks' (checked before the old network is removed)."""
        if after.get("subnet") == network_view(network)["subnet"] or not after.get("subnet"):
            return
        wanted = ipaddress.ip_network(after["subnet"])
        for other in self.api.networks():
            if other.get("Id") == network.get("Id") or other.get("Scope") != "swarm":
                continue
            for config in (other.get("IPAM") or {}).get("Config") or []:
                try:
                    theirs = ipaddress.ip_network(config.get("Subnet") or "", strict=False)
                except ValueError:
                    continue
                if theirs.overlaps(wanted):
                    self.fail(f"subnet {wanted} overlaps with the subnet of network {other.get('Name')} ({theirs})")

    def restore(self, view: dict[str, Any]) -> bool:
        try:
            self.api.post("/networks/create", create_body(self.name, view))
            return True
        except ShoalAPIError:
            return False

    def absent(self, network: dict[str, Any] | None) -> dict[str, Any]:
        if network is None:
            return self.result(None)
        self.in_use(network, "the swarm does not remove a network in use; remove or detach those services first")
        self.record_state("network removed", {"state": "present", **network_view(network)}, {"state": "absent"})
        if not self.check_mode:
            self.api.delete(network_path(network["Id"]))
        return self.result(None)


def main() -> None:
    run_task(NetworkTask)


if __name__ == "__main__":
    main()
