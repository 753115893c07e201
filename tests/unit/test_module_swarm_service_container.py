"""swarm_service's container options (mounts, dns*, hosts, sysctls, ulimits, cap_add/cap_drop, init,
read_only) against a fake agent with shoal's own spec validation: the spec they make, idempotence,
check and diff mode, bad arguments and the agent's refusals."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from unit.test_module_support import FakeAgent, module_runner, serve_fake_agent

from ansible_collections.shoal.swarm.plugins.modules import swarm_service  # isort: skip

DB: dict[str, Any] = {
    "name": "db",
    "image": "shoal/host",
    "mounts": [
        {"source": "pgdata", "target": "/var/lib/db", "type": "volume", "labels": {"app": "db"}},
        {"source": "/etc/db", "target": "/etc/db", "readonly": True, "propagation": "rslave"},
        {"target": "/run/scratch", "type": "tmpfs", "tmpfs_size": "64M", "tmpfs_mode": 0o1777},
    ],
    "dns": ["10.0.0.2"],
    "dns_search": ["example.org"],
    "dns_options": ["timeout:2"],
    "hosts": {"ldap": "10.0.0.20"},
    "sysctls": {"net.core.somaxconn": 1024},
    "ulimits": ["nofile:4096:8192"],
    "cap_add": ["NET_ADMIN"],
    "cap_drop": ["NET_RAW"],
    "init": True,
    "read_only": True,
}


@pytest.fixture
def agent() -> Iterator[FakeAgent]:
    with serve_fake_agent() as fake:
        yield fake.enable_workloads()


@pytest.fixture
def run(agent: FakeAgent):
    return module_runner(swarm_service, agent)


def container(agent: FakeAgent, name: str = "db") -> dict[str, Any]:
    return agent.find_service(name)["Spec"]["TaskTemplate"]["ContainerSpec"]


def test_create_writes_docker_shapes_and_a_second_run_changes_nothing(agent: FakeAgent, run) -> None:
    failed, result = run(**DB)
    assert not failed and result["changed"], result
    c = container(agent)
    assert c["Mounts"] == [
        {"Type": "volume", "Source": "pgdata", "Target": "/var/lib/db", "VolumeOptions": {"Labels": {"app": "db"}}},
        {
            "Type": "bind",
            "Source": "/etc/db",
            "Target": "/etc/db",
            "ReadOnly": True,
            "BindOptions": {"Propagation": "rslave"},
        },
        {
            "Type": "tmpfs",
            "Source": "",
            "Target": "/run/scratch",
            "TmpfsOptions": {"SizeBytes": 64 << 20, "Mode": 0o1777},
        },
    ]
    assert c["DNSConfig"] == {"Nameservers": ["10.0.0.2"], "Search": ["example.org"], "Options": ["timeout:2"]}
    assert c["Hosts"] == ["10.0.0.20 ldap"]
    assert c["Sysctls"] == {"net.core.somaxconn": "1024"}
    assert c["Ulimits"] == [{"Name": "nofile", "Soft": 4096, "Hard": 8192}]
    assert (c["CapabilityAdd"], c["CapabilityDrop"], c["Init"], c["ReadOnly"]) == (
        ["NET_ADMIN"],
        ["NET_RAW"],
        True,
        True,
    )
    version = agent.find_service("db")["Version"]["Index"]
    failed, result = run(**DB)
    assert not failed and not result["changed"], result
    assert agent.find_service("db")["Version"]["Index"] == version


def test_a_changed_mount_is_an_update_with_a_diff_and_check_mode_writes_nothing(agent: FakeAgent, run) -> None:
    run(**DB)
    version = agent.find_service("db")["Version"]["Index"]
    mounts = [{**DB["mounts"][0], "no_copy": True}, *DB["mounts"][1:]]
    failed, result = run(check=True, diff=True, **{**DB, "mounts": mounts, "hosts": {"ldap": "10.0.0.21"}})
    assert not failed and result["changed"] and result["changes"] == ["mounts", "hosts"], result
    assert result["diff"]["before"]["hosts"] == {"ldap": "10.0.0.20"}
    assert result["diff"]["after"]["mounts"][0]["no_copy"] is True
    assert agent.find_service("db")["Version"]["Index"] == version
    failed, result = run(**{**DB, "mounts": mounts})
    assert not failed and result["changes"] == ["mounts"], result
    assert container(agent)["Mounts"][0]["VolumeOptions"] == {"NoCopy": True, "Labels": {"app": "db"}}


def test_empty_values_clear_and_unset_options_stay(agent: FakeAgent, run) -> None:
    run(**DB)
    failed, result = run(name="db", mounts=[], hosts={}, dns=[], init=False)
    assert not failed and sorted(result["changes"]) == ["dns", "hosts", "init", "mounts"], result
    c = container(agent)
    assert "Mounts" not in c and "Hosts" not in c and "Init" not in c
    assert c["DNSConfig"] == {"Search": ["example.org"], "Options": ["timeout:2"]} and c["ReadOnly"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"ulimits": ["nofile"]}, "is not type:soft[:hard]"),
        (
            {"mounts": [{"target": "/x", "type": "tmpfs", "tmpfs_size": "lots"}]},
            "mounts[0].tmpfs_size: 'lots' is not a size",
        ),
        ({"mounts": [{"source": "/x", "target": "/proc/x"}]}, "cannot be mounted because it is inside /proc"),
        ({"mounts": [{"source": "/x", "target": "/a"}, {"source": "/y", "target": "/a"}]}, "duplicate mount point: /a"),
        ({"sysctls": {"kernel.hostname": "x"}}, "sysctl 'kernel.hostname=x' is not allowed"),
        ({"hosts": {"db": "not-an-ip"}}, "invalid IP address in add-host"),
        ({"dns": ["x.y"]}, "x.y is not an ip address"),
    ],
)
def test_bad_arguments_fail_clearly_and_create_nothing(agent: FakeAgent, run, args: dict[str, Any], message) -> None:
    failed, result = run(name="db", image="shoal/host", **args)
    assert failed and message in result["msg"], result
    assert agent.services == []
