"""shoal.model.validate: NodeSpec and SwarmSpec validation, CLI labels."""

from __future__ import annotations

import copy
import re
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
from shoal.model.network import validate_create
from shoal.model.validate import field, known_fields, validate_init_request, validate_join_request


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
    base = validate_swarm_spec({"Orchestration": {"TaskHistoryRetentionLimit": 7}, "Labels": {"env": "prod"}})
    updated = validate_swarm_spec({"Name": "default", "Dispatcher": {"HeartbeatPeriod": "1s"}}, base)
    assert updated["Dispatcher"]["HeartbeatPeriod"] == 1_000_000_000
    assert updated["Orchestration"]["TaskHistoryRetentionLimit"] == 7  # kept from base
    assert updated["Labels"] == {"env": "prod"}  # kept: Labels absent from the update
    assert validate_swarm_spec({"Labels": {}}, base)["Labels"] == {}
    assert validate_swarm_spec({"Orchestration": {"TaskHistoryRetentionLimit": 0}}, base)["Orchestration"] == {
        "TaskHistoryRetentionLimit": 0  # a pointer in Docker: 0 is a value, null keeps
    }


def test_swarm_spec_zero_keeps_the_current_value_as_docker_merges() -> None:
    # what `docker swarm init` (20.10) sends: ElectionTick and HeartbeatTick are not omitempty
    body = {
        "Orchestration": {},
        "Raft": {"ElectionTick": 0, "HeartbeatTick": 0},
        "Dispatcher": {"HeartbeatPeriod": 0},
        "CAConfig": {"NodeCertExpiry": 0},
        "TaskDefaults": {},
        "EncryptionConfig": {"AutoLockManagers": False},
    }
    assert validate_swarm_spec(body) == default_swarm_spec()


def test_swarm_spec_full_docker_body_round_trips() -> None:
    body = {
        "Name": "default",
        "Labels": {"a": "b"},
        "Orchestration": {"TaskHistoryRetentionLimit": -1},
        "Raft": {
            "SnapshotInterval": 10000,
            "KeepOldSnapshots": 0,
            "LogEntriesForSlowFollowers": 500,
            "ElectionTick": 10,
            "HeartbeatTick": 1,
        },
        "Dispatcher": {"HeartbeatPeriod": 1000000000},
        "CAConfig": {"NodeCertExpiry": 7.776e15, "ExternalCAs": []},
        "TaskDefaults": {},
        "EncryptionConfig": {"AutoLockManagers": False},
    }
    out = validate_swarm_spec(body)
    assert out["CAConfig"] == {"NodeCertExpiry": 7776000000000000}
    assert isinstance(out["CAConfig"]["NodeCertExpiry"], int)
    assert out["TaskDefaults"] == {}
    assert out["Orchestration"]["TaskHistoryRetentionLimit"] == -1
    assert validate_swarm_spec(out) == out


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"Raft": {"ElectionTick": 1, "HeartbeatTick": 1}}, "ElectionTick must be greater than Raft.HeartbeatTick"),
        ({"Raft": {"HeartbeatTick": -1}}, "Raft.HeartbeatTick must be at least 0"),
        ({"Raft": {"SnapshotInterval": -1}}, "Raft.SnapshotInterval must be at least 0"),
        ({"Raft": {"SnapshotInterval": "many"}}, "Raft.SnapshotInterval must be an integer"),
        ({"Raft": {"SnapshotInterval": True}}, "Raft.SnapshotInterval must be an integer"),
        ({"Raft": {"Ticks": 1}}, "unknown field 'Ticks' in Raft"),
        ({"Dispatcher": {"HeartbeatPeriod": -1}}, "heartbeat period must be positive"),
        ({"Dispatcher": {"HeartbeatPeriod": "10ms"}}, "heartbeat period must be between 50ms and 24h0m0s"),
        ({"Dispatcher": {"HeartbeatPeriod": "25h"}}, "heartbeat period must be between 50ms and 24h0m0s"),
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
    validate_swarm_spec({"Labels": {"a": "b"}, "Orchestration": {"TaskHistoryRetentionLimit": 1}}, base)
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


# --- Go's case-insensitive field names --------------------------------------------------------------


def test_known_fields_match_as_go_encoding_json() -> None:
    assert known_fields("x", {"role": "worker", "AVAILABILITY": "drain"}, ("Role", "Availability")) == {
        "Role": "worker",
        "Availability": "drain",
    }
    # an exact match and a folded one name the same field: the later key wins, as in Go
    assert known_fields("x", {"Role": "a", "role": "b"}, ("Role",)) == {"Role": "b"}
    assert known_fields("x", {"role": "b", "Role": "a"}, ("Role",)) == {"Role": "a"}
    with pytest.raises(SpecError, match="unknown field 'Rolle' in x"):
        known_fields("x", {"Rolle": "a"}, ("Role",))
    assert field({"name": "a"}, "Name") == "a"
    assert field({"Name": "a", "NAME": "b"}, "Name") == "b"
    assert field({}, "Name") is None


