"""Network state as increments (model/netdelta.py): a node that applies the changes it is sent
holds exactly the full set a node asking for whole sets gets, whatever happened in between."""

from __future__ import annotations

import json
import random

from shoal import metrics
from shoal.manager import assignments
from shoal.manager.allocator.addresses import used_addresses
from shoal.manager.allocator.endpoints import task_attachments
from shoal.manager.assignments import NET_HISTORY, Snapshot, encode, net_answer
from shoal.manager.netstate import NetView
from shoal.model.netdelta import Held
from shoal.model.task import new_task, with_status
from unit.test_netstate import NOW, random_cluster


class FakeStore:
    """Only its identity matters: the network versions are remembered per store."""


def install(store: FakeStore, tasks: list, services: list, nets: list, nodes: list, index: int) -> Snapshot:
    snap = Snapshot(index, tasks, services, nets, nodes)
    assignments._install(id(store), snap)
    return snap


def wire(snap: Snapshot, store: FakeStore, node_id: str, have: dict[str, str] | None) -> dict:
    """The answer's network part as the node receives it (encoded, then parsed)."""
    return json.loads(encode({"Signature": "x", **net_answer(store, snap, node_id, have)}))


def full(view: NetView, node_id: str) -> dict:
    return json.loads(json.dumps(view.for_node(node_id)))  # tuples go out as lists


def churn(rng: random.Random, tasks: list[dict]) -> list[dict]:
    """Some tasks change state, some go, some move to another node."""
    out = []
    for t in tasks:
        roll = rng.random()
        if roll < 0.1:
            continue
        if roll < 0.35:
            t = with_status(t, rng.choice(["starting", "running", "failed", "shutdown"]), "x", NOW)
        elif roll < 0.45:
            t = dict(t, NodeID=rng.choice(["n0", "n1", "n2", "n3", "n4"]))
        out.append(t)
    return out


def shuffle(rng: random.Random, tasks: list[dict]) -> list[dict]:
    """A task not on n0 moves to another node and state: a new version (none lost, unlike churn)."""
    i = rng.choice([i for i, t in enumerate(tasks) if t["NodeID"] != "n0"])
    moved = with_status(tasks[i], rng.choice(["starting", "running"]), "x", NOW)
    moved = dict(moved, NodeID=rng.choice(["n1", "n2", "n3", "n4"]), DesiredState="running")
    return [*tasks[:i], moved, *tasks[i + 1 :]]


def test_increments_applied_equal_the_full_set_on_random_clusters() -> None:
    for seed in range(30):
        rng = random.Random(seed)
        tasks, services, nets, nodes = random_cluster(seed)
        store = FakeStore()
        held = {n["ID"]: Held() for n in nodes}
        increments = 0
        for step in range(8):
            snap = install(store, tasks, services, nets, nodes, step)
            for node in nodes:
                nid = node["ID"]
                if rng.random() < 0.3:
                    continue  # this node skips an answer: it is further behind at the next one
                answer = wire(snap, store, nid, held[nid].have())
                assert "Net" not in answer
                changes = answer["NetParts"]["Changes"]
                increments += sum(1 for c in changes.values() if c["From"] is not None)
                got = held[nid].apply(answer["NetParts"])
                assert got == full(snap.net, nid), (seed, step, nid)
                # a node asking for whole sets gets the same
                assert wire(snap, store, nid, None)["Net"] == got
            tasks = churn(rng, tasks)
        assert increments > 0, seed  # the property held over changes, not only over whole sets


def test_a_node_holding_the_current_versions_is_sent_no_change() -> None:
    tasks, services, nets, nodes = random_cluster(4)
    store = FakeStore()
    snap = install(store, tasks, services, nets, nodes, 1)
    node = Held()
    node.apply(wire(snap, store, "n0", {})["NetParts"])
    again = wire(snap, store, "n0", node.have())["NetParts"]
    assert snap.net.networks_of("n0") and again["Changes"] == {}
    assert node.apply(again) == full(snap.net, "n0")


def test_a_node_holding_versions_only_follows_the_same_increments() -> None:
    # simulated nodes keep no items: the same versions sent, and a change that does not follow the
    # version held is still refused (the next answer sends that network whole)
    tasks, services, nets, nodes = random_cluster(5)
    store = FakeStore()
    snap = install(store, tasks, services, nets, nodes, 1)
    real, sim = Held(), Held(versions_only=True)
    first = wire(snap, store, "n1", {})["NetParts"]
    assert real.apply(first) == full(snap.net, "n1") and sim.apply(first) == {}
    assert sim.have() == real.have() and all(items == {} for _, items in sim.nets.values())
    moved = next(t for t in tasks if t["Status"]["State"] == "running" and t["NodeID"] in ("n0", "n2"))
    tasks = [with_status(t, "failed", "x", NOW) if t is moved else t for t in tasks]
    snap = install(store, tasks, services, nets, nodes, 2)
    parts = wire(snap, store, "n1", sim.have())["NetParts"]
    assert any(c["From"] is not None for c in parts["Changes"].values())
    assert sim.apply(parts) == {} and real.apply(parts) == full(snap.net, "n1")
    assert sim.have() == real.have()
    net_id, change = next((n, c) for n, c in parts["Changes"].items() if c["From"] is not None)
    assert sim.apply({**parts, "Changes": {net_id: {**change, "From": "another"}}}) is None
    assert net_id not in sim.have()


