"""Pure logic of node control calls and liveness (no Raft, no network)."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest

from shoal import config
from shoal.errors import Conflict, InvalidArgument, NotFound
from shoal.manager.control import nodes as ops
from shoal.manager.control.commit import commit_retrying
from shoal.manager.control.filters import filter_nodes
from shoal.manager.dispatcher import Dispatcher, liveness_changes
from shoal.manager.raftview import RaftView
from shoal.manager.roles import pending_demotions
from shoal.model.objects import new_node
from shoal.store.changes import Change
from unit.test_control_race import StateStore


def node(nid: str, host: str, role: str = "worker", state: str = "ready", raft: str | None = None) -> dict:
    n = new_node(nid, host, role, f"10.0.0.{len(host)}", "2026-01-01T00:00:00Z", state=state)
    n["Version"]["Index"] = 7
    if raft:
        n["ManagerStatus"]["RaftAddr"] = raft
    return n


MGRS = [
    node("a1", "m1", "manager", raft="10.0.0.1:2378"),
    node("b2", "m2", "manager", raft="10.0.0.2:2378"),
    node("c3", "m3", "manager", raft="10.0.0.3:2378"),
]


def view(leader: str = "10.0.0.1:2378", up: tuple[str, ...] = ("10.0.0.2:2378", "10.0.0.3:2378")) -> RaftView:
    return RaftView(self_addr="10.0.0.1:2378", leader=leader, connected={a: True for a in up})


def test_resolve_by_id_hostname_prefix_and_ambiguity() -> None:
    nodes = [node("abc111", "w1"), node("abd222", "w2")]
    assert ops.resolve_node(nodes, "abc111")["ID"] == "abc111"
    assert ops.resolve_node(nodes, "w2")["ID"] == "abd222"
    assert ops.resolve_node(nodes, "abc")["ID"] == "abc111"
    with pytest.raises(NotFound, match="ambiguous"):
        ops.resolve_node(nodes, "ab")
    with pytest.raises(NotFound, match="not found"):
        ops.resolve_node(nodes, "zz")


def test_decorate_sets_leader_and_reachability() -> None:
    shown = [ops.decorate(n, view(up=("10.0.0.2:2378",))) for n in MGRS]
    assert [s["ManagerStatus"]["Leader"] for s in shown] == [True, False, False]
    assert [s["ManagerStatus"]["Reachability"] for s in shown] == ["reachable", "reachable", "unreachable"]
    assert "RaftAddr" not in shown[0]["ManagerStatus"] and "RaftAddr" in MGRS[0]["ManagerStatus"]


def test_filters() -> None:
    nodes = [*MGRS, node("w9", "w9")]
    assert [n["ID"] for n in filter_nodes(nodes, {"role": ["worker"]})] == ["w9"]
    assert len(filter_nodes(nodes, {"name": ["m1", "m2"]})) == 2
    with pytest.raises(InvalidArgument, match="invalid filter"):
        filter_nodes(nodes, {"colour": ["red"]})


def test_demote_refusals_last_manager_and_quorum() -> None:
    spec = {"Role": "worker", "Availability": "active", "Labels": {}}
    with pytest.raises(InvalidArgument, match="last manager"):
        ops.update_node_change(MGRS[0], spec, 7, [MGRS[0]], view())
    # m3 unreachable: demoting m2 leaves m1 + unreachable m3 -> 1 of 2 reachable, quorum is 2
    with pytest.raises(InvalidArgument, match="quorum"):
        ops.update_node_change(MGRS[1], spec, 7, MGRS, view(up=("10.0.0.2:2378",)))
    change = ops.update_node_change(MGRS[1], spec, 7, MGRS, view())
    assert change.obj["Spec"]["Role"] == "worker" and change.expected_version == 7


def test_update_checks_version_and_spec() -> None:
    with pytest.raises(Conflict, match="out of sequence"):
        ops.update_node_change(MGRS[0], {"Role": "manager"}, 6, MGRS, view())
    with pytest.raises(ValueError):
        ops.update_node_change(MGRS[0], {"Role": "manager", "Availability": "sideways"}, 7, MGRS, view())


def test_remove_refusals() -> None:
    with pytest.raises(InvalidArgument, match="demoted to worker"):
        ops.remove_node_change(MGRS[0], force=True)
    with pytest.raises(InvalidArgument, match="not down"):
        ops.remove_node_change(node("w1", "w1"), force=False)
    assert ops.remove_node_change(node("w1", "w1"), force=True).op == "delete"
    assert ops.remove_node_change(node("w1", "w1", state="down"), force=False).obj_id == "w1"


def test_liveness_marks_down_after_three_periods_and_ready_again() -> None:
    nodes = [MGRS[0], node("w1", "w1"), node("w2", "w2", state="down")]
    seen = {"w1": 100.0, "w2": 104.5}
    told = {"w1": 1.0, "w2": 1.0}  # both beat in this term
    changes = liveness_changes(nodes, seen, now=104.0, period=1.0, self_id="a1", addrs={}, told=told)
    assert [(c.obj_id, c.obj["Status"]["State"]) for c in changes] == [("w1", "down"), ("w2", "ready")]
    assert changes[0].expected_version == 7
    assert changes[0].obj["Status"]["Message"] == "heartbeat failure: no heartbeat for 3 periods"
    assert liveness_changes(nodes, seen, now=102.9, period=1.0, self_id="a1", addrs={}, told=told)[0].obj_id == "w2"


def test_a_node_not_heard_from_in_this_term_gets_twice_the_grace() -> None:
    """SwarmKit's "unknown" nodes after a leader change: 2 x 3 periods before Down."""
    nodes = [MGRS[0], node("w1", "w1")]
    seen = {"w1": 100.0}
    assert liveness_changes(nodes, seen, now=105.9, period=1.0, self_id="a1", addrs={}) == []
    (change,) = liveness_changes(nodes, seen, now=106.1, period=1.0, self_id="a1", addrs={})
    assert change.obj["Status"]["State"] == "down"
    assert "unknown state" in change.obj["Status"]["Message"]
    # once it beat in this term, the normal grace counts again
    assert liveness_changes(nodes, seen, now=103.1, period=1.0, self_id="a1", addrs={}, told={"w1": 1.0})


