"""The nftables batches of the VIP table and the routing mesh (pure: JSON only)."""

from __future__ import annotations

import json
from typing import Any

from shoal.net import lb, mesh, nft
from shoal.net.model import Published, ServiceLB


def svc(sid: str, vip: str | None, backends: list[str], ports: list[tuple[int, str]] | None = None) -> ServiceLB:
    return ServiceLB(sid, "netaaaaaaaaaaaa", vip, ports if ports is not None else [(80, "tcp")], backends)


def kinds(cmds: list[nft.Cmd]) -> list[tuple[str, str, str]]:
    """(verb, object kind, name) for each command."""
    out = []
    for c in cmds:
        ((verb, body),) = c.items()
        ((kind, obj),) = body.items()
        out.append((verb, kind, obj.get("name") or obj.get("chain", "")))
    return out


def test_normalise_skips_dnsrr_and_sorts() -> None:
    state = lb.normalise(
        [
            svc("a", "10.0.1.2", ["10.0.1.6", "10.0.1.5", "10.0.1.5"], [(80, "TCP"), (53, "udp")]),
            svc("b", None, ["10.0.1.7"]),
            ServiceLB("c", "netaaaaaaaaaaaa", "10.0.1.3", [], ["10.0.1.8"], mode="dnsrr"),
        ]
    )
    assert list(state) == ["a-netaaaaaaa"]
    e = state["a-netaaaaaaa"]
    assert e.backends == ("10.0.1.5", "10.0.1.6") and e.ports == (("tcp", 80), ("udp", 53))


def test_full_table_has_one_lookup_round_robin_and_dnat_chains() -> None:
    cmds = lb.full(lb.normalise([svc("a", "10.0.1.2", ["10.0.1.5", "10.0.1.6"]), svc("e", "10.0.1.3", [])]))
    assert kinds(cmds)[:3] == [
        ("add", "table", "shoal_lb"),
        ("delete", "table", "shoal_lb"),
        ("add", "table", "shoal_lb"),
    ]
    text = json.dumps(cmds)
    assert '"hook": "output", "prio": -100' in text  # a number: `dstnat` is refused on output
    assert '"numgen": {"mode": "inc", "mod": 2' in text
    rules = [c["add"]["rule"] for c in cmds if "rule" in c.get("add", {})]
    eps = {r["chain"]: r["expr"] for r in rules if r["chain"].startswith("ep-")}
    assert eps == {
        "ep-a-netaaaaaaa-10.0.1.5": [{"dnat": {"addr": "10.0.1.5"}}],
        "ep-a-netaaaaaaa-10.0.1.6": [{"dnat": {"addr": "10.0.1.6"}}],
    }
    elems = {c["add"]["element"]["name"]: c["add"]["element"]["elem"] for c in cmds if "element" in c.get("add", {})}
    assert elems["ports"] == [[{"concat": ["10.0.1.2", "tcp", 80]}, {"goto": {"target": "svc-a-netaaaaaaa"}}]]
    assert elems["vips"] == [["10.0.1.2", {"goto": {"target": "svc-a-netaaaaaaa"}}]]
    assert elems["no_backends"] == ["10.0.1.3"]


def test_diff_of_one_backend_touches_one_service_only() -> None:
    many = [svc(f"s{i}", f"10.0.{i // 250}.{i % 250 + 2}", ["10.9.0.1", "10.9.0.2", "10.9.0.3"]) for i in range(100)]
    old = lb.normalise(many)
    many[7] = svc("s7", many[7].vip, ["10.9.0.1", "10.9.0.2", "10.9.0.4"])
    cmds = lb.diff(old, lb.normalise(many))
    assert kinds(cmds) == [
        ("flush", "chain", "svc-s7-netaaaaaaa"),
        ("add", "chain", "ep-s7-netaaaaaaa-10.9.0.4"),
        ("add", "rule", "ep-s7-netaaaaaaa-10.9.0.4"),
        ("add", "rule", "svc-s7-netaaaaaaa"),
        ("delete", "chain", "ep-s7-netaaaaaaa-10.9.0.3"),
    ]
    assert lb.diff(old, old) == []


def test_diff_orders_references_before_what_they_point_to() -> None:
    old = lb.normalise([svc("a", "10.0.1.2", ["10.0.1.5"]), svc("b", "10.0.1.3", ["10.0.1.6"])])
    new = lb.normalise([svc("a", "10.0.1.2", []), svc("c", "10.0.1.4", ["10.0.1.7"])])
    cmds = lb.diff(old, new)
    order = kinds(cmds)
    # map elements pointing at b's chain go first, its chain last
    assert order.index(("delete", "element", "vips")) < order.index(("delete", "chain", "svc-b-netaaaaaaa"))
    assert order.index(("flush", "chain", "svc-b-netaaaaaaa")) < order.index(
        ("delete", "chain", "ep-b-netaaaaaaa-10.0.1.6")
    )
    # a lost its backends: out of the maps, into the reject set
    assert ("add", "element", "no_backends") in order
    # c's chains exist before elements point at them
    assert order.index(("add", "chain", "svc-c-netaaaaaaa")) < order.index(("add", "element", "ports"))


def test_host_mesh_rules_dnat_to_the_ingress_sandbox_and_host_mode_to_the_task() -> None:
    cmds = mesh.host_ruleset(
        [
            mesh.HostTarget("tcp", 30080, ("172.18.0.2",), None),
            mesh.HostTarget("udp", 31053, ("172.18.0.5",), 53),
            mesh.HostTarget("tcp", 31080, ("172.18.0.6", "172.18.0.7"), 8080),
        ]
    )
    rules: list[dict[str, Any]] = [c["add"]["rule"] for c in cmds if "rule" in c.get("add", {})]
    pre = [r["expr"] for r in rules if r["chain"] == "prerouting"]
    out = [r["expr"] for r in rules if r["chain"] == "output"]
    assert len(pre) == len(out) == 3
    assert pre[0][-1] == {"dnat": {"addr": "172.18.0.2"}}
    assert pre[0][0] == {
        "match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}
    }
    # dnat to addr:port needs the l4proto match right before it (notes #7)
    assert pre[2][-2:] == [
        {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "udp"}},
        {"dnat": {"addr": "172.18.0.5", "port": 53}},
    ]
    assert "numgen" in json.dumps(pre[1])
    assert out[0][0]["match"]["op"] == "!="  # never loopback


def test_ingress_sandbox_balances_and_masquerades() -> None:
    cmds = mesh.sbox_ruleset(
        [
            Published(30080, "tcp", 8080, "ingress", ["10.255.0.6", "10.255.0.5"]),
            Published(30081, "tcp", 80, "ingress", []),
        ]
    )
    text = json.dumps(cmds)
    assert '"masquerade": null' in text and '"oifname"' in text and "maxseg" in text
    elems = [c["add"]["element"]["elem"] for c in cmds if "element" in c.get("add", {})]
    assert elems == [[[{"concat": ["tcp", 30080]}, {"goto": {"target": "pub-tcp-30080"}}]]]  # no backend, no entry
    rules = {c["add"]["rule"]["chain"]: c["add"]["rule"]["expr"] for c in cmds if "rule" in c.get("add", {})}
    assert rules["be-tcp-30080-10.255.0.5"][-1] == {"dnat": {"addr": "10.255.0.5", "port": 8080}}
