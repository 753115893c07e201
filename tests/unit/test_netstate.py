"""What a node gets to program its dataplane: peers, load balancers, DNS, the routing mesh."""

from __future__ import annotations

import json
import random

from shoal.manager.allocator.addresses import used_addresses
from shoal.manager.allocator.endpoints import node_ingress_attachment, service_endpoint, task_attachments
from shoal.manager.netstate import NetView, node_netstate
from shoal.model.network import ingress_object, mac_of, network_object, validate_create
from shoal.model.objects import new_node
from shoal.model.service import service_object, validate_service_spec
from shoal.model.task import new_task, with_status
from unit import _netstate_reference as reference

NOW = "2026-01-01T00:00:00.000000000Z"


def build(aliases: list[str] | None = None) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
    ingress = ingress_object("ingressnet", NOW)
    overlay = network_object(
        "appnet",
        validate_create({"Name": "app", "IPAM": {"Config": [{"Subnet": "172.30.0.0/24"}]}}, [ingress]),
        4097,
        NOW,
    )
    networks = [ingress, overlay]
    nodes = [new_node(f"n{i}", f"swarm0{i}", "worker", f"10.213.0.1{i}", NOW) for i in range(2)]
    used = used_addresses([], [], [])
    for n in nodes:
        n["Attachments"] = [node_ingress_attachment(networks, used)]
    spec = validate_service_spec(
        {
            "Name": "web",
            "TaskTemplate": {
                "ContainerSpec": {"Image": "shoal/hello"},
                "Networks": [{"Target": "appnet", "Aliases": aliases or []}],
            },
            "Mode": {"Replicated": {"Replicas": 2}},
            "EndpointSpec": {"Ports": [{"TargetPort": 8080, "PublishedPort": 80}]},
        }
    )
    svc = service_object("svc", spec, NOW)
    svc["Endpoint"] = service_endpoint(spec, "svc", [], networks, used)
    tasks = []
    for slot, node in ((1, "n0"), (2, "n1")):
        t = new_task(svc, slot, None, NOW, task_id=f"task{slot}")
        t["NetworksAttachments"] = task_attachments(svc, networks, used)
        t["NodeID"] = node
        tasks.append(with_status(t, "running", "started", NOW))
    return tasks, [svc], networks, nodes


def test_peers_are_the_other_nodes_endpoints() -> None:
    tasks, services, networks, nodes = build()
    state = node_netstate("n0", tasks, services, networks, nodes)
    app = state["Networks"]["appnet"]
    remote = tasks[1]["NetworksAttachments"][1]["Addresses"][0]
    assert app["Peers"] == [{"IP": remote.split("/")[0], "MAC": mac_of(remote), "NodeIP": "10.213.0.11"}]
    assert app["VNI"] == 4097 and app["Gateway"] == "172.30.0.1"
    ingress_peers = {p["IP"] for p in state["Networks"]["ingressnet"]["Peers"]}
    assert nodes[1]["Attachments"][0]["Addresses"][0].split("/")[0] in ingress_peers  # the other ingress sandbox


def test_lb_dns_and_mesh_use_running_backends_only() -> None:
    tasks, services, networks, nodes = build()
    tasks[1] = with_status(tasks[1], "starting", "starting", NOW)
    state = node_netstate("n0", tasks, services, networks, nodes)
    local_ip = tasks[0]["NetworksAttachments"][1]["Addresses"][0].split("/")[0]
    [lb] = state["LB"]
    assert lb["NetworkID"] == "appnet" and lb["Backends"] == [local_ip] and lb["Ports"] == [(8080, "tcp")]
    [records] = state["DNS"]  # none on the ingress network
    assert records["Services"]["web"] == [lb["VIP"]] and records["TasksOf"]["web"] == [local_ip]
    assert records["Names"]["web.1"] == local_ip and "web.1.task1" in records["Names"]
    [published] = state["Published"]
    assert published["PublishedPort"] == 80 and len(published["Backends"]) == 1
    assert state["Ingress"]["Address"] == nodes[0]["Attachments"][0]["Addresses"][0]


def test_network_aliases_answer_like_the_service_name_on_their_network() -> None:
    tasks, services, networks, nodes = build(aliases=["frontend", "web"])
    state = node_netstate("n0", tasks, services, networks, nodes)
    [records] = state["DNS"]
    assert records["NetworkID"] == "appnet"
    assert records["Services"]["frontend"] == records["Services"]["web"]
    assert records["TasksOf"]["frontend"] == records["TasksOf"]["web"]


def test_node_without_tasks_still_gets_the_mesh() -> None:
    tasks, services, networks, nodes = build()
    nodes.append(new_node("n2", "swarm02", "worker", "10.213.0.12", NOW))
    nodes[2]["Attachments"] = [{"Network": {"ID": "ingressnet"}, "Addresses": ["10.255.0.9/16"]}]
    state = node_netstate("n2", tasks, services, networks, nodes)
    assert set(state["Networks"]) == {"ingressnet"} and not state["LB"]
    assert len(state["Published"][0]["Backends"]) == 2


