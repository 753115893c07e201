"""The server's list filters, one implementation per kind, with Docker's semantics (manager/control/filters.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from shoal.errors import InvalidArgument, NotFound
from shoal.manager.control.filters import (
    filter_images,
    filter_networks,
    filter_nodes,
    filter_services,
    filter_tasks,
    prune_dangling_only,
)
from shoal.model.network import GWBRIDGE
from shoal.model.objects import new_node

T0 = "2026-01-01T00:00:00Z"


def node(nid: str, host: str, role: str = "worker", **kw: Any) -> dict[str, Any]:
    return new_node(nid, host, role, "10.0.0.1", T0, **kw)


NODES = [
    node("aaa111", "swarm00", "manager", labels={"zone": "a"}, engine_labels={"ssd": "yes"}),
    node("aab222", "swarm01", labels={"zone": "b"}),
    node("bbb333", "worker-x", labels={"zone": "a", "gpu": ""}),
]


def ids(objs: list[dict[str, Any]], key: str = "ID") -> list[str]:
    return [o[key] for o in objs]


def test_nodes_name_and_id_are_prefixes() -> None:
    assert ids(filter_nodes(NODES, {"name": ["swarm"]})) == ["aaa111", "aab222"]  # Docker: prefix, not exact
    assert ids(filter_nodes(NODES, {"name": ["swarm01", "worker"]})) == ["aab222", "bbb333"]
    assert ids(filter_nodes(NODES, {"id": ["aa"]})) == ["aaa111", "aab222"]
    assert ids(filter_nodes(NODES, {"name": ["warm"]})) == []


def test_nodes_role_membership_and_labels() -> None:
    assert ids(filter_nodes(NODES, {"role": ["Manager"]})) == ["aaa111"]
    assert ids(filter_nodes(NODES, {"membership": ["accepted"]})) == ids(NODES)
    assert ids(filter_nodes(NODES, {"membership": ["pending"]})) == []
    assert ids(filter_nodes(NODES, {"node.label": ["zone=a"]})) == ["aaa111", "bbb333"]
    assert ids(filter_nodes(NODES, {"node.label": ["zone=a", "gpu"]})) == ["bbb333"]  # labels: all of them
    assert ids(filter_nodes(NODES, {"label": ["ssd=yes"]})) == ["aaa111"]  # engine labels
    assert ids(filter_nodes(NODES, {"role": ["worker"], "name": ["swarm"]})) == ["aab222"]  # keys: all of them


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"colour": ["red"]}, "invalid filter 'colour'"),
        ({"role": ["boss"]}, "invalid filter 'role=boss'"),
        ({"membership": ["maybe"]}, "invalid filter 'membership=maybe'"),
    ],
)
def test_nodes_refuse_unknown_keys_and_values(filters: dict[str, list[str]], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        filter_nodes(NODES, filters)


def service(sid: str, name: str, mode: str = "Replicated", **labels: str) -> dict[str, Any]:
    return {"ID": sid, "Spec": {"Name": name, "Mode": {mode: {}}, "Labels": labels, "TaskTemplate": {}}}


SERVICES = [service("s1abc", "web", tier="front"), service("s2abc", "webapi"), service("s3xyz", "agent", "Global")]


def test_services() -> None:
    assert ids(filter_services(SERVICES, {"name": ["web"]})) == ["s1abc", "s2abc"]
    assert ids(filter_services(SERVICES, {"id": ["s3"]})) == ["s3xyz"]
    assert ids(filter_services(SERVICES, {"mode": ["global"]})) == ["s3xyz"]
    assert ids(filter_services(SERVICES, {"label": ["tier=front"], "mode": ["replicated"]})) == ["s1abc"]
    assert ids(filter_services(SERVICES, {"label": ["tier=back"]})) == []
    with pytest.raises(InvalidArgument, match="invalid filter 'mode=sometimes'"):
        filter_services(SERVICES, {"mode": ["sometimes"]})
    with pytest.raises(InvalidArgument, match="invalid filter 'color'"):
        filter_services(SERVICES, {"color": ["red"]})


def task(tid: str, sid: str, slot: int | None, nid: str, desired: str = "running") -> dict[str, Any]:
    return {"ID": tid, "ServiceID": sid, "Slot": slot, "NodeID": nid, "DesiredState": desired}


TASKS = [
    task("t1", "s1abc", 1, "aaa111"),
    task("t2", "s1abc", 2, "aab222"),
    task("t3", "s1abc", 1, "aab222", "shutdown"),
    task("t4", "s2abc", 1, "aaa111"),
    task("t5", "s3xyz", None, "bbb333"),
]


def tasks(filters: dict[str, list[str]]) -> list[str]:
    return ids(filter_tasks(TASKS, filters, SERVICES, NODES))


def test_tasks_service_and_name_combine() -> None:
    assert tasks({"service": ["web"]}) == ["t1", "t2", "t3"]
    assert tasks({"service": ["web"], "name": ["web.1"]}) == ["t1", "t3"]
    assert tasks({"service": ["s1abc"], "name": ["web.2"]}) == ["t2"]
    assert tasks({"service": ["web"], "name": ["webapi"]}) == []  # both keys must match
    assert tasks({"name": ["web"]}) == ["t1", "t2", "t3", "t4"]  # a prefix of the task name
    assert tasks({"name": ["web.1.t1"]}) == ["t1"]  # SwarmKit's full name: service.slot.id
    assert tasks({"name": ["agent.bbb333"]}) == ["t5"]  # global: the node ID


def test_tasks_node_desired_state_id_label() -> None:
    assert tasks({"node": ["swarm01"]}) == ["t2", "t3"]  # by hostname, ID or prefix
    assert tasks({"node": ["aaa"]}) == ["t1", "t4"]
    assert tasks({"desired-state": ["running"], "service": ["web"]}) == ["t1", "t2"]
    assert tasks({"id": ["t3", "t5"]}) == ["t3", "t5"]
    assert tasks({"label": ["tier=front"]}) == ["t1", "t2", "t3"]


def test_tasks_refusals() -> None:
    with pytest.raises(NotFound, match="service nope not found"):
        tasks({"service": ["nope"]})
    with pytest.raises(InvalidArgument, match="invalid filter 'desired-state=sleeping'"):
        tasks({"desired-state": ["sleeping"]})
    with pytest.raises(InvalidArgument, match="invalid filter 'slot'"):
        tasks({"slot": ["1"]})


def net(nid: str, name: str, ingress: bool = False, **labels: str) -> dict[str, Any]:
    return {"Name": name, "Id": nid, "Driver": "overlay", "Scope": "swarm", "Ingress": ingress, "Labels": labels}


NETWORKS = [
    net("n1aaa", "ingress", ingress=True),
    net("n2bbb", "backend", env="prod"),
    net("n3ccc", "frontend"),
    dict(GWBRIDGE),
]


def networks(filters: dict[str, list[str]], in_use: frozenset[str] = frozenset({"n2bbb"})) -> list[str]:
    return ids(filter_networks(NETWORKS, filters, set(in_use)), "Name")


def test_networks() -> None:
    assert networks({"label": ["env=prod"]}) == ["backend"]
    assert networks({"label": ["env"]}) == ["backend"]
    assert networks({"type": ["custom"]}) == ["backend", "frontend"]
    assert networks({"type": ["builtin"]}) == ["ingress", "shoal_gwbridge"]
    assert networks({"name": ["end"]}) == ["backend", "frontend"]  # Docker: equal or a regexp found in it
    assert networks({"name": ["^front"]}) == ["frontend"]
    assert networks({"id": ["n3"]}) == ["frontend"]
    assert networks({"driver": ["bridge"]}) == ["shoal_gwbridge"]
    assert networks({"scope": ["local"]}) == ["shoal_gwbridge"]
    assert networks({"dangling": ["true"]}) == ["frontend"]
    assert networks({"dangling": ["false"]}) == ["ingress", "backend", "shoal_gwbridge"]


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"colour": ["red"]}, "invalid filter 'colour'"),
        ({"type": ["weird"]}, "invalid filter 'type=weird'"),
        ({"scope": ["planet"]}, "invalid filter 'scope=planet'"),
        ({"dangling": ["maybe"]}, "invalid filter 'dangling=maybe'"),
    ],
)
def test_networks_refusals(filters: dict[str, list[str]], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        networks(filters)


# ---- images
@dataclass
class Img:
    id: str
    repo_tags: list[str]
    labels: dict[str, str] = field(default_factory=dict)


IMAGES = [
    Img("i1", ["web:1.0", "web:latest"], {"tier": "front"}),
    Img("i2", ["db:15"], {"tier": "back", "ssd": ""}),
    Img("i3", []),  # untagged: dangling
]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["i1", "i2", "i3"]),
        ({"reference": ["web"]}, ["i1"]),  # a name: any of its tags
        ({"reference": ["web:1.0"]}, ["i1"]),
        ({"reference": ["web:2.0"]}, []),
        ({"reference": ["web:1.0", "db"]}, ["i1", "i2"]),  # several values: any of them
        ({"reference": ["we"]}, []),  # not a prefix
        ({"dangling": ["true"]}, ["i3"]),
        ({"dangling": ["false"]}, ["i1", "i2"]),
        ({"dangling": ["true", "0"]}, ["i1", "i2"]),  # the last value counts
        ({"label": ["tier"]}, ["i1", "i2"]),
        ({"label": ["tier=back", "ssd"]}, ["i2"]),  # labels: all of them
        ({"label": ["tier=back"], "reference": ["web"]}, []),  # different keys: all of them
        ({"dangling": []}, ["i1", "i2", "i3"]),  # a key with no values filters nothing
    ],
)
def test_image_filters(filters: dict[str, list[str]], expected: list[str]) -> None:
    assert [i.id for i in filter_images(IMAGES, filters)] == expected


def test_image_filters_refuse_unknown_keys_and_values() -> None:
    for filters, message in [
        ({"colour": ["red"]}, "invalid filter 'colour'"),
        ({"dangling": ["maybe"]}, "invalid filter 'dangling=maybe'"),
        ({"reference": ["web"], "until": ["1h"]}, "invalid filter 'until'"),
    ]:
        with pytest.raises(InvalidArgument) as exc:
            filter_images(IMAGES, filters)
        assert exc.value.message == message and exc.value.status == 400


def test_prune_takes_dangling_only() -> None:
    assert prune_dangling_only({}) is True
    assert prune_dangling_only({"dangling": ["false"]}) is False
    assert prune_dangling_only({"dangling": ["false", "1"]}) is True
    with pytest.raises(InvalidArgument, match="invalid filter 'label'"):
        prune_dangling_only({"label": ["a"]})