def test_an_increment_is_smaller_than_the_network_it_changes() -> None:
    tasks, services, nets, nodes = random_cluster(5)
    store = FakeStore()
    snap = install(store, tasks, services, nets, nodes, 1)
    node = Held()
    node.apply(wire(snap, store, "n1", {})["NetParts"])
    moved = next(t for t in tasks if t["Status"]["State"] == "running" and t["NodeID"] in ("n0", "n2"))
    tasks = [with_status(t, "failed", "x", NOW) if t is moved else t for t in tasks]
    snap = install(store, tasks, services, nets, nodes, 2)
    parts = wire(snap, store, "n1", node.have())["NetParts"]
    changed = [c for c in parts["Changes"].values() if c["Set"] or c["Del"]]
    assert changed and all(c["From"] is not None for c in changed)
    whole = {n: len(snap.net.network(n)["items"]) for n in parts["Changes"]}
    assert all(len(c["Set"]) + len(c["Del"]) < whole[n] for n, c in parts["Changes"].items())
    assert node.apply(parts) == full(snap.net, "n1")


def test_a_node_too_far_behind_gets_the_whole_network() -> None:
    tasks, services, nets, nodes = random_cluster(6)
    store = FakeStore()
    rng = random.Random(6)
    snap = install(store, tasks, services, nets, nodes, 0)
    node = Held()
    node.apply(wire(snap, store, "n0", {})["NetParts"])
    assert len(snap.net.networks_of("n0")) > 1
    for step in range(NET_HISTORY * 2):  # more versions sent (to other nodes) than the managers keep
        tasks = shuffle(rng, tasks)
        snap = install(store, tasks, services, nets, nodes, step + 1)
        for other in ("n1", "n2", "n3"):
            wire(snap, store, other, {})
    kept = assignments._NET_HISTORY[id(store)]
    parts = wire(snap, store, "n0", node.have())["NetParts"]
    for net_id, change in parts["Changes"].items():  # whole exactly when the version held is gone
        assert (change["From"] is None) == (node.have()[net_id] not in kept[net_id]), net_id
    assert any(c["From"] is None for c in parts["Changes"].values())
    assert node.apply(parts) == full(snap.net, "n0")


def test_nodes_holding_versions_unknown_here_share_one_encoding_of_the_whole_network() -> None:
    """A new leader knows none of the versions its nodes hold: the whole network is encoded once
    per snapshot for all of them, not once per version each holds."""
    tasks, services, nets, nodes = random_cluster(8)
    store = FakeStore()
    snap = install(store, tasks, services, nets, nodes, 1)
    net_id = snap.net.networks_of("n0")[0]
    wholes = [assignments.net_change(store, snap, net_id, have) for have in ("gone-1", "gone-2", None)]
    assert wholes[0] is wholes[1] is wholes[2]
    assert json.loads(wholes[0])["From"] is None
    assert {(net_id, "gone-1"), (net_id, "gone-2"), (net_id, None)} <= snap.wholes
    node = Held()
    assert node.apply(wire(snap, store, "n0", {net_id: "gone-3"})["NetParts"]) == full(snap.net, "n0")
    # and every node's answer carries that one object, not a copy of it in a text of its own
    for node_id in ("n0", "n1"):
        pieces = assignments.encode_pieces({"Signature": "x", **net_answer(store, snap, node_id, {net_id: "gone"})})
        if net_id in snap.net.networks_of(node_id):
            assert any(p is wholes[0] for p in pieces), node_id


def test_a_change_from_another_version_than_held_is_not_applied() -> None:
    tasks, services, nets, nodes = random_cluster(7)
    store = FakeStore()
    snap = install(store, tasks, services, nets, nodes, 1)
    node = Held()
    parts = wire(snap, store, "n0", {})["NetParts"]
    net_id = next(iter(parts["Changes"]))
    node.apply(parts)
    forged = {**parts, "Changes": {net_id: {"Version": "v2", "From": "not-held", "Set": {}, "Del": []}}}
    assert node.apply(forged) is None
    assert net_id not in node.have()  # asked for whole at the next poll


