"""The store's state machine without Raft: batches, versions, names, request ids, epochs, snapshots."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from shoal.store import state as state_mod
from shoal.store.changes import Change
from shoal.store.errors import InvalidChange
from shoal.store.state import StoreState, diff_events


def svc(obj_id: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"ID": obj_id, "CreatedAt": "t0", "UpdatedAt": "t0", "Spec": {"Name": name}, **extra}


def wire(*changes: Change) -> list[Any]:
    return [c.to_wire() for c in changes]


def create(kind: str, obj: dict[str, Any]) -> Change:
    return Change("create", kind, obj)


def test_a_batch_of_100_creates_gets_one_index() -> None:
    st = StoreState()
    out, events = st.apply_batch(7, "r1", wire(*(create("task", {"ID": f"t{i}"}) for i in range(100))), None)
    assert out == ("ok", 7)
    assert len(st.objects["task"]) == 100
    assert {o["Version"]["Index"] for o in st.objects["task"].values()} == {7}
    assert [(e.kind, e.action, e.index) for e in events] == [("task", "create", 7)] * 100


def test_stale_version_fails_the_whole_batch() -> None:
    st = StoreState()
    st.apply_batch(2, "r1", wire(create("service", svc("a", "web")), create("node", {"ID": "n"})), None)
    before = pickle.dumps((st.objects, st.names))
    upd = Change("update", "service", svc("a", "web2"), expected_version=1)
    out, events = st.apply_batch(3, "r2", wire(create("task", {"ID": "t"}), upd), None)
    assert out[:2] == ("err", "VersionConflict") and "out of sequence" in out[2]
    assert events == []
    assert pickle.dumps((st.objects, st.names)) == before  # nothing of the batch applied


def test_update_and_delete_with_the_right_version() -> None:
    st = StoreState()
    st.apply_batch(2, "r1", wire(create("service", svc("a", "web"))), None)
    out, _ = st.apply_batch(5, "r2", wire(Change("update", "service", svc("a", "api"), expected_version=2)), None)
    assert out == ("ok", 5)
    assert st.objects["service"]["a"]["Version"] == {"Index": 5}
    assert st.names["service"] == {"api": "a"}  # the old name is free again
    out, events = st.apply_batch(6, "r3", wire(Change("delete", "service", obj_id="a", expected_version=5)), None)
    assert out == ("ok", 6) and events[0].action == "delete" and events[0].obj["Spec"]["Name"] == "api"
    assert st.objects["service"] == {} and st.names["service"] == {}


def test_name_conflicts_apply_nothing() -> None:
    st = StoreState()
    st.apply_batch(2, "r1", wire(create("network", svc("n1", "front"))), None)
    out, _ = st.apply_batch(3, "r2", wire(create("task", {"ID": "t"}), create("network", svc("n2", "front"))), None)
    assert out == ("err", "NameConflict", 'network name "front" is already in use')
    assert "t" not in st.objects["task"]
    # inside one batch too
    out, _ = st.apply_batch(4, "r3", wire(create("service", svc("a", "x")), create("service", svc("b", "x"))), None)
    assert out[1] == "NameConflict" and st.objects["service"] == {}
    # a name freed earlier in the same batch can be taken
    batch = wire(Change("delete", "network", obj_id="n1"), create("network", svc("n3", "front")))
    assert st.apply_batch(5, "r4", batch, None)[0] == ("ok", 5)
    assert st.names["network"] == {"front": "n3"}
    # tasks have no unique names
    same = wire(
        create("task", {"ID": "t1", "Spec": {"Name": "x"}}), create("task", {"ID": "t2", "Spec": {"Name": "x"}})
    )
    assert st.apply_batch(6, "r5", same, None)[0] == ("ok", 6)


def test_missing_objects_and_duplicates() -> None:
    st = StoreState()
    assert st.apply_batch(2, "r1", wire(Change("delete", "node", obj_id="x")), None)[0][1] == "NotFound"
    assert st.apply_batch(3, "r2", wire(Change("update", "node", {"ID": "x"})), None)[0][1] == "NotFound"
    st.apply_batch(4, "r3", wire(create("node", {"ID": "x"})), None)
    assert st.apply_batch(5, "r4", wire(create("node", {"ID": "x"})), None)[0][1] == "AlreadyExists"


def test_a_retried_request_is_applied_once_with_the_same_answer() -> None:
    st = StoreState()
    batch = wire(create("task", {"ID": "t"}))
    assert st.apply_batch(3, "same", batch, None)[0] == ("ok", 3)
    out, events = st.apply_batch(9, "same", batch, None)
    assert out == ("ok", 3) and events == []
    assert st.objects["task"]["t"]["Version"] == {"Index": 3}
    # failures are remembered too
    bad = wire(Change("delete", "task", obj_id="nope"))
    first = st.apply_batch(10, "bad", bad, None)[0]
    assert st.apply_batch(11, "bad", bad, None)[0] == first


def test_recent_request_ids_are_bounded_first_in_first_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_mod, "RECENT_REQUESTS", 3)
    st = StoreState()
    for i in range(5):
        st.apply_batch(i + 2, f"r{i}", [], None)
    assert list(st.recent) == ["r2", "r3", "r4"]


def test_malformed_wire_changes_are_answers_not_exceptions() -> None:
    st = StoreState()
    for bad in (["nope"], [("create", "task", None, None, None)], [("zap", "task", {"ID": "a"}, "a", None)], "x"):
        out, _ = st.apply_batch(2, repr(bad), bad, None)  # type: ignore[arg-type]
        assert out[:2] == ("err", "InvalidChange")


def test_change_checks_its_shape_before_proposing() -> None:
    for args in (("make", "task", {"ID": "a"}), ("create", "pod", {"ID": "a"}), ("create", "task", {"X": 1})):
        with pytest.raises(InvalidChange):
            Change(*args)  # type: ignore[arg-type]
    with pytest.raises(InvalidChange):
        Change("delete", "task")
    with pytest.raises(InvalidChange):
        Change("update", "task", {"ID": "a"}, obj_id="b")
    assert Change("delete", "task", obj_id="a").to_wire() == ("delete", "task", None, "a", None)


def test_epochs_move_only_with_higher_terms_and_fence_writes() -> None:
    st = StoreState()
    assert st.bump_epoch(2, "m1:1", 3) and (st.epoch, st.epoch_leader, st.epoch_term) == (1, "m1:1", 3)
    assert not st.bump_epoch(3, "m0:1", 2)  # an old leader's announcement committed late
    assert st.bump_epoch(4, "m2:1", 5) and st.epoch == 2
    out, _ = st.apply_batch(5, "r", wire(create("task", {"ID": "t"})), 1)
    assert out[:2] == ("err", "StaleEpoch") and st.objects["task"] == {}
    assert st.apply_batch(6, "r2", wire(create("task", {"ID": "t"})), 2)[0] == ("ok", 6)


def test_same_commands_same_state() -> None:
    def run() -> bytes:
        st = StoreState()
        st.bump_epoch(2, "a:1", 1)
        st.apply_batch(3, "r1", wire(create("service", svc("s", "web")), create("task", {"ID": "t"})), None)
        st.apply_batch(4, "r2", wire(Change("update", "service", svc("s", "web", Extra=1))), 1)
        st.apply_batch(5, "r3", wire(Change("delete", "task", obj_id="t")), None)
        return pickle.dumps(st.to_dict())

    assert run() == run()


def test_snapshot_round_trip_and_diff_events() -> None:
    old = StoreState()
    old.apply_batch(2, "r1", wire(create("service", svc("a", "web")), create("task", {"ID": "gone"})), None)
    new = StoreState.from_dict(pickle.loads(pickle.dumps(old.to_dict())))
    assert new.names == old.names and new.objects == old.objects and new.recent == old.recent
    new.apply_batch(3, "r2", wire(Change("delete", "task", obj_id="gone"), create("node", {"ID": "n"})), None)
    new.apply_batch(4, "r3", wire(Change("update", "service", svc("a", "web2"))), None)
    events = diff_events(old, new, 4)
    assert sorted((e.kind, e.action) for e in events) == [("node", "create"), ("service", "update"), ("task", "delete")]
    with pytest.raises(ValueError):
        StoreState.from_dict({"format": 99})


def test_none_newer_refuses_a_delete_once_a_service_was_written_after_the_read() -> None:
    # how `network rm` stays safe against a concurrent `service create` using that network
    st = StoreState()
    st.apply_batch(
        2, "r1", wire(create("network", {"ID": "n", "Spec": {"Name": "net"}}), create("service", svc("a", "web"))), None
    )
    remove = wire(Change.none_newer("service", 2), Change("delete", "network", obj_id="n"))
    st.apply_batch(3, "r2", wire(create("service", svc("b", "api"))), None)  # committed between read and delete
    out, events = st.apply_batch(4, "r3", remove, None)
    assert out[:2] == ("err", "VersionConflict") and events == []
    assert "n" in st.objects["network"]
    out, events = st.apply_batch(
        5, "r4", wire(Change.none_newer("service", 3), Change("delete", "network", obj_id="n")), None
    )
    assert out == ("ok", 5) and [(e.kind, e.action) for e in events] == [("network", "delete")]


def test_exists_refuses_a_create_whose_network_was_deleted() -> None:
    st = StoreState()
    st.apply_batch(2, "r1", wire(create("network", {"ID": "n", "Spec": {"Name": "net"}})), None)
    st.apply_batch(3, "r2", wire(Change("delete", "network", obj_id="n")), None)
    out, _ = st.apply_batch(4, "r3", wire(Change.exists("network", "n"), create("service", svc("a", "web"))), None)
    assert out[:2] == ("err", "NotFound") and st.objects["service"] == {}
    st.apply_batch(5, "r4", wire(create("network", {"ID": "m", "Spec": {"Name": "net2"}})), None)
    out, _ = st.apply_batch(6, "r5", wire(Change.exists("network", "m", 4), create("service", svc("a", "web"))), None)
    assert out[:2] == ("err", "VersionConflict")
    out, events = st.apply_batch(
        7, "r6", wire(Change.exists("network", "m", 5), create("service", svc("a", "web"))), None
    )
    assert out == ("ok", 7) and [e.kind for e in events] == ["service"]  # a precondition is no event


def test_an_unchanged_precondition_needs_an_index() -> None:
    with pytest.raises(InvalidChange):
        Change(op="unchanged", kind="service")


def test_secret_and_config_names_are_unique_per_kind_in_the_store() -> None:
    st = StoreState()
    assert st.apply_batch(2, "r1", wire(create("secret", svc("s1", "pw"))), None)[0] == ("ok", 2)
    out, _ = st.apply_batch(3, "r2", wire(create("secret", svc("s2", "pw"))), None)
    assert out == ("err", "NameConflict", 'secret name "pw" is already in use')
    # a config may share a secret's name (SwarmKit keeps them apart too)
    assert st.apply_batch(4, "r3", wire(create("config", svc("c1", "pw"))), None)[0] == ("ok", 4)
    restored = StoreState.from_dict(st.to_dict())
    assert restored.names["secret"] == {"pw": "s1"} and restored.names["config"] == {"pw": "c1"}
