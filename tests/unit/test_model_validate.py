"""shoal.model.validate: NodeSpec and SwarmSpec validation, CLI labels."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.model import (
    SpecError,
    default_swarm_spec,
    parse_label,
    parse_labels,
    validate_node_spec,
    validate_swarm_spec,
)


def test_spec_error_is_a_400_value_error() -> None:
    err = SpecError("bad")
    assert isinstance(err, ValueError)
    assert err.message == "bad"
    assert err.status == 400


# --- NodeSpec -----------------------------------------------------------------------------------


def test_node_spec_normalised() -> None:
    spec = validate_node_spec({"Role": "Manager", "Availability": "DRAIN", "Labels": {"zone": "a"}, "Name": "n1"})
    assert spec == {"Role": "manager", "Availability": "drain", "Labels": {"zone": "a"}, "Name": "n1"}


def test_node_spec_null_labels_and_empty_name() -> None:
    assert validate_node_spec({"Role": "worker", "Availability": "active", "Labels": None, "Name": ""}) == {
        "Role": "worker",
        "Availability": "active",
        "Labels": {},
    }


def test_node_spec_partial_update_keeps_current() -> None:
    current = {"Role": "worker", "Availability": "active", "Labels": {"a": "1"}}
    assert validate_node_spec({"Availability": "pause"}, current) == {
        "Role": "worker",
        "Availability": "pause",
        "Labels": {"a": "1"},
    }
    # Labels replace as a whole, like Docker's full-spec update
    assert validate_node_spec({"Labels": {"b": "2"}}, current)["Labels"] == {"b": "2"}
    assert validate_node_spec({"Labels": None}, current)["Labels"] == {}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"Role": "boss", "Availability": "active"}, 'invalid Role: \'boss\' (must be "worker" or "manager")'),
        ({"Role": "worker", "Availability": "sleep"}, "invalid Availability: 'sleep'"),
        ({"Availability": "active"}, 'invalid Role: ""'),
        ({"Role": "worker"}, 'invalid Availability: ""'),
        ({"Role": 1, "Availability": "active"}, "invalid Role: 1"),
        ({"Role": "worker", "Availability": "active", "Labels": {"a": 1}}, "label 'a' must have a string value"),
        ({"Role": "worker", "Availability": "active", "Labels": {"": "x"}}, "label keys must be non-empty"),
        ({"Role": "worker", "Availability": "active", "Labels": ["a=b"]}, "Labels must be an object"),
        ({"Role": "worker", "Availability": "active", "Name": 3}, "Name must be a string"),
        ({"Role": "worker", "Availability": "active", "Drain": True}, "unknown field 'Drain' in node spec"),
    ],
)
def test_node_spec_rejects(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as exc:
        validate_node_spec(spec)
    assert message in exc.value.message


def test_node_spec_must_be_object() -> None:
    with pytest.raises(SpecError, match="node spec must be an object"):
        validate_node_spec(["worker"])


def test_node_spec_does_not_mutate_input() -> None:
    spec = {"Role": "WORKER", "Availability": "active", "Labels": {"a": "1"}}
    out = validate_node_spec(spec)
    out["Labels"]["b"] = "2"
    assert spec == {"Role": "WORKER", "Availability": "active", "Labels": {"a": "1"}}


# --- SwarmSpec ----------------------------------------------------------------------------------


def test_default_swarm_spec_is_dockers_with_a_1s_heartbeat() -> None:
    spec = default_swarm_spec()
    assert spec["Orchestration"] == {"TaskHistoryRetentionLimit": 5}
    assert spec["Raft"] == {
        "SnapshotInterval": 10000,
        "KeepOldSnapshots": 0,
        "LogEntriesForSlowFollowers": 500,
        "ElectionTick": 10,
        "HeartbeatTick": 1,
    }
    assert spec["Dispatcher"] == {"HeartbeatPeriod": 1_000_000_000}
    assert spec["CAConfig"] == {"NodeCertExpiry": 7_776_000_000_000_000}
    assert spec["TaskDefaults"] == {}
    assert spec["EncryptionConfig"] == {"AutoLockManagers": False}
    assert spec["Name"] == "default"
    assert default_swarm_spec() is not default_swarm_spec()


def test_swarm_spec_empty_gives_defaults() -> None:
    assert validate_swarm_spec({}) == default_swarm_spec()
    assert validate_swarm_spec(None) == default_swarm_spec()
    assert validate_swarm_spec({"Orchestration": None, "Dispatcher": None}) == default_swarm_spec()


def test_swarm_spec_merges_over_base_per_field() -> None:
    base = validate_swarm_spec({"Raft": {"SnapshotInterval": 50}, "Labels": {"env": "prod"}})
    updated = validate_swarm_spec(
        {"Dispatcher": {"HeartbeatPeriod": "5s"}, "CAConfig": {"NodeCertExpiry": "48h"}, "Raft": {"ElectionTick": 20}},
        base,
    )
    assert updated["Dispatcher"]["HeartbeatPeriod"] == 5_000_000_000
    assert updated["CAConfig"]["NodeCertExpiry"] == 48 * 3600 * 10**9
    assert updated["Raft"]["SnapshotInterval"] == 50  # kept from base
    assert updated["Raft"]["ElectionTick"] == 20
    assert updated["Labels"] == {"env": "prod"}  # kept: Labels absent from the update
    assert validate_swarm_spec({"Labels": {}}, base)["Labels"] == {}


def test_swarm_spec_full_docker_body_round_trips() -> None:
    body = {
        "Name": "default",
        "Labels": {"a": "b"},
        "Orchestration": {"TaskHistoryRetentionLimit": -1},
        "Raft": {
            "SnapshotInterval": 10000,
            "KeepOldSnapshots": 0,
            "LogEntriesForSlowFollowers": 500,
            "ElectionTick": 3,
            "HeartbeatTick": 1,
        },
        "Dispatcher": {"HeartbeatPeriod": 5000000000},
        "CAConfig": {"NodeCertExpiry": 7.776e15, "ExternalCAs": [{"URL": "https://ca.example/sign"}]},
        "TaskDefaults": {"LogDriver": {"Name": "json-file", "Options": {"max-file": "10"}}},
        "EncryptionConfig": {"AutoLockManagers": False},
    }
    out = validate_swarm_spec(body)
    assert out["CAConfig"] == {
        "NodeCertExpiry": 7776000000000000,
        "ExternalCAs": [{"Protocol": "cfssl", "URL": "https://ca.example/sign"}],
    }
    assert isinstance(out["CAConfig"]["NodeCertExpiry"], int)
    assert out["TaskDefaults"] == {"LogDriver": {"Name": "json-file", "Options": {"max-file": "10"}}}
    assert out["Orchestration"]["TaskHistoryRetentionLimit"] == -1
    assert validate_swarm_spec(out) == out


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"Raft": {"ElectionTick": 1, "HeartbeatTick": 1}}, "ElectionTick must be greater than Raft.HeartbeatTick"),
        ({"Raft": {"HeartbeatTick": 0}}, "Raft.HeartbeatTick must be at least 1"),
        ({"Raft": {"SnapshotInterval": -1}}, "Raft.SnapshotInterval must be at least 0"),
        ({"Raft": {"SnapshotInterval": "many"}}, "Raft.SnapshotInterval must be an integer"),
        ({"Raft": {"SnapshotInterval": True}}, "Raft.SnapshotInterval must be an integer"),
        ({"Raft": {"Ticks": 1}}, "unknown field 'Ticks' in Raft"),
        ({"Dispatcher": {"HeartbeatPeriod": 0}}, "heartbeat period must be positive"),
        ({"Dispatcher": {"HeartbeatPeriod": "soon"}}, "Dispatcher.HeartbeatPeriod: invalid duration 'soon'"),
        ({"CAConfig": {"NodeCertExpiry": "30m"}}, "minimum certificate expiry time is: 1h0m0s"),
        ({"CAConfig": {"ExternalCAs": [{"Protocol": "acme", "URL": "x"}]}}, "invalid CAConfig.ExternalCAs[0].Protocol"),
        ({"CAConfig": {"ExternalCAs": [{"Protocol": "cfssl"}]}}, "CAConfig.ExternalCAs[0].URL is required"),
        ({"CAConfig": {"ExternalCAs": "x"}}, "CAConfig.ExternalCAs must be a list"),
        ({"EncryptionConfig": {"AutoLockManagers": "yes"}}, "EncryptionConfig.AutoLockManagers must be true or false"),
        ({"TaskDefaults": {"LogDriver": {"Name": "x", "Opts": {}}}}, "unknown field 'Opts' in TaskDefaults.LogDriver"),
        ({"Orchestration": 5}, "Orchestration must be an object"),
        ({"Labels": {"a": None}}, "label 'a' must have a string value"),
        ({"Name": 5}, "Name must be a string"),
        ({"Raft ": {}}, "unknown field 'Raft ' in swarm spec"),
        ([], "swarm spec must be an object"),
    ],
)
def test_swarm_spec_rejects(spec: Any, message: str) -> None:
    with pytest.raises(SpecError) as exc:
        validate_swarm_spec(spec)
    assert message in exc.value.message


def test_swarm_spec_does_not_mutate_base() -> None:
    base = default_swarm_spec()
    validate_swarm_spec({"Raft": {"SnapshotInterval": 1}}, base)
    assert base == default_swarm_spec()


# --- CLI labels ---------------------------------------------------------------------------------


def test_parse_label() -> None:
    assert parse_label("zone=a") == ("zone", "a")
    assert parse_label("zone") == ("zone", "")
    assert parse_label("k=v=w") == ("k", "v=w")
    assert parse_label("k=") == ("k", "")
    assert parse_labels(["a=1", "b", "a=2"]) == {"a": "2", "b": ""}
    for bad in ("", "=v", " =v"):
        with pytest.raises(SpecError, match="invalid label"):
            parse_label(bad)
