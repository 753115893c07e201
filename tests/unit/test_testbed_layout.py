"""Pure helpers of the testbed: names, addresses, inventory rendering."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from testbed.inventory import render_ansible_cfg, render_inventory
from testbed.layout import host_layout


def test_host_layout_names_and_addresses() -> None:
    h = host_layout(2, Path("/s"))
    assert (h.name, h.netns, h.address, h.fabric_port) == ("swarm02", "shoal-swarm02", "10.213.0.12", "v-swarm02")
    assert h.socket_path == Path("/s/hosts/swarm02/run/shoal.sock")
    assert len(h.fabric_port) <= 15


@pytest.mark.parametrize("bad", [-1, 90])
def test_host_layout_refuses_out_of_range(bad: int) -> None:
    with pytest.raises(ValueError):
        host_layout(bad)


def test_inventory_groups_and_proxy() -> None:
    hosts = [host_layout(i, Path("/s")) for i in range(3)]
    inv = yaml.safe_load(render_inventory(hosts, 2, Path("/k"), Path("/kh")))["all"]
    assert list(inv["children"]["managers"]["hosts"]) == ["swarm00", "swarm01"]
    assert inv["children"]["workers"]["hosts"] == {"swarm02": {"ansible_host": "10.213.0.12"}}
    assert "ip netns exec shoal-ctl nc %h %p" in inv["vars"]["ansible_ssh_common_args"]


def test_inventory_refuses_bad_manager_count() -> None:
    with pytest.raises(ValueError, match="managers"):
        render_inventory([host_layout(0)], 2, Path("/k"), Path("/kh"))


def test_ansible_cfg_keeps_ansible_dirs_in_project() -> None:
    cfg = render_ansible_cfg(Path("/p/inv.yml"), Path("/p/ansible"))
    for key in ("home = /p/ansible", "local_tmp = /p/ansible/tmp", "control_path_dir = /p/ansible/cp"):
        assert key in cfg


def test_cgroup_mount_steps_copy_v1_hierarchies() -> None:
    from testbed.bed import cgroup_mount_steps

    mounts = (
        "tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0\n"
        "cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n"
        "proc /proc proc rw 0 0\n"
    )
    steps = cgroup_mount_steps(mounts)
    assert steps == [
        "mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup",
        "mkdir -p /sys/fs/cgroup/memory && mount -t cgroup -o rw,relatime,memory cgroup /sys/fs/cgroup/memory",
    ]
    assert cgroup_mount_steps("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n") == [
        "mkdir -p /sys/fs/cgroup && mount -t cgroup2 -o rw cgroup2 /sys/fs/cgroup"
    ]
