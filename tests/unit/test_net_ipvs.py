"""The IPVS backend's pure parts: marks, virtual servers, the change plan, the nft tables, the choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal import config
from shoal.net import ipvs, lb
from shoal.net.dataplane import choose_backend
from shoal.net.model import DataplaneError, Published, ServiceLB

SVC = "s" * 25
NET = "n" * 25


def _state(backends: list[str], vip: str = "10.0.1.2") -> lb.State:
    return lb.normalise([ServiceLB(SVC, NET, vip, [(80, "tcp")], backends)])


def test_vip_mark_is_the_address_and_unique() -> None:
    assert ipvs.vip_mark("10.0.1.2") == 0x0A000102
    assert ipvs.vip_mark("10.0.1.3") != ipvs.vip_mark("10.0.1.2")


def test_task_servers_round_robin_every_port_over_running_tasks() -> None:
    servers = ipvs.task_servers(_state(["10.0.1.6", "10.0.1.5", "10.0.1.5"]))
    assert servers == {0x0A000102: ipvs.VirtualServer(0x0A000102, (("10.0.1.5", 0), ("10.0.1.6", 0)))}


def test_vip_without_tasks_has_no_server_and_is_rejected() -> None:
    state = _state([])
    assert ipvs.task_servers(state) == {}
    doc = str(ipvs.task_ruleset(state))
    assert "'elem': ['10.0.1.2']" in doc and "reject" in doc


def test_task_ruleset_marks_the_vip() -> None:
    cmds = ipvs.task_ruleset(_state(["10.0.1.5"]))
    maps = [c["add"]["map"] for c in cmds if "map" in c.get("add", {})]
    assert maps == [
        {"family": "ip", "table": "shoal_lb", "name": "marks", "type": "ipv4_addr", "map": "mark",
         "elem": [["10.0.1.2", 0x0A000102]]}
    ]  # fmt: skip


def test_ingress_servers_go_to_the_target_port() -> None:
    pub = [
        Published(80, "tcp", 8080, "ingress", ["10.0.0.6", "10.0.0.5"]),
        Published(81, "tcp", 81, "ingress", []),
        Published(82, "tcp", 82, "host", ["10.0.0.5"]),
    ]
    servers = ipvs.ingress_servers(pub)
    mark = ipvs.ingress_mark("tcp", 80)
    assert servers == {mark: ipvs.VirtualServer(mark, (("10.0.0.5", 8080), ("10.0.0.6", 8080)))}
    assert ipvs.ingress_mark("udp", 80) != mark


def test_plan_changes_only_what_differs() -> None:
    old = {1: ipvs.VirtualServer(1, (("a", 0), ("b", 0))), 2: ipvs.VirtualServer(2, (("c", 0),))}
    new = {1: ipvs.VirtualServer(1, (("b", 0), ("d", 0))), 3: ipvs.VirtualServer(3, (("e", 0),))}
    assert ipvs.plan(old, new) == [
        ("del-service", 2, ()),
        ("del-dest", 1, ("a", 0)),
        ("add-dest", 1, ("d", 0)),
        ("add-service", 3, ()),
        ("add-dest", 3, ("e", 0)),
    ]
    assert ipvs.plan(new, new) == []


def test_choose_backend() -> None:
    assert choose_backend("auto", lambda: True) == "ipvs"
    assert choose_backend("auto", lambda: False) == "nftables"
    assert choose_backend("nftables", lambda: True) == "nftables"
    with pytest.raises(DataplaneError, match="no ip_vs"):
        choose_backend("ipvs", lambda: False)
    with pytest.raises(DataplaneError, match="unknown load balancer backend"):
        choose_backend("haproxy", lambda: True)


def test_config_lb_backend(tmp_path: Path) -> None:
    path = tmp_path / "shoald.yml"
    path.write_text("lb_backend: IPVS\n")
    assert config.load(path).lb_backend == "ipvs"
    assert config.load(None).lb_backend == "auto"
    path.write_text("lb_backend: lvs\n")
    with pytest.raises(config.ConfigError, match="lb_backend"):
        config.load(path)