class ListStore:
    def __init__(self, nodes: list[dict]) -> None:
        self.nodes = nodes

    def list(self, kind: str) -> list[dict]:
        assert kind == "node"
        return self.nodes

    list_shared = list


def test_a_node_that_joins_after_the_leader_started_gets_its_grace_period() -> None:
    store = ListStore([MGRS[0], node("w1", "w1")])
    dispatcher = Dispatcher(store, self_id="a1", period=1.0)
    assert dispatcher.liveness_round(100.0) == []
    store.nodes.append(node("w2", "w2"))  # joined, its first heartbeat not sent yet
    assert dispatcher.liveness_round(100.5) == []
    dispatcher.last_seen["w1"] = 103.0
    # w2 first known at 100.5 and never heard from: still within its 2 x 3 periods
    assert dispatcher.liveness_round(106.4) == []
    assert [c.obj_id for c in dispatcher.liveness_round(106.6)] == ["w2"]


def test_pending_demotions() -> None:
    demoted = node("b2", "m2", "manager", raft="x")
    demoted["Spec"]["Role"] = "worker"
    assert pending_demotions([*MGRS, demoted]) == [demoted]


def test_config_file_and_flag_overrides(tmp_path: Path) -> None:
    path = tmp_path / "shoald.yml"
    path.write_text("advertise_addr: eth0\nheartbeat_period: 0.5\nlog_level: DEBUG\n")
    cfg = config.load(path, {"heartbeat_period": 2, "listen_addr": None})
    assert (cfg.advertise_addr, cfg.heartbeat_period, cfg.log_level) == ("eth0", 2.0, "debug")
    path.write_text("colour: red\n")
    with pytest.raises(config.ConfigError, match="unknown setting"):
        config.load(path)
    path.write_text("heartbeat_period: -1\n")
    with pytest.raises(config.ConfigError, match="heartbeat_period"):
        config.load(path)
    with pytest.raises(config.ConfigError, match="no such file"):
        config.load(tmp_path / "missing.yml")


def test_task_driver_is_oci_and_the_removed_process_driver_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from shoal import daemon

    path = tmp_path / "shoald.yml"
    path.write_text("log_level: info\n")
    assert config.load(path).task_driver == "oci"
    path.write_text("task_driver: process\n")
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    assert str(err.value).startswith("task_driver: the process driver (a Python supervisor per task) was removed")
    path.write_text("task_driver: lxc\n")
    with pytest.raises(config.ConfigError, match="bad value for task_driver: 'lxc'"):
        config.load(path)
    # the flag gets the same reason (not argparse's "invalid choice"), and shoald exits 2
    path.write_text("")
    assert daemon.main(["--config", str(path), "--task-driver", "process"]) == 2
    assert "shoald: task_driver: the process driver" in capsys.readouterr().err