def test_the_api_refuses_a_malformed_net_have() -> None:
    from shoal.api.cluster import net_have
    from shoal.errors import InvalidArgument

    assert net_have({}) is None
    assert net_have({"NetHave": {}}) == {}
    assert net_have({"NetHave": {"appnet": "a1b2"}}) == {"appnet": "a1b2"}
    for bad in ([], "appnet", {"appnet": 3}, {"appnet": None}):
        try:
            net_have({"NetHave": bad})
        except InvalidArgument as exc:
            assert exc.status == 400 and exc.message == "NetHave must be an object of network IDs to version strings"
        else:
            raise AssertionError(f"accepted NetHave {bad!r}")


def test_a_node_with_nothing_to_program_keeps_the_changes_without_rebuilding() -> None:
    tasks, services, nets, nodes = random_cluster(8)
    store = FakeStore()
    snap = install(store, tasks, services, nets, nodes, 1)
    node = Held()
    assert node.apply(wire(snap, store, "n0", {})["NetParts"], assemble_state=False) == {}
    assert node.have() == {n: snap.net.network(n)["digest"] for n in snap.net.networks_of("n0")}
    assert node.apply(wire(snap, store, "n0", node.have())["NetParts"]) == full(snap.net, "n0")


def test_versions_no_node_was_sent_do_not_push_out_those_nodes_hold() -> None:
    tasks, services, nets, nodes = random_cluster(9)
    store = FakeStore()
    rng = random.Random(9)
    snap = install(store, tasks, services, nets, nodes, 0)
    node = Held()
    node.apply(wire(snap, store, "n0", {})["NetParts"])
    for step in range(NET_HISTORY * 3):  # snapshots several times a second while tasks start
        tasks = shuffle(rng, tasks)
        snap = install(store, tasks, services, nets, nodes, step + 1)
    parts = wire(snap, store, "n0", node.have())["NetParts"]
    assert all(c["From"] is not None for c in parts["Changes"].values())
    assert node.apply(parts) == full(snap.net, "n0")


def sent_bytes(form: str) -> float:
    return metrics.REGISTRY.get_sample_value("shoal_assignment_network_bytes_total", {"form": form}) or 0.0


def test_network_bytes_are_counted_as_whole_or_change_by_what_the_node_held() -> None:
    tasks, services, nets, nodes = random_cluster(5)
    store = FakeStore()
    snap = install(store, tasks, services, nets, nodes, 1)
    whole0, change0 = sent_bytes("whole"), sent_bytes("change")
    first = net_answer(store, snap, "n1", {})["NetParts"]
    node = Held()
    node.apply(json.loads(b"".join(first)))
    whole1, change1 = sent_bytes("whole"), sent_bytes("change")
    assert change1 == change0
    assert whole1 - whole0 == sum(len(assignments.net_change(store, snap, n, None) or "") for n in node.have())
    moved = next(t for t in tasks if t["Status"]["State"] == "running" and t["NodeID"] in ("n0", "n2"))
    tasks = [with_status(t, "failed", "x", NOW) if t is moved else t for t in tasks]
    snap = install(store, tasks, services, nets, nodes, 2)
    parts = net_answer(store, snap, "n1", node.have())["NetParts"]
    changes = json.loads(b"".join(parts))["Changes"]
    assert changes and sent_bytes("whole") == whole1
    expected = sum(len(assignments.net_change(store, snap, n, node.have()[n]) or "") for n in changes)
    assert sent_bytes("change") - change1 == expected > 0


def test_a_task_name_two_live_tasks_share_is_the_running_ones_on_both_paths() -> None:
    """A rolling update (start-first) has the old and the new task of a slot live at once:
    "web.3" names the running one, on the full path and in what a node assembles alike."""
    tasks, services, nets, nodes = random_cluster(5)
    used = used_addresses(nets, services, tasks)
    old = next(t for t in tasks if t["Status"]["State"] == "running" and t.get("NetworksAttachments"))
    svc = next(s for s in services if s["ID"] == old["ServiceID"])
    for state, expect_new in (("starting", False), ("running", None)):
        new = new_task(svc, old["Slot"], None, NOW, task_id=f"{old['ID']}-new")
        new["NetworksAttachments"] = task_attachments(svc, nets, used)
        for att in new["NetworksAttachments"]:  # above every address in use, as text too
            att["Addresses"] = [att["Addresses"][0].rsplit(".", 1)[0] + ".99/24"]
        new = with_status(dict(new, NodeID="n1"), state, "x", NOW)
        cluster = [*tasks, new]
        store = FakeStore()
        snap = install(store, cluster, services, nets, nodes, 1)
        net_id = old["NetworksAttachments"][0]["Network"]["ID"]
        short = f"{svc['Spec']['Name']}.{old['Slot']}"
        names = snap.net.detail(net_id)["dns"]["Names"]
        old_ip = old["NetworksAttachments"][0]["Addresses"][0].split("/")[0]
        new_ip = new["NetworksAttachments"][0]["Addresses"][0].split("/")[0]
        assert names[f"{short}.{old['ID']}"] == old_ip and names[f"{short}.{new['ID']}"] == new_ip
        assert new_ip > old_ip
        if expect_new is None:  # both running: the greater address
            assert names[short] == max(old_ip, new_ip)
        else:
            assert names[short] == old_ip
        for node in nodes:
            got = Held().apply(wire(snap, store, node["ID"], {})["NetParts"])
            assert got == full(snap.net, node["ID"])


