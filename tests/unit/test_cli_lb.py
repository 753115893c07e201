"""`shoal lb haproxy`: the rendered HAProxy configuration (exact lines for a 3-node swarm), the
choice of the published port, argument errors, and the command against a real (tiny,
in-process) HTTP server on a unix socket. Where an `haproxy` binary is installed, it checks the
rendered file too (`haproxy -c`)."""

from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.cli.errors import CLIError
from shoal.cli.lb import (
    check_interval,
    haproxy_time,
    lb_servers,
    port_number,
    published_port,
    render_haproxy,
)
from shoal.model.objects import new_node
from unit.test_cli_agent import run
from unit.test_cli_network import FakeNetworks

NOW = "2026-11-27T23:13:48.123456789Z"
REPO = Path(__file__).resolve().parents[2]
NODES = [  # listed out of order: servers come sorted by hostname
    new_node("ickjus9bta1julsad2ls3paum", "swarm01", "worker", "10.213.0.11", NOW),
    new_node("ryc6zlbxrhvblc7lk8pl3jsva", "swarm02", "worker", "10.213.0.12", NOW, state="down"),
    new_node("tkxuxun03da7y2bozka50mpxi", "swarm00", "manager", "10.213.0.10:2377", NOW, leader=True),
]
SERVER_LINES = [
    "    server swarm00 10.213.0.10:80 check inter 2s fall 2 rise 1",
    "    server swarm01 10.213.0.11:80 check inter 2s fall 2 rise 1",
    "    server swarm02 10.213.0.12:80 check inter 2s fall 2 rise 1",
]
EXPECTED = """\
# HAProxy in front of a shoal swarm: written by `shoal lb haproxy`.
# Port 80 on every node.
# The routing mesh answers on every node, whether or not it runs a task, so tasks moving between
# nodes need no change here; regenerate the file when nodes join or leave the swarm.
global
    maxconn 4096

defaults
    mode http
    option redispatch
    retries 3
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend http_front
    bind *:80
    stats uri /haproxy?stats
    default_backend http_back

backend http_back
    balance roundrobin
""" + "".join(line + "\n" for line in SERVER_LINES)


def port(published: int, target: int = 8080, mode: str = "ingress", proto: str = "tcp") -> dict[str, Any]:
    return {"Protocol": proto, "TargetPort": target, "PublishedPort": published, "PublishMode": mode}


def service(name: str, *ports: dict[str, Any]) -> dict[str, Any]:
    return {"ID": "x" * 25, "Spec": {"Name": name}, "Endpoint": {"Ports": list(ports)}}


# --- pure ----------------------------------------------------------------------------------------------


def test_render_for_three_nodes_is_exact() -> None:
    servers, warnings = lb_servers(NODES, 80)
    assert warnings == []
    text = render_haproxy(servers)
    assert text == EXPECTED
    assert [line for line in text.splitlines() if line.lstrip().startswith("server ")] == SERVER_LINES


def test_render_for_a_service_and_other_settings() -> None:
    servers, _ = lb_servers(NODES, 30080)
    text = render_haproxy(
        servers, port=8000, check_interval_ns=500_000_000, service="nodejs", published=30080, target=8080
    )
    lines = text.splitlines()
    assert lines[1] == "# Service nodejs: published port 30080 (target 8080/tcp) on every node."
    assert "    bind *:8000" in lines
    assert [line for line in lines if line.lstrip().startswith("server ")] == [
        f"    server swarm0{i} 10.213.0.1{i}:30080 check inter 500ms fall 2 rise 1" for i in range(3)
    ]


def test_servers_skip_nodes_without_address_and_stay_unique_and_safe() -> None:
    odd = [
        new_node("a" * 25, "web 1#x", "worker", "10.213.0.20", NOW),
        new_node("b" * 25, "web 1#x", "worker", "10.213.0.21", NOW),
        new_node("c" * 25, "lost", "worker", "10.213.0.22", NOW),
        new_node("d" * 25, "zero", "worker", "0.0.0.0", NOW),
    ]
    odd[2]["Status"]["Addr"] = ""
    servers, warnings = lb_servers(odd, 443)
    assert servers == [
        {"name": "web_1_x", "address": "10.213.0.20", "port": 443},
        {"name": f"web_1_x-{'b' * 12}", "address": "10.213.0.21", "port": 443},
    ]
    assert warnings == [
        "WARNING: node lost left out: no underlay address ('')",
        "WARNING: node zero left out: no underlay address ('0.0.0.0')",
    ]


def test_published_port_is_the_first_ingress_tcp_one() -> None:
    svc = service("nodejs", port(53, 53, proto="udp"), port(8081, 81, mode="host"), port(80), port(443, 8443))
    assert published_port(svc)["PublishedPort"] == 80


@pytest.mark.parametrize(
    ("svc", "message"),
    [
        (service("nodejs"), "service nodejs has no published port: publish one first"),
        ({"ID": "x", "Spec": {"Name": "nodejs"}}, "has no published port"),
        (service("nodejs", port(0)), "has no published port"),
        (service("dns", port(53, 53, proto="udp")), r"publishes no TCP port \(53/udp\)"),
        (service("nodejs", port(80, mode="host")), "publishes port 80 in host mode"),
    ],
)
def test_published_port_errors(svc: dict[str, Any], message: str) -> None:
    with pytest.raises(CLIError, match=message):
        published_port(svc)