def test_node_and_swarm_specs_decode_case_insensitively() -> None:
    assert validate_node_spec({"role": "worker", "availability": "pause", "labels": {"Zone": "A"}}) == {
        "Role": "worker",
        "Availability": "pause",
        "Labels": {"Zone": "A"},  # map keys keep their case
    }
    out = validate_swarm_spec({"orchestration": {"taskHistoryRetentionLimit": 2}, "labels": {"K": "v"}})
    assert out["Orchestration"] == {"TaskHistoryRetentionLimit": 2}
    assert out["Labels"] == {"K": "v"}


# --- settings shoal does not act on yet: refused unless they keep the value in effect -------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"CAConfig": {"ExternalCAs": [{"URL": "https://ca.example/sign"}]}}, "CAConfig.ExternalCAs"),
        (
            {"Raft": {"SnapshotInterval": 50}},
            "Raft.SnapshotInterval 50 is not supported yet by shoal (in effect: 10000)",
        ),
        ({"Raft": {"ElectionTick": 20}}, "Raft.ElectionTick 20 is not supported yet"),
        ({"Raft": {"HeartbeatTick": 2, "ElectionTick": 10}}, "Raft.HeartbeatTick 2 is not supported yet"),
        ({"Raft": {"KeepOldSnapshots": 3}}, "Raft.KeepOldSnapshots 3 is not supported yet"),
        ({"Raft": {"LogEntriesForSlowFollowers": 9}}, "Raft.LogEntriesForSlowFollowers 9 is not supported yet"),
        ({"TaskDefaults": {"LogDriver": {"Name": "json-file"}}}, "TaskDefaults.LogDriver"),
    ],
)
def test_swarm_settings_not_acted_on_are_refused(spec: Any, message: str) -> None:
    with pytest.raises(SpecError) as exc:
        validate_swarm_spec(spec)
    assert message in exc.value.message
    assert exc.value.status == 400


def test_ca_settings_are_accepted() -> None:
    # root rotation and the certificate expiry work (manager/control/ca_rotation.py); only external CAs do not
    out = validate_swarm_spec({"CAConfig": {"NodeCertExpiry": "48h", "ForceRotate": 2, "SigningCACert": "PEM"}})
    assert out["CAConfig"] == {"NodeCertExpiry": 48 * 3600 * 10**9, "ForceRotate": 2, "SigningCACert": "PEM"}


def test_swarm_update_with_the_spec_read_back_passes() -> None:
    # `docker swarm update` and community.docker send back the whole spec from GET /swarm
    current = validate_swarm_spec({"Labels": {"a": "b"}})
    assert validate_swarm_spec(copy.deepcopy(current), current) == current


# what the docker CLI 20.10 sends for `docker swarm init --advertise-addr eth0`
DOCKER_CLI_INIT = {
    "ListenAddr": "0.0.0.0:2377",
    "AdvertiseAddr": "eth0",
    "DataPathAddr": "",
    "DataPathPort": 0,
    "ForceNewCluster": False,
    "Spec": {
        "Labels": None,
        "Orchestration": {},
        "Raft": {"ElectionTick": 0, "HeartbeatTick": 0},
        "Dispatcher": {},
        "CAConfig": {},
        "TaskDefaults": {},
        "EncryptionConfig": {"AutoLockManagers": False},
    },
    "AutoLockManagers": False,
    "Availability": "",
    "DefaultAddrPool": None,
    "SubnetSize": 24,
}


def test_init_request_from_the_docker_cli_passes() -> None:
    req = validate_init_request(DOCKER_CLI_INIT)
    assert req == {
        "ListenAddr": "0.0.0.0:2377",
        "AdvertiseAddr": "eth0",
        "Spec": default_swarm_spec(),
        "DefaultAddrPool": ["10.0.0.0/8"],
        "SubnetSize": 24,
        "DataPathPort": 4789,
    }
    assert validate_init_request({"advertiseaddr": "eth1"})["AdvertiseAddr"] == "eth1"
    assert validate_init_request(None)["ListenAddr"] == ""
    assert validate_init_request({**DOCKER_CLI_INIT, "DataPathPort": 4789, "DefaultAddrPool": ["10.0.0.0/8"]})


