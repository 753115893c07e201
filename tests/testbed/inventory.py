"""Ansible inventory and ansible.cfg for the testbed (pure rendering)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import yaml

from testbed.layout import proxy_command


class Named(Protocol):
    name: str
    address: str


def ssh_common_args(known_hosts: Path, proxy: str | None = None) -> str:
    return (
        f"-o ProxyCommand='{proxy or proxy_command()}' -o StrictHostKeyChecking=no "
        f"-o UserKnownHostsFile={known_hosts} -o LogLevel=ERROR"
    )


def render_inventory(
    hosts: list[Named],
    managers: int,
    key_file: Path,
    known_hosts: Path,
    proxy: str | None = None,
    extra_vars: dict[str, Any] | None = None,
) -> str:
    if not 1 <= managers <= len(hosts):
        raise ValueError(f"managers must be between 1 and {len(hosts)}, got {managers}")
    group = {h.name: {"ansible_host": h.address} for h in hosts}
    names = [h.name for h in hosts]
    inventory = {
        "all": {
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(key_file),
                "ansible_ssh_common_args": ssh_common_args(known_hosts, proxy),
                "ansible_python_interpreter": "/usr/bin/python3",
                **(extra_vars or {}),
            },
            "children": {
                "managers": {"hosts": {n: group[n] for n in names[:managers]}},
                "workers": {"hosts": {n: group[n] for n in names[managers:]}},
            },
        }
    }
    return yaml.safe_dump(inventory, sort_keys=False)


def render_ansible_cfg(inventory: Path, ansible_dir: Path, persist_s: int = 15, connect_timeout_s: int = 10) -> str:
    # Ansible would otherwise write ~/.ansible in the shared /root (notes/dataplane.md #13).
    return "\n".join(
        [
            "[defaults]",
            f"inventory = {inventory}",
            f"home = {ansible_dir}",
            f"local_tmp = {ansible_dir}/tmp",
            "remote_tmp = /tmp/.ansible-remote",
            "host_key_checking = False",
            f"timeout = {connect_timeout_s}",
            "interpreter_python = /usr/bin/python3",
            f"collections_path = {ansible_dir}/collections",
            "",
            "[ssh_connection]",
            f"control_path_dir = {ansible_dir}/cp",
            # short persistence: the master and its nc helper live in the controller namespace
            f"ssh_args = -o ControlMaster=auto -o ControlPersist={persist_s}s",
            "pipelining = True",
            "",
        ]
    )