def random_cluster(seed: int) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
    """Nodes (some without an ingress sandbox), two overlays, services in vip/dnsrr mode with ingress,
    host-mode or no ports, and tasks in every state on every node."""
    rng = random.Random(seed)
    ingress = ingress_object("ingressnet", NOW)
    nets = [ingress]
    for i, name in enumerate(("app", "db")):
        body = {"Name": name, "IPAM": {"Config": [{"Subnet": f"172.3{i}.0.0/24"}]}}
        if name == "db":
            body["Options"] = {"encrypted": ""}
        nets.append(network_object(f"{name}net", validate_create(body, nets), 4097 + i, NOW))
    nodes = [new_node(f"n{i}", f"host{i}", "worker", f"10.213.0.{10 + i}", NOW) for i in range(5)]
    used = used_addresses([], [], [])
    for n in nodes[:4]:
        n["Attachments"] = [node_ingress_attachment(nets, used)]
    services, tasks = [], []
    for s in range(5):
        ports = rng.choice(
            [
                [],
                [{"TargetPort": 80, "PublishedPort": 8000 + s}],
                [{"TargetPort": 80, "PublishedPort": 9000 + s, "PublishMode": "host"}],
            ]
        )
        spec = validate_service_spec(
            {
                "Name": f"svc{s}",
                "TaskTemplate": {
                    "ContainerSpec": {"Image": "shoal/hello"},
                    "Networks": [{"Target": n} for n in rng.sample(["appnet", "dbnet"], rng.randint(0, 2))],
                },
                "Mode": {"Replicated": {"Replicas": 4}},
                "EndpointSpec": {"Mode": "dnsrr" if not ports and rng.random() < 0.3 else "vip", "Ports": ports},
            }
        )
        svc = service_object(f"s{s}", spec, NOW)
        svc["Endpoint"] = service_endpoint(spec, f"s{s}", services, nets, used)
        services.append(svc)
        for slot in range(1, rng.randint(2, 6)):
            t = new_task(svc, slot, None, NOW, task_id=f"t{s}x{slot}")
            t["NetworksAttachments"] = task_attachments(svc, nets, used)
            t["NodeID"] = rng.choice([n["ID"] for n in nodes] + ["gone"])
            t = with_status(t, rng.choice(["assigned", "starting", "running", "running", "failed"]), "x", NOW)
            if rng.random() < 0.15:
                t["DesiredState"] = "shutdown"
            tasks.append(t)
    return tasks, services, nets, nodes


def test_netview_gives_every_node_what_the_per_node_computation_gave() -> None:
    for seed in range(60):
        tasks, services, nets, nodes = random_cluster(seed)
        view = NetView(tasks, services, nets, nodes)
        for node in [*nodes, {"ID": "unknown"}]:
            want = reference.node_netstate(node["ID"], tasks, services, nets, nodes)
            assert view.for_node(node["ID"]) == want, (seed, node["ID"])


def test_netview_digest_follows_the_node_state() -> None:
    tasks, services, nets, nodes = random_cluster(3)
    before = {n["ID"]: NetView(tasks, services, nets, nodes).digest(n["ID"]) for n in nodes}
    assert before == {n["ID"]: NetView(tasks, services, nets, nodes).digest(n["ID"]) for n in nodes}
    running = next(t for t in tasks if t["Status"]["State"] == "running" and t["NodeID"] == "n0")
    changed = [dict(t, DesiredState="shutdown") if t is running else t for t in tasks]
    view = NetView(changed, services, nets, nodes)
    old = NetView(tasks, services, nets, nodes)
    for n in nodes:
        if view.for_node(n["ID"]) != old.for_node(n["ID"]):
            assert view.digest(n["ID"]) != before[n["ID"]], n["ID"]


def test_netview_json_is_the_node_state_encoded() -> None:
    for seed in range(40):
        tasks, services, nets, nodes = random_cluster(seed)
        view = NetView(tasks, services, nets, nodes)
        for node in [*nodes, {"ID": "unknown"}]:
            wire = json.loads(json.dumps(view.for_node(node["ID"])))  # tuples go out as lists
            assert json.loads(view.for_node_json(node["ID"])) == wire, (seed, node["ID"])


def _changed(rng: random.Random, tasks: list[dict], nodes: list[dict]) -> list[dict]:
    """Some tasks stop, move, start, change slot or go; a few new ones come on free addresses."""
    out = []
    for t in tasks:
        roll = rng.random()
        if roll < 0.2:
            t = with_status(t, rng.choice(["running", "starting", "shutdown"]), "x", NOW)
        elif roll < 0.3:
            t = dict(t, NodeID=rng.choice([n["ID"] for n in nodes]))
        elif roll < 0.35:
            t = dict(t, Slot=(t.get("Slot") or 0) + 7)
        elif roll < 0.4:
            continue
        elif roll < 0.45:
            t = dict(t, DesiredState="running" if t["DesiredState"] != "running" else "shutdown")
        out.append(t)
    return out


