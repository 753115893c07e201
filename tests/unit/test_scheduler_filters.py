"""Each scheduler filter, the pipeline's explanations and NodeInfo accounting."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.manager.scheduler import (
    ConstraintFilter,
    HostPortFilter,
    MaxReplicasFilter,
    NodeInfo,
    Pipeline,
    PlatformFilter,
    ReadyFilter,
    ResourceFilter,
    build_node_infos,
    no_suitable_node,
    on_node,
)

CPU = 1_000_000_000
GIB = 1 << 30


def node(
    node_id: str,
    *,
    state: str = "ready",
    availability: str = "active",
    labels: dict[str, str] | None = None,
    cpus: int = 4,
    mem: int = 8,
    arch: str = "x86_64",
    os: str = "linux",
) -> dict[str, Any]:
    return {
        "ID": node_id,
        "Spec": {"Role": "worker", "Availability": availability, "Labels": labels or {}},
        "Description": {
            "Hostname": node_id,
            "Platform": {"OS": os, "Architecture": arch},
            "Resources": {"NanoCPUs": cpus * CPU, "MemoryBytes": mem * GIB},
        },
        "Status": {"State": state},
    }


def task(
    task_id: str = "t",
    service: str = "svc",
    *,
    node_id: str = "",
    state: str = "pending",
    desired: str = "running",
    cpus: float = 0,
    mem: int = 0,
    placement: dict[str, Any] | None = None,
    ports: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    t: dict[str, Any] = {
        "ID": task_id,
        "ServiceID": service,
        "NodeID": node_id,
        "Status": {"State": state},
        "DesiredState": desired,
        "Spec": {
            "ContainerSpec": {"Image": "shoal/host"},
            "Resources": {"Reservations": {"NanoCPUs": int(cpus * CPU), "MemoryBytes": mem * GIB}},
            "Placement": placement or {},
        },
    }
    if ports is not None:
        t["Endpoint"] = {"Ports": ports}
    return t


def host_port(port: int, protocol: str = "tcp", mode: str = "host") -> dict[str, Any]:
    return {"Protocol": protocol, "TargetPort": 80, "PublishedPort": port, "PublishMode": mode}


def running(task_id: str, node_id: str, service: str = "svc", **kw: Any) -> dict[str, Any]:
    return task(task_id, service, node_id=node_id, state="running", **kw)


# --- ReadyFilter -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "availability", "ok"),
    [
        ("ready", "active", True),
        ("ready", "pause", False),
        ("ready", "drain", False),
        ("down", "active", False),
        ("unknown", "active", False),
        ("disconnected", "active", False),
    ],
)
def test_ready_filter(state: str, availability: str, ok: bool) -> None:
    f = ReadyFilter()
    assert f.set_task(task())
    assert f.check(NodeInfo(node("n", state=state, availability=availability))) is ok


def test_ready_filter_explains() -> None:
    assert ReadyFilter().explain(1) == "1 node not available for new tasks"
    assert ReadyFilter().explain(3) == "3 nodes not available for new tasks"


# --- ResourceFilter ----------------------------------------------------------------------


def test_resource_filter_off_without_reservations() -> None:
    assert not ResourceFilter().set_task(task())


def test_resource_filter_counts_reservations_of_tasks_on_the_node() -> None:
    f = ResourceFilter()
    assert f.set_task(task(cpus=1.5, mem=1))
    info = NodeInfo(node("n", cpus=4, mem=8), [running("a", "n", cpus=2), running("b", "n", cpus=0.5)])
    assert info.available_nano_cpus == int(1.5 * CPU)
    assert f.check(info)
    info.add_task(running("c", "n", cpus=0.5))
    assert not f.check(info)  # 1 CPU left, 1.5 wanted
    info.remove_task("c")
    assert f.check(info)


def test_resource_filter_memory() -> None:
    f = ResourceFilter()
    assert f.set_task(task(mem=3))
    assert f.check(NodeInfo(node("n", mem=8), [running("a", "n", mem=5)]))
    assert not f.check(NodeInfo(node("n", mem=8), [running("a", "n", mem=6)]))


def test_resource_filter_node_without_resources_fits_nothing_reserved() -> None:
    bare = {"ID": "n", "Spec": {"Availability": "active"}, "Status": {"State": "ready"}}
    f = ResourceFilter()
    f.set_task(task(mem=1))
    assert not f.check(NodeInfo(bare))
    assert f.explain(1) == "insufficient resources on 1 node"
    assert f.explain(2) == "insufficient resources on 2 nodes"


# --- ConstraintFilter --------------------------------------------------------------------


def test_constraint_filter() -> None:
    f = ConstraintFilter()
    assert not f.set_task(task())
    assert f.set_task(task(placement={"Constraints": ["node.labels.zone==a", "node.role==worker"]}))
    assert f.check(NodeInfo(node("n", labels={"zone": "a"})))
    assert not f.check(NodeInfo(node("n", labels={"zone": "b"})))
    assert f.explain(1) == "1 node did not satisfy constraints"
    assert f.explain(2) == "2 nodes did not satisfy constraints"


def test_constraint_filter_fails_closed_on_a_stored_bad_constraint() -> None:
    f = ConstraintFilter()
    assert f.set_task(task(placement={"Constraints": ["node.foo==x"]}))
    assert not f.check(NodeInfo(node("n")))


# --- PlatformFilter ----------------------------------------------------------------------


def test_platform_filter() -> None:
    f = PlatformFilter()
    assert not f.set_task(task())
    assert f.set_task(task(placement={"Platforms": [{"OS": "linux", "Architecture": "amd64"}]}))
    assert f.check(NodeInfo(node("n", arch="x86_64")))  # uname's x86_64 is Go's amd64
    assert not f.check(NodeInfo(node("n", arch="aarch64")))
    assert not f.check(NodeInfo(node("n", os="windows")))
    assert f.set_task(task(placement={"Platforms": [{"OS": "linux"}]}))
    assert f.check(NodeInfo(node("n", arch="aarch64")))
    assert f.explain(2) == "unsupported platform on 2 nodes"


# --- HostPortFilter ----------------------------------------------------------------------


def test_host_port_filter() -> None:
    f = HostPortFilter()
    assert not f.set_task(task(ports=[host_port(80, mode="ingress")]))
    assert not f.set_task(task(ports=[host_port(0)]))  # dynamic host port never conflicts
    assert f.set_task(task(ports=[host_port(80)]))
    assert f.check(NodeInfo(node("n")))
    assert not f.check(NodeInfo(node("n"), [running("a", "n", service="other", ports=[host_port(80)])]))
    assert f.check(NodeInfo(node("n"), [running("a", "n", ports=[host_port(80, "udp")])]))
    assert f.check(NodeInfo(node("n"), [running("a", "n", ports=[host_port(80, mode="ingress")])]))
    assert f.explain(1) == "host-mode port already in use on 1 node"
    assert f.explain(4) == "host-mode port already in use on 4 nodes"


def test_host_ports_from_endpoint_spec() -> None:
    t = task()
    t["EndpointSpec"] = {"Ports": [host_port(8080)]}
    f = HostPortFilter()
    assert f.set_task(t)
    assert f.ports == frozenset({("tcp", 8080)})


# --- MaxReplicasFilter -------------------------------------------------------------------


def test_max_replicas_filter() -> None:
    f = MaxReplicasFilter()
    assert not f.set_task(task())
    assert f.set_task(task(placement={"MaxReplicas": 2}))
    info = NodeInfo(node("n"), [running("a", "n"), running("b", "n", service="other"), running("c", "n", service="x")])
    assert f.check(info)
    info.add_task(running("d", "n"))
    assert not f.check(info)
    # a task on its way out (desired shutdown) no longer counts
    info.add_task(running("d", "n", desired="shutdown"))
    assert f.check(info)
    assert f.explain(3) == "max replicas per node limit exceed"


# --- Pipeline ----------------------------------------------------------------------------


def test_pipeline_blames_the_first_failing_filter_and_sorts_by_count() -> None:
    p = Pipeline()
    p.set_task(task(cpus=1, placement={"Constraints": ["node.labels.zone==a"]}))
    infos = [
        NodeInfo(node("down", state="down", labels={"zone": "b"})),  # ready fails first
        NodeInfo(node("b1", labels={"zone": "b"})),
        NodeInfo(node("b2", labels={"zone": "b"})),
        NodeInfo(node("a1", labels={"zone": "a"})),
    ]
    assert [p.process(i) for i in infos] == [False, False, False, True]
    assert p.explain(infos) == "2 nodes did not satisfy constraints; 1 node not available for new tasks"


def test_pipeline_ties_keep_pipeline_order() -> None:
    p = Pipeline()
    p.set_task(task(cpus=8, placement={"Constraints": ["node.labels.zone==a"]}))
    infos = [NodeInfo(node("x", cpus=8, labels={"zone": "b"})), NodeInfo(node("y", availability="pause"))]
    infos.append(NodeInfo(node("z", labels={"zone": "a"})))  # only 4 CPUs
    assert p.explain(infos) == (
        "1 node not available for new tasks; insufficient resources on 1 node; 1 node did not satisfy constraints"
    )


def test_no_suitable_node_wording() -> None:
    assert no_suitable_node("") == "no suitable node"
    assert no_suitable_node("1 node not available for new tasks") == (
        "no suitable node (1 node not available for new tasks)"
    )


# --- NodeInfo ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "node_id", "counted"),
    [
        ("new", "n", False),
        ("pending", "n", False),  # preassigned, not confirmed yet
        ("assigned", "n", True),
        ("starting", "n", True),
        ("running", "n", True),
        ("running", "", False),
        ("complete", "n", False),
        ("failed", "n", False),
        ("shutdown", "n", False),
        ("orphaned", "n", False),
    ],
)
def test_on_node(state: str, node_id: str, counted: bool) -> None:
    assert on_node(task(node_id=node_id, state=state)) is counted


def test_node_info_accounting() -> None:
    info = NodeInfo(node("n", cpus=4), [running("a", "n", cpus=1, ports=[host_port(80)]), running("b", "n", "o")])
    assert (info.total, info.service_counts, info.available_nano_cpus) == (2, {"svc": 1, "o": 1}, 3 * CPU)
    assert info.host_ports == {("tcp", 80): 1}
    assert not info.add_task(running("a", "n", cpus=1, ports=[host_port(80)]))  # same task again: no change
    # desired state moves to shutdown: still holds resources and port, no longer counts
    assert info.add_task(running("a", "n", cpus=1, desired="shutdown", ports=[host_port(80)]))
    assert (info.total, info.service_counts, info.available_nano_cpus) == (1, {"o": 1}, 3 * CPU)
    assert info.remove_task("a")
    assert not info.remove_task("a")
    assert (info.available_nano_cpus, info.host_ports) == (4 * CPU, {})
    c = info.copy()
    c.add_task(running("z", "n"))
    assert (info.total, c.total) == (1, 2)


def test_build_node_infos_sorts_and_loads() -> None:
    infos = build_node_infos(
        [node("b"), node("a")], [running("1", "a"), running("2", "b"), task("3", node_id="a"), running("4", "gone")]
    )
    assert [(i.id, i.total) for i in infos] == [("a", 1), ("b", 1)]
