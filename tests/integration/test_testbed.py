"""The testbed behaves like three separate hosts and leaves the machine as it was."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from integration.conftest import root_network_snapshot
from testbed import procs
from testbed.bed import Testbed
from testbed.layout import PREFIX, VENV_BIN

HOSTS = ["swarm00", "swarm01", "swarm02"]


def test_ssh_returns_each_hosts_own_hostname(bed: Testbed) -> None:
    for name in HOSTS:
        out = subprocess.run(bed.ssh_argv(name, ["hostname"]), capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == name


def test_hosts_ping_each_other_and_root_routes_unchanged(bed: Testbed, root_before: dict[str, str]) -> None:
    for src in HOSTS:
        for dst in bed.hosts():
            res = bed.run(src, ["ping", "-c", "1", "-W", "2", dst.address])
            assert res.returncode == 0, f"{src} -> {dst.name}: {res.stdout}{res.stderr}"
    # no default route inside a host: only the underlay's connected route
    routes = bed.run("swarm01", ["ip", "route", "show"]).stdout
    assert "default" not in routes and "10.213.0.0/24" in routes
    assert root_network_snapshot() == root_before


def test_private_etc_shoal_per_host(bed: Testbed) -> None:
    marker = f"written-on-swarm00-{os.getpid()}"
    assert bed.run("swarm00", ["sh", "-c", f"echo {marker} > /etc/shoal/marker"]).returncode == 0
    assert bed.run("swarm00", ["cat", "/etc/shoal/marker"]).stdout.strip() == marker
    for other in ("swarm01", "swarm02"):
        assert bed.run(other, ["test", "-e", "/etc/shoal/marker"]).returncode == 1
    assert not Path("/etc/shoal/marker").exists()
    bed.run("swarm00", ["rm", "-f", "/etc/shoal/marker"])


def test_exec_has_venv_on_path_and_returns_exit_code(bed: Testbed) -> None:
    res = bed.run("swarm02", ["sh", "-c", "command -v shoal; hostname; exit 7"])
    assert res.returncode == 7
    assert res.stdout.split() == [str(VENV_BIN / "shoal"), "swarm02"]


def test_ansible_ping_through_generated_inventory(bed: Testbed, ansible_env: dict[str, str]) -> None:
    res = subprocess.run(
        [str(VENV_BIN / "ansible"), "all", "-m", "ping", "-o"],
        env=ansible_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    for name in HOSTS:
        assert f"{name} | SUCCESS" in res.stdout
    groups = subprocess.run(
        [str(VENV_BIN / "ansible-inventory"), "--graph"], env=ansible_env, capture_output=True, text=True, timeout=60
    ).stdout
    assert "@managers:\n  |  |--swarm00" in groups.replace("|  |--", "|  |--")


def test_cut_and_heal_underlay_link(bed: Testbed) -> None:
    bed.set_link("swarm02", up=False)
    try:
        assert bed.run("swarm00", ["ping", "-c", "1", "-W", "1", "10.213.0.12"]).returncode != 0
    finally:
        bed.set_link("swarm02", up=True)
    assert bed.run("swarm00", ["ping", "-c", "1", "-W", "2", "10.213.0.12"]).returncode == 0


def test_down_removes_everything_then_up_again(bed: Testbed, root_before: dict[str, str]) -> None:
    st = bed.state()
    assert st is not None
    pids = [p for h in st.hosts for p in (h.holder_pid, h.sshd_pid)]
    bed.down()
    assert not [n for n in _netns() if n.startswith(PREFIX)]
    assert not any(procs.alive(p) for p in pids)
    assert "shoal-run" not in Path("/proc/self/mounts").read_text()
    assert not bed.state_dir.exists()
    assert root_network_snapshot() == root_before
    bed.up(3)  # later tests in the session expect the hosts
    assert bed.healthy()


def _netns() -> list[str]:
    return [
        line.split()[0]
        for line in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.splitlines()
        if line.strip()
    ]