def _stored(store: Any, n: dict) -> None:
    n = copy.deepcopy(n)
    n["Version"] = {"Index": 0}
    store.commit([Change(op="create", kind="node", obj=n)])


def test_update_and_remove_resolve_the_reference_and_return_the_changes() -> None:
    store = StateStore()
    _stored(store, node("w1id", "w1", state="down"))
    version = store.get("node", "w1id")["Version"]["Index"]
    (change,) = ops.update(store, "w1", version, {"Role": "worker", "Availability": "drain"}, view())
    assert (change.obj_id, change.expected_version, change.obj["Spec"]["Availability"]) == ("w1id", version, "drain")
    with pytest.raises(Conflict, match="update out of sequence"):
        ops.update(store, "w1id", version - 1, {"Role": "worker"}, view())
    (delete,) = ops.remove(store, "w1i", force=False)  # a unique ID prefix
    assert (delete.op, delete.obj_id, delete.expected_version) == ("delete", "w1id", version)
    with pytest.raises(NotFound):
        ops.remove(store, "nobody", force=True)


def test_a_node_back_up_between_the_check_and_the_delete_is_not_removed() -> None:
    store = StateStore()
    _stored(store, node("w1id", "w1", state="down"))

    def back_up() -> None:  # a heartbeat lands after `node rm` checked that the node is down
        n = store.get("node", "w1id")
        n["Status"]["State"] = "ready"
        store.commit([Change(op="update", kind="node", obj=n, obj_id="w1id")])

    store.meanwhile = back_up
    with pytest.raises(InvalidArgument, match="node w1 is not down and can't be removed"):
        asyncio.run(commit_retrying(store, lambda: ops.remove(store, "w1", force=False)))
    assert [n["ID"] for n in store.list("node")] == ["w1id"]


def test_the_time_the_leaders_loop_was_held_counts_against_no_node() -> None:
    store = ListStore([MGRS[0], node("w1", "w1"), node("w2", "w2")])
    dispatcher = Dispatcher(store, self_id="a1", period=1.0)
    assert dispatcher.liveness_round(100.0) == []
    dispatcher.last_seen["w2"] = 100.5
    dispatcher.told.update({"w1": 1.0, "w2": 1.0})  # both beat in this term: 3 periods of grace
    # the loop was held from 100.5 to 104.0: both nodes' beats may wait unread in the sockets
    dispatcher.forgive(3.5, 104.0)
    assert dispatcher.liveness_round(104.0) == []
    assert dispatcher.last_seen == {"a1": 103.5, "w1": 103.5, "w2": 104.0}
    dispatcher.forgive(0.1, 106.8)  # an ordinary late wakeup changes nothing
    assert [c.obj_id for c in dispatcher.liveness_round(106.8)] == ["w1"]


class FailingStore(ListStore):
    """Its writes never commit (a leader without a quorum)."""

    epoch = 1

    async def acommit(self, changes: list[Change], epoch: int | None = None) -> int:
        raise TimeoutError("timed out waiting for the write to commit")


def test_a_liveness_write_that_fails_is_said_once(caplog: pytest.LogCaptureFixture) -> None:
    # a new leader whose Down marks did not commit for minutes logged nothing at the default level
    store = FailingStore([MGRS[0], node("w1", "w1")])
    dispatcher = Dispatcher(store, self_id="a1", period=0.04)

    async def run() -> None:
        dispatcher.start()
        await asyncio.sleep(0.6)  # w1 is never heard from: Down after 2 x 3 periods, then every round
        await dispatcher.stop()

    with caplog.at_level("DEBUG", logger="shoal.dispatcher"):
        asyncio.run(run())
    failed = [r for r in caplog.records if r.getMessage().startswith("liveness round failed")]
    assert len(failed) >= 3, failed  # the write was tried again each round
    assert [r.levelname for r in failed][:2] == ["WARNING", "DEBUG"]
    assert "TimeoutError: timed out waiting for the write to commit" in failed[0].getMessage()
    assert all(r.levelname == "DEBUG" for r in failed[1:])