def test_time_and_argument_types() -> None:
    assert [haproxy_time(ns) for ns in (2 * 10**9, 60 * 10**9, 500 * 10**6, 1_500_000_000, 1_000_001)] == [
        "2s",
        "60s",
        "500ms",
        "1500ms",
        "2ms",
    ]
    assert check_interval("1m") == 60 * 10**9
    assert port_number("65535") == 65535
    for bad in ("0", "65536", "http"):
        with pytest.raises(argparse.ArgumentTypeError, match="invalid port"):
            port_number(bad)
    for bad in ("0", "10us", "-1s", "soon"):
        with pytest.raises(argparse.ArgumentTypeError):
            check_interval(bad)


def test_template_is_package_data() -> None:
    config = tomllib.loads((REPO / "agent" / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["shoal"]
    assert any(fnmatch.fnmatch("cli/templates/haproxy.cfg.j2", g) for g in globs)
    assert (REPO / "agent" / "src" / "shoal" / "cli" / "templates" / "haproxy.cfg.j2").is_file()


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="no haproxy binary installed")
def test_haproxy_accepts_the_rendered_file(tmp_path: Path) -> None:
    servers, _ = lb_servers(NODES, 30080)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(render_haproxy(servers, service="nodejs", published=30080, target=8080))
    done = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


# --- against a fake agent -------------------------------------------------------------------------------


@pytest.fixture
def agent() -> Iterator[FakeNetworks]:
    with tempfile.TemporaryDirectory(prefix="shoallb") as d:
        a = FakeNetworks(os.path.join(d, "shoal.sock"))
        yield a
        a.close()


Cap = pytest.CaptureFixture[str]


def test_without_service_balances_the_frontend_port_on_every_node(agent: FakeNetworks, capsys: Cap) -> None:
    rc, out, err = run(agent, capsys, "lb", "haproxy")
    assert (rc, out, err) == (0, EXPECTED, "")
    assert agent.calls() == ["GET /nodes"]
    rc, out, _ = run(agent, capsys, "lb", "haproxy", "--port", "8080", "--check-interval", "5s")
    assert "    bind *:8080" in out.splitlines()
    assert "    server swarm02 10.213.0.12:8080 check inter 5s fall 2 rise 1" in out.splitlines()


def test_with_service_uses_its_published_port(agent: FakeNetworks, capsys: Cap) -> None:
    agent.add_service("nodejs", [port(30080)])
    rc, out, err = run(agent, capsys, "lb", "haproxy", "--service", "nodejs")
    assert (rc, err) == (0, "")
    lines = out.splitlines()
    assert "    bind *:80" in lines
    assert [line for line in lines if line.lstrip().startswith("server ")] == [
        "    server swarm00 10.213.0.10:30080 check inter 2s fall 2 rise 1",
        "    server swarm01 10.213.0.11:30080 check inter 2s fall 2 rise 1",
        "    server swarm02 10.213.0.12:30080 check inter 2s fall 2 rise 1",
    ]


def test_output_file(agent: FakeNetworks, capsys: Cap, tmp_path: Path) -> None:
    target = tmp_path / "haproxy.cfg"
    target.write_text("old")
    target.chmod(0o600)
    rc, out, err = run(agent, capsys, "lb", "haproxy", "-o", str(target))
    assert (rc, out, err) == (0, "", "")
    assert target.read_text() == EXPECTED
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)  # HAProxy may run as another user
    assert [p.name for p in tmp_path.iterdir()] == ["haproxy.cfg"]
    assert run(agent, capsys, "lb", "haproxy", "--output", "-")[1] == EXPECTED
    missing = tmp_path / "missing" / "haproxy.cfg"
    rc, out, err = run(agent, capsys, "lb", "haproxy", "-o", str(missing))
    assert (rc, out) == (1, "")
    assert err.startswith(f"cannot write {missing}: No such file or directory")


def test_service_errors(agent: FakeNetworks, capsys: Cap) -> None:
    agent.add_service("quiet", [])
    rc, out, err = run(agent, capsys, "lb", "haproxy", "--service", "quiet")
    assert (rc, out) == (1, "")
    assert err.startswith("service quiet has no published port: publish one first")
    rc, out, err = run(agent, capsys, "lb", "haproxy", "--service", "nope")
    assert (rc, out, err) == (1, "", "Error: no such service: nope\n")


def test_no_node_with_an_address(agent: FakeNetworks, capsys: Cap) -> None:
    for n in agent.nodes.values():
        n["Status"]["Addr"] = ""
    rc, out, err = run(agent, capsys, "lb", "haproxy")
    assert (rc, out) == (1, "")
    assert err.splitlines()[-1] == "no node of the swarm has an underlay address to balance to"
    assert err.count("WARNING: node") == 3


def test_usage_errors_exit_2(agent: FakeNetworks, capsys: Cap) -> None:
    for argv in (("--port", "0"), ("--port", "x"), ("--check-interval", "soon"), ("--nope",)):
        with pytest.raises(SystemExit) as e:
            run(agent, capsys, "lb", "haproxy", *argv)
        assert e.value.code == 2
    assert agent.requests == []
    rc, out, _ = run(agent, capsys, "lb")  # the group alone: its help
    assert rc == 0 and "haproxy" in out