def test_a_task_that_starts_running_changes_one_small_item_per_network() -> None:
    """Every node on an overlay hears of every endpoint: its task starting must not re-send it."""
    tasks, services, nets, nodes = random_cluster(5)
    starting = next(
        t
        for t in tasks
        if t["Status"]["State"] == "starting" and t.get("NetworksAttachments") and t["DesiredState"] == "running"
    )
    store = FakeStore()
    snap = install(store, tasks, services, nets, nodes, 1)
    node = Held()
    node.apply(wire(snap, store, "n1", {})["NetParts"])
    tasks = [with_status(t, "running", "x", NOW) if t is starting else t for t in tasks]
    snap = install(store, tasks, services, nets, nodes, 2)
    parts = wire(snap, store, "n1", node.have())["NetParts"]
    for att in starting["NetworksAttachments"]:
        change = parts["Changes"][att["Network"]["ID"]]
        ip = att["Addresses"][0].split("/")[0]
        assert change["From"] is not None and change["Del"] == []
        assert change["Set"][f"r:{ip}"] == 1
        # nothing else but the name of a service whose first task this is (dnsrr: no VIP before)
        assert all(k.startswith("s:") for k in change["Set"] if k != f"r:{ip}"), change["Set"]
    assert node.apply(parts) == full(snap.net, "n1")


SHARED = ("Networks", "LB", "DNS")  # what the networks' items make; the rest is the node's own part


def test_a_large_network_change_held_back_leaves_the_node_on_its_version_and_follows_whole(monkeypatch) -> None:
    """With its own tasks, a node is not sent a large change of an overlay it holds: it keeps the
    version it holds (and programs that), and its next answer brings the change."""
    tasks, services, nets, nodes = random_cluster(7)
    store = FakeStore()
    snap = install(store, tasks, services, nets, nodes, 1)
    node = Held()
    before = node.apply(wire(snap, store, "n0", {})["NetParts"])
    assert before == full(snap.net, "n0")
    moved = [t for t in tasks if t["Status"]["State"] == "running" and t.get("NetworksAttachments")][:3]
    tasks = [with_status(t, "failed", "x", NOW) if t in moved else t for t in tasks]
    snap = install(store, tasks, services, nets, nodes, 2)
    changed = {n for n in node.have() if assignments.net_change(store, snap, n, node.have()[n]) is not None}
    assert changed
    monkeypatch.setattr(assignments, "DEFER_NET_BYTES", 0)  # every change is "large"
    held_back: set[str] = set()
    parts = json.loads(encode({"Signature": "x", **net_answer(store, snap, "n0", node.have(), held_back)}))
    assert held_back == changed and not parts["NetParts"]["Changes"]
    now = node.apply(parts["NetParts"])  # the overlays as of the version it holds, whole and usable
    assert now is not None and {k: now[k] for k in SHARED} == {k: before[k] for k in SHARED}
    assert now["Published"] == full(snap.net, "n0")["Published"]  # its own part is always current
    assert node.apply(wire(snap, store, "n0", node.have())["NetParts"]) == full(snap.net, "n0")
    monkeypatch.setattr(assignments, "DEFER_NET_BYTES", 1 << 30)
    kept: set[str] = set()
    net_answer(store, snap, "n0", {n: v for n, v in node.have().items()}, kept)
    assert kept == set()  # nothing to hold back: it holds the current versions


def test_only_an_answer_with_the_nodes_own_task_changes_holds_network_changes_back() -> None:
    defers = assignments.defers_network
    assert defers("tasks1.net1", "tasks2.net2", True)
    assert not defers("tasks1.net1", "tasks1.net2", True)  # a network-only answer exists to send them
    assert not defers("tasks1.deferred", "tasks2.net2", True)  # held back last time: not twice in a row
    assert not defers(None, "tasks2.net2", True)  # the node's first answer: everything
    assert not defers("tasks1.net1", "tasks2.net2", False)  # a node that takes whole task lists