def test_init_request_autolock_turns_on_the_spec_setting() -> None:
    """`docker swarm init --autolock` sends the top-level AutoLockManagers; dockerd hands it to SwarmKit."""
    top = validate_init_request({**DOCKER_CLI_INIT, "AutoLockManagers": True})
    assert top["Spec"]["EncryptionConfig"] == {"AutoLockManagers": True}
    in_spec = validate_init_request({"Spec": {"EncryptionConfig": {"AutoLockManagers": True}}})
    assert in_spec["Spec"]["EncryptionConfig"] == {"AutoLockManagers": True}
    assert validate_init_request(DOCKER_CLI_INIT)["Spec"]["EncryptionConfig"] == {"AutoLockManagers": False}
    with pytest.raises(SpecError, match="AutoLockManagers must be true or false"):
        validate_init_request({"AutoLockManagers": "yes"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"SubnetSize": 30}, "subnet size is out of range: 30"),
        ({"DefaultAddrPool": ["10.20.0.0/16"], "SubnetSize": 12}, "Subnet size is too small for pool: 12"),
        ({"DefaultAddrPool": ["10.20.0.0/33"]}, "invalid base pool 10.20.0.0/33"),
        ({"DefaultAddrPool": ["fd00::/48"]}, "invalid base pool fd00::/48: shoal's overlay networks are IPv4 only"),
        ({"DefaultAddrPool": ["10.0.0.0/8", "10.20.0.0/16"]}, "10.20.0.0/16: it overlaps the pool 10.0.0.0/8"),
        ({"DefaultAddrPool": "10.20.0.0/16"}, "DefaultAddrPool must be a list of subnets"),
        ({"DataPathPort": 1023}, "Datapath port number is not in valid range (1024-49151) : 1023"),
        ({"DataPathPort": 49152}, "Datapath port number is not in valid range (1024-49151) : 49152"),
        ({"DataPathPort": -1}, "DataPathPort must be at least 0"),
        ({"DataPathAddr": "10.0.0.5"}, "DataPathAddr '10.0.0.5' is not supported yet"),
        ({"ForceNewCluster": True}, "ForceNewCluster True is not supported yet"),
        ({"Availability": "drain"}, "Availability 'drain' is not supported yet"),
        ({"Spec": {"Raft": {"SnapshotInterval": 5}}}, "Raft.SnapshotInterval 5 is not supported yet"),
        ({"SubnetSize": "24"}, "SubnetSize must be an integer"),
        ({"Bogus": 1}, "unknown field 'Bogus' in swarm init request"),
    ],
)
def test_init_request_refusals(change: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as exc:
        validate_init_request({**DOCKER_CLI_INIT, **change})
    assert message in exc.value.message
    assert exc.value.status == 400


def test_init_request_settings_that_take_effect() -> None:
    req = validate_init_request(
        {
            **DOCKER_CLI_INIT,
            "DataPathPort": 7789,
            "DefaultAddrPool": [" 10.20.0.0/16", "192.168.7.1/24"],
            "SubnetSize": 26,
        }
    )
    # the pools normalised (Docker's ParseCIDR takes host bits and surrounding blanks too)
    assert (req["DataPathPort"], req["DefaultAddrPool"], req["SubnetSize"]) == (
        7789,
        ["10.20.0.0/16", "192.168.7.0/24"],
        26,
    )
    for port in (1024, 49151):
        assert validate_init_request({"DataPathPort": port})["DataPathPort"] == port
    # a size without a pool applies to Docker's default pool; 0 means 24
    assert validate_init_request({"SubnetSize": 20})["DefaultAddrPool"] == ["10.0.0.0/8"]
    assert validate_init_request({"SubnetSize": 0, "DefaultAddrPool": ["10.9.0.0/16"]})["SubnetSize"] == 24


def test_init_request_heartbeat_default_comes_from_the_base() -> None:
    base = default_swarm_spec()
    base["Dispatcher"]["HeartbeatPeriod"] = 10_000_000_000
    assert validate_init_request({}, base)["Spec"]["Dispatcher"]["HeartbeatPeriod"] == 10_000_000_000
    given = validate_init_request({"Spec": {"Dispatcher": {"HeartbeatPeriod": "3s"}}}, base)
    assert given["Spec"]["Dispatcher"]["HeartbeatPeriod"] == 3_000_000_000


def test_join_request() -> None:
    cli = {
        "ListenAddr": "0.0.0.0:2377",
        "AdvertiseAddr": "",
        "DataPathAddr": "",
        "RemoteAddrs": ["10.213.0.10:2377"],
        "JoinToken": "SWMTKN-1-x-y",
        "Availability": "",
    }
    assert validate_join_request(cli) == {
        "ListenAddr": "0.0.0.0:2377",
        "AdvertiseAddr": "",
        "RemoteAddrs": ["10.213.0.10:2377"],
        "JoinToken": "SWMTKN-1-x-y",
    }
    assert validate_join_request({"joinToken": "t", "remoteAddrs": ["a"]})["JoinToken"] == "t"
    for change, message in (
        ({"DataPathAddr": "eth1"}, "DataPathAddr 'eth1' is not supported yet"),
        ({"Availability": "pause"}, "Availability 'pause' is not supported yet"),
        ({"Availability": "sideways"}, "invalid Availability"),
    ):
        with pytest.raises(SpecError, match=re.escape(message)):
            validate_join_request({**cli, **change})


def test_a_list_where_an_object_belongs_is_a_spec_error_not_a_crash() -> None:
    with pytest.raises(SpecError, match="IPAM must be an object, not list"):
        validate_create({"Name": "n", "Driver": "overlay", "IPAM": [{"Subnet": "10.9.0.0/24"}]}, [])
    with pytest.raises(SpecError, match="x must be an object, not str"):
        known_fields("x", "Role", ("Role",))  # type: ignore[arg-type]
