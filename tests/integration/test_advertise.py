"""Advertise-address auto-detection on a host with shoal's own bridge: the bridge's address is not a
candidate (the chaos suite saw `swarm join` refuse on a worker whose shoal_gwbridge outlived a leave)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

NETNS = f"shoal-advertise-{os.getpid()}"
SRC = Path(__file__).resolve().parents[2] / "agent" / "src"


def sh(*argv: str) -> None:
    subprocess.run(["ip", "-n", NETNS, *argv], check=True, capture_output=True)


def resolve_in_netns() -> subprocess.CompletedProcess[str]:
    code = "from shoal import hostinfo; print(hostinfo.resolve_advertise(None))"
    return subprocess.run(
        ["ip", "netns", "exec", NETNS, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        timeout=30,
    )


@pytest.fixture
def host() -> Iterator[None]:
    """A namespace of our own (no route out): a veth underlay and shoal_gwbridge, both up."""
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    try:
        sh("link", "set", "lo", "up")
        sh("link", "add", "eth0", "type", "veth", "peer", "name", "eth0-peer")
        sh("addr", "add", "10.213.0.250/24", "dev", "eth0")
        sh("link", "set", "eth0", "up")
        sh("link", "set", "eth0-peer", "up")
        sh("link", "add", "shoal_gwbridge", "type", "bridge")
        sh("addr", "add", "172.18.0.1/16", "dev", "shoal_gwbridge")
        sh("link", "set", "shoal_gwbridge", "up")
        yield
    finally:
        subprocess.run(["ip", "netns", "del", NETNS], check=True)


def test_bridge_address_is_not_a_candidate(host: None) -> None:
    out = resolve_in_netns()
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "10.213.0.250"


def test_two_underlay_addresses_still_need_a_choice(host: None) -> None:
    sh("link", "add", "eth1", "type", "veth", "peer", "name", "eth1-peer")
    sh("addr", "add", "10.213.0.251/24", "dev", "eth1")
    sh("link", "set", "eth1", "up")
    sh("link", "set", "eth1-peer", "up")
    out = resolve_in_netns()
    assert out.returncode != 0
    assert "multiple addresses (10.213.0.250, 10.213.0.251)" in out.stderr
    assert "172.18.0.1" not in out.stderr
