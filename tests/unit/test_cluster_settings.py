"""Cluster settings that take effect (issue 15 item 5), their pure parts: the heartbeat period the
leader names and the grace it counts, the subnets a network gets from the cluster's address pools,
and the VXLAN port a node's overlays use."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.errors import SpecError
from shoal.manager.control import networks as control
from shoal.manager.dispatcher import Dispatcher, liveness_changes, spec_period
from shoal.model.network import free_subnet, ingress_object, network_object, validate_create
from shoal.model.objects import default_swarm_spec
from shoal.worker.hooks import NetworkSlot
from shoal.worker.session import MAX_PERIOD, MIN_PERIOD


def _node(nid: str, state: str = "ready") -> dict[str, Any]:
    return {"ID": nid, "Version": {"Index": 3}, "Status": {"State": state}}


def _cluster(period_ns: int, **extra: Any) -> dict[str, Any]:
    spec = default_swarm_spec()
    spec["Dispatcher"]["HeartbeatPeriod"] = period_ns
    return {"ID": "c1", "Spec": spec, **extra}


class ClusterStore:
    """The reads the dispatcher and the network control calls make; `applied_index` moves on each write."""

    epoch = 1

    def __init__(self, cluster: dict[str, Any], nodes: list[dict[str, Any]], networks: list[dict[str, Any]]) -> None:
        self.cluster, self.nodes, self.networks = cluster, nodes, networks
        self.applied_index = 1

    def set_period(self, period_ns: int) -> None:
        self.cluster["Spec"]["Dispatcher"]["HeartbeatPeriod"] = period_ns
        self.applied_index += 1

    def get(self, kind: str, obj_id: str) -> dict[str, Any] | None:
        return self.cluster if kind == "cluster" and obj_id == self.cluster["ID"] else None

    def list(self, kind: str) -> list[dict[str, Any]]:
        return {"cluster": [self.cluster], "node": self.nodes, "network": self.networks}.get(kind, [])

    list_shared = list


def test_the_period_is_the_cluster_specs_and_follows_its_updates() -> None:
    store = ClusterStore(_cluster(1_000_000_000), [_node("w1")], [])
    dispatcher = Dispatcher(store, "m1", 7.0, cluster_id="c1")  # type: ignore[arg-type]
    assert dispatcher.heartbeat("w1", None) == 1.0
    store.set_period(4_000_000_000)
    assert dispatcher.period == 4.0
    assert dispatcher.heartbeat("w1", None) == 4.0  # what the answer tells the node
    # before the cluster object exists (the first manager's first instants): the agent's setting
    assert spec_period(None, 7.0) == 7.0
    assert Dispatcher(store, "m1", 7.0).period == 7.0  # type: ignore[arg-type]


def test_grace_counts_the_period_each_node_was_told() -> None:
    nodes = [_node("w1"), _node("w2")]
    now = 1000.0
    # the period went from 5 s to 1 s: w1 beat just before the change and was told 5 s, w2 after
    seen = {"w1": now - 6, "w2": now - 6}
    told = {"w1": 5.0, "w2": 1.0}
    down = {c.obj_id for c in liveness_changes(nodes, seen, now, 1.0, "m1", {}, told)}
    assert down == {"w2"}  # w1 has 15 s of grace from its last beat; w2 only 3 s
    # a node not told any (not heard from in this term) gets twice 3 of the current periods
    assert {c.obj_id for c in liveness_changes(nodes, seen, now, 1.0, "m1", {}, {"w1": 5.0})} == set()
    assert {c.obj_id for c in liveness_changes(nodes, seen, now, 0.9, "m1", {}, {"w1": 5.0})} == {"w2"}


def test_a_longer_period_stretches_the_grace_of_a_node_that_was_told_it() -> None:
    store = ClusterStore(_cluster(1_000_000_000), [_node("w1")], [])
    dispatcher = Dispatcher(store, "m1", 1.0, cluster_id="c1")  # type: ignore[arg-type]
    store.set_period(4_000_000_000)
    dispatcher.heartbeat("w1", None)
    beat = dispatcher.last_seen["w1"]
    assert dispatcher.liveness_round(beat + 11.5) == []  # 3 periods of 4 s
    assert dispatcher.liveness_round(beat + 12.5)[0].obj["Status"]["State"] == "down"


def test_the_nodes_accept_every_period_the_spec_can_hold() -> None:
    from shoal.model.validate import validate_swarm_spec

    for given, seconds in (("50ms", MIN_PERIOD), ("24h", MAX_PERIOD)):
        nanos = validate_swarm_spec({"Dispatcher": {"HeartbeatPeriod": given}})["Dispatcher"]["HeartbeatPeriod"]
        assert nanos / 1e9 == seconds


# ---- address pools


def _net(name: str, subnet: str) -> dict[str, Any]:
    req = {"Name": name, "Subnet": subnet, "Gateway": subnet.split("/")[0][:-1] + "1", "Labels": {}, "Options": {}}
    return network_object(name + "-id", req, 4097, "now")


def test_subnets_come_from_the_pools_in_order_and_skip_what_is_taken() -> None:
    pools = ["10.20.0.0/23", "192.168.50.0/24"]
    taken = [_net("a", "10.20.0.0/26")]
    assert free_subnet(taken, pools, 26) == "10.20.0.64/26"
    full = [_net(f"n{i}", f"10.20.{i // 4}.{(i % 4) * 64}/26") for i in range(8)]
    assert free_subnet(full, pools, 26) == "192.168.50.0/26"  # the first pool is used up
    with pytest.raises(SpecError, match="could not find an available, non-overlapping IPv4 address pool"):
        free_subnet(full + [_net(f"m{i}", f"192.168.50.{i * 64}/26") for i in range(4)], pools, 26)


def test_a_pool_covering_the_ingress_subnet_skips_it() -> None:
    ingress = ingress_object("ing", "now")  # 10.255.0.0/16, its own default whatever the pools
    with pytest.raises(SpecError, match="non-overlapping"):
        free_subnet([ingress], ["10.255.0.0/16"], 24)
    assert free_subnet([ingress], ["10.255.0.0/16", "10.9.0.0/16"], 24) == "10.9.0.0/24"


def test_network_create_takes_the_clusters_pool_and_size() -> None:
    store = ClusterStore(
        _cluster(1_000_000_000, DefaultAddrPool=["10.77.0.0/16"], SubnetSize=28), [], [ingress_object("ing", "now")]
    )
    network, _ = control.create(store, {"Name": "web", "Driver": "overlay"})  # type: ignore[arg-type]
    assert network["IPAM"]["Configs"][0] == {"Subnet": "10.77.0.0/28", "Gateway": "10.77.0.1"}
    # a subnet given outside the pools is still the caller's to choose (Docker's too)
    given, _ = control.create(store, {"Name": "x", "IPAM": {"Config": [{"Subnet": "172.30.0.0/24"}]}})  # type: ignore[arg-type]
    assert given["IPAM"]["Configs"][0]["Subnet"] == "172.30.0.0/24"
    # without the cluster object yet: Docker's defaults
    assert validate_create({"Name": "n"}, [])["Subnet"] == "10.0.0.0/24"


# ---- the VXLAN port reaches the dataplane


class _Net:
    def __init__(self) -> None:
        self.port: Any = None

    def set_data_path_port(self, port: Any) -> None:
        self.port = port


def test_the_slot_hands_the_port_to_a_network_attached_later() -> None:
    slot = NetworkSlot()
    slot.set_data_path_port(7789)  # the first assignments answer, before networking started
    net = _Net()
    slot.attach(net)  # type: ignore[arg-type]
    assert net.port == 7789
    slot.set_data_path_port(7790)
    assert net.port == 7790


def test_the_vxlan_device_is_created_on_the_given_port(monkeypatch: pytest.MonkeyPatch) -> None:
    from shoal.net import ns, overlay
    from shoal.net.model import NetAttachment

    calls: list[dict[str, Any]] = []

    class IPR:
        def link(self, op: str, **kw: Any) -> None:
            if op == "add" and kw.get("kind") == "vxlan":
                calls.append(kw)

        def addr(self, *a: Any, **kw: Any) -> None:
            pass

    monkeypatch.setattr(ns, "create", lambda name, d: f"/run/netns/{name}")
    monkeypatch.setattr(ns, "run", lambda path, fn: None)
    monkeypatch.setattr(ns, "iproute", lambda path, fn: fn(IPR()))
    monkeypatch.setattr(overlay.links, "lookup", lambda ipr, name: 5)
    monkeypatch.setattr(overlay.links, "delete", lambda ipr, name: None)
    att = NetAttachment(network_id="n" * 25, vni=4100, subnet="10.0.1.0/24", gateway="10.0.1.1", address="10.0.1.2/24")
    overlay.create_sandbox("1-nnnn", "/run/netns", att, "10.213.0.10", 7789)
    assert [c["vxlan_port"] for c in calls] == [7789]
