"""Integration fixtures: one testbed for the whole session, torn down at the end."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from testbed.bed import Testbed
from testbed.lock import testbed_lock


def root_network_snapshot() -> dict[str, str]:
    """What the root namespace must still look like after the testbed ran (network safety)."""

    def out(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    return {
        "routes4": out("ip", "-4", "route", "show", "table", "all"),
        "routes6": out("ip", "-6", "route", "show", "table", "main"),
        "links": out("ip", "-o", "link", "show").count("\n").__str__(),
        "ip_forward": open("/proc/sys/net/ipv4/ip_forward").read(),
    }


@pytest.fixture(scope="session")
def root_before() -> dict[str, str]:
    return root_network_snapshot()


@pytest.fixture(scope="session")
def bed(root_before: dict[str, str]) -> Iterator[Testbed]:
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (namespaces, mounts, sshd)")
    testbed = Testbed()
    with testbed_lock():
        testbed.down()  # whatever an earlier session left (agents, tasks) must not leak into this one
        testbed.up(3)
        try:
            yield testbed
        finally:
            testbed.down()


@pytest.fixture
def ansible_env(bed: Testbed) -> dict[str, str]:
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(bed.ansible_cfg_path)
    env["ANSIBLE_FORCE_COLOR"] = "0"
    return env