def test_a_view_updated_from_an_earlier_ones_items_has_a_fresh_views_items_and_versions() -> None:
    """Items updated from the changed tasks and nodes (netitems.py) are those a view built whole
    gets, version included, along a chain of changes: tasks stopping, moving, starting, going, a
    node's address or sandbox changing, a service gone."""
    for seed in range(40):
        tasks, services, nets, nodes = random_cluster(seed)
        rng = random.Random(seed)
        view = NetView(tasks, services, nets, nodes)
        for step in range(6):
            for net_id in view.by_net:
                view.network(net_id)
            tasks = _changed(rng, tasks, nodes)
            if step == 2:  # a node's new object: its address, and its sandbox gone
                nodes = [
                    dict(n, Status={**n["Status"], "Addr": "10.213.0.99"}) if n["ID"] == "n1" else n for n in nodes
                ]
                nodes = [{k: v for k, v in n.items() if k != "Attachments"} if n["ID"] == "n2" else n for n in nodes]
            if step == 4 and services:  # a service removed: its names go, its tasks' endpoints stay
                services = services[1:]
            updated = NetView(tasks, services, nets, nodes, view.take_tables())
            fresh = NetView(tasks, services, nets, nodes)
            for net_id in fresh.by_net:
                assert updated.network(net_id)["items"] == fresh.network(net_id)["items"], (seed, step, net_id)
                assert updated.network(net_id)["digest"] == fresh.network(net_id)["digest"], (seed, step, net_id)
                assert updated.network(net_id)["size"] == fresh.network(net_id)["size"]
            view = updated


def test_tables_are_taken_once_and_a_view_without_them_builds_whole() -> None:
    tasks, services, nets, nodes = random_cluster(5)
    view = NetView(tasks, services, nets, nodes)
    assert view.take_tables() is None  # nothing built yet: nothing to carry
    view.network("appnet")
    tables = view.take_tables()
    assert tables is not None and view.take_tables() is None
    # the earlier view's items stay as they were while the next one updates the tables
    before = dict(view.network("appnet")["items"])
    moved = [with_status(t, "shutdown", "x", NOW) for t in tasks]
    NetView(moved, services, nets, nodes, tables).network("appnet")
    assert view.network("appnet")["items"] == before


def test_two_endpoints_on_one_address_take_the_whole_builds_keys() -> None:
    tasks, services, nets, nodes = random_cluster(7)
    live = [t for t in tasks if t["NetworksAttachments"] and t["NodeID"] != "gone" and t["DesiredState"] == "running"]
    live = [t for t in live if t["Status"]["State"] in ("assigned", "starting", "running")]
    a, b = live[0], live[1]
    view = NetView(tasks, services, nets, nodes)
    view.network(a["NetworksAttachments"][0]["Network"]["ID"])
    clash = dict(
        b,
        NetworksAttachments=[
            dict(
                b["NetworksAttachments"][0],
                **{
                    "Network": a["NetworksAttachments"][0]["Network"],
                    "Addresses": a["NetworksAttachments"][0]["Addresses"],
                },
            )
        ],
    )
    changed = [clash if t is b else t for t in tasks]
    updated = NetView(changed, services, nets, nodes, view.take_tables())
    fresh = NetView(changed, services, nets, nodes)
    net_id = a["NetworksAttachments"][0]["Network"]["ID"]
    ip = a["NetworksAttachments"][0]["Addresses"][0].split("/")[0]
    assert f"e:{ip}+" in fresh.network(net_id)["items"]
    assert updated.network(net_id)["items"] == fresh.network(net_id)["items"]
    # once the clash is gone (the second moved back, or the first gone), the keys are a fresh view's
    for after in (tasks, [t for t in changed if t is not a]):
        clashing = NetView(changed, services, nets, nodes)
        clashing.network(net_id)
        again = NetView(after, services, nets, nodes, clashing.take_tables())
        assert again.network(net_id)["items"] == NetView(after, services, nets, nodes).network(net_id)["items"]
        assert f"e:{ip}+" not in again.network(net_id)["items"]


def test_mac_of_a_dotted_quad_is_dockers_and_anything_else_is_ipaddress_s() -> None:
    assert mac_of("10.0.1.2/24") == "02:42:0a:00:01:02"
    assert mac_of("255.0.16.9") == "02:42:ff:00:10:09"
    for bad in ("01.2.3.4", "1.2.3.256", "1.2.3", "a.b.c.d", "1.2.3.\u00b2"):
        try:
            mac_of(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was given a MAC")
