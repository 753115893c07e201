"""swarm_init against a fake agent: init, idempotence, spec updates, rotation, leave, bad input."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from unit.test_module_support import (
    CLUSTER_ID,
    MANAGER_TOKEN,
    SELF_ID,
    W1_ID,
    WORKER_TOKEN,
    FakeAgent,
    module_runner,
    serve_fake_agent,
)

from ansible_collections.shoal.swarm.plugins.modules import swarm_init  # isort: skip


@pytest.fixture
def agent() -> Iterator[FakeAgent]:
    with serve_fake_agent() as fake:
        yield fake


@pytest.fixture
def run(agent: FakeAgent):
    return module_runner(swarm_init, agent)


def test_init_creates_the_swarm_and_returns_tokens(agent: FakeAgent, run) -> None:
    failed, result = run(
        advertise_addr="eth0", default_addr_pool=["10.10.0.0/16"], subnet_size=26, data_path_port=7789, diff=True
    )
    assert not failed, result
    assert result["changed"] and result["actions"] == ["swarm initialized"]
    assert result["cluster_id"] == CLUSTER_ID and result["node_id"] == SELF_ID
    assert result["join_tokens"] == {"worker": WORKER_TOKEN, "manager": MANAGER_TOKEN}
    assert result["manager_addrs"] == ["10.213.0.10:2377"]
    assert "JoinTokens" not in result["swarm_facts"]
    assert result["diff"] == {
        "before": {"state": "absent"},
        "after": {
            "state": "present",
            "advertise_addr": "eth0",
            "default_addr_pool": ["10.10.0.0/16"],
            "subnet_size": 26,
            "data_path_port": 7789,
        },
    }
    (init,) = [r for r in agent.writes()]
    assert init[1] == "/swarm/init"
    assert init[3] == {
        "Spec": {},
        "AdvertiseAddr": "eth0",
        "DefaultAddrPool": ["10.10.0.0/16"],
        "SubnetSize": 26,
        "DataPathPort": 7789,
    }


def test_init_passes_spec_settings_in_api_units(agent: FakeAgent, run) -> None:
    failed, _ = run(task_history_limit=2, dispatcher_heartbeat_period="2s", election_tick=20, labels={"env": 1})
    assert not failed
    body = agent.writes()[0][3]
    assert body["Spec"] == {
        "Orchestration": {"TaskHistoryRetentionLimit": 2},
        "Dispatcher": {"HeartbeatPeriod": 2_000_000_000},
        "Raft": {"ElectionTick": 20},
        "Labels": {"env": "1"},
    }


def test_check_mode_predicts_init_and_writes_nothing(agent: FakeAgent, run) -> None:
    failed, result = run(check=True, advertise_addr="eth0")
    assert not failed and result["changed"]
    assert result["cluster_id"] == "" and result["join_tokens"] == {"worker": "", "manager": ""}
    assert result["nodes"] == {}
    assert agent.writes() == [] and agent.state == "inactive"


def test_existing_swarm_is_left_alone(agent: FakeAgent, run) -> None:
    agent.make_manager()
    failed, result = run(advertise_addr="eth0", task_history_limit=5, dispatcher_heartbeat_period="1s")
    assert not failed and not result["changed"], result
    assert result["changes"] == [] and result["actions"] == []
    assert result["join_tokens"]["worker"] == WORKER_TOKEN
    assert agent.writes() == []


def test_nodes_are_summed_up_for_the_cluster_role(agent: FakeAgent, run) -> None:
    """The cluster role leaves alone a node whose summary matches the inventory: the summary follows the store."""
    agent.make_manager()
    agent.nodes[W1_ID]["Spec"].update(Availability="drain", Labels={"zone": "a"})
    agent.nodes[W1_ID]["Status"]["State"] = "down"
    failed, result = run()
    assert not failed, result
    assert set(result["nodes"]) == set(agent.nodes)
    assert result["nodes"][SELF_ID] == {
        "hostname": "swarm00",
        "role": "manager",
        "availability": "active",
        "labels": {},
        "state": "ready",
        "reachability": "reachable",
    }
    assert result["nodes"][W1_ID] == {
        "hostname": "swarm01",
        "role": "worker",
        "availability": "drain",
        "labels": {"zone": "a"},
        "state": "down",
        "reachability": "",
    }


def test_spec_change_updates_with_the_version_and_shows_a_diff(agent: FakeAgent, run) -> None:
    agent.make_manager()
    failed, result = run(task_history_limit=2, dispatcher_heartbeat_period="1500ms", diff=True)
    assert not failed and result["changed"]
    assert result["changes"] == ["task_history_limit", "dispatcher_heartbeat_period"]
    assert result["diff"]["before"]["task_history_limit"] == 5
    assert result["diff"]["after"]["task_history_limit"] == 2
    assert result["diff"]["before"]["dispatcher_heartbeat_period"] == "1s"
    assert result["diff"]["after"]["dispatcher_heartbeat_period"] == "1.5s"
    (update,) = agent.writes()
    assert update[1] == "/swarm/update" and update[2] == {"version": "50"}
    spec = update[3]
    assert spec["Orchestration"]["TaskHistoryRetentionLimit"] == 2
    assert spec["Dispatcher"]["HeartbeatPeriod"] == 1_500_000_000
    assert spec["Raft"]["ElectionTick"] == 10  # untouched settings are sent back as they were
    failed, again = run(task_history_limit=2, dispatcher_heartbeat_period="1.5s")
    assert not failed and not again["changed"]


def test_spec_change_in_check_mode_predicts_and_writes_nothing(agent: FakeAgent, run) -> None:
    agent.make_manager()
    failed, result = run(check=True, diff=True, labels={"team": "infra"})
    assert not failed and result["changed"] and result["changes"] == ["labels"]
    assert result["diff"]["after"]["labels"] == {"team": "infra"}
    assert agent.writes() == []


def test_version_conflict_is_retried_with_a_fresh_read(agent: FakeAgent, run) -> None:
    agent.make_manager()
    agent.conflicts = 2
    failed, result = run(task_history_limit=3)
    assert not failed and result["changed"], result
    updates = [w for w in agent.writes() if w[1] == "/swarm/update"]
    assert len(updates) == 3
    assert agent.cluster["Spec"]["Orchestration"]["TaskHistoryRetentionLimit"] == 3


def test_rotation_always_changes_and_returns_new_tokens(agent: FakeAgent, run) -> None:
    agent.make_manager()
    failed, result = run(rotate_worker_token=True)
    assert not failed and result["changed"] and result["actions"] == ["worker join token rotated"]
    assert result["join_tokens"]["worker"] != WORKER_TOKEN
    assert result["join_tokens"]["manager"] == MANAGER_TOKEN
    assert agent.writes()[0][2] == {"version": "50", "rotateWorkerToken": "true"}


def test_creation_only_settings_warn_on_an_existing_swarm(agent: FakeAgent, run) -> None:
    agent.make_manager()
    failed, result = run(
        default_addr_pool=["192.168.0.0/16"], subnet_size=28, advertise_addr="10.213.0.99", data_path_port=7789
    )
    assert not failed and not result["changed"]
    assert len(result["warnings"]) == 4
    assert any("data_path_port is set when the swarm is created only" in str(w) for w in result["warnings"])
    assert "default_addr_pool is set when the swarm is created only" in str(result["warnings"][0])


def test_worker_cannot_init_or_manage(agent: FakeAgent, run) -> None:
    agent.make_worker()
    failed, result = run()
    assert failed and "is a worker" in result["msg"]
    assert agent.writes() == []


def test_leave_needs_force_on_a_manager_and_is_idempotent(agent: FakeAgent, run) -> None:
    agent.make_manager()
    failed, result = run(state="absent")
    assert failed and "is a manager" in result["msg"]
    assert agent.state == "active"
    failed, result = run(state="absent", check=True, force=True)
    assert not failed and result["changed"] and agent.state == "active"
    failed, result = run(state="absent", force=True)
    assert not failed and result["changed"] and agent.state == "inactive"
    assert agent.writes()[-1][2] == {"force": "true"}
    failed, result = run(state="absent", force=True)
    assert not failed and not result["changed"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"state": "absent", "task_history_limit": 3}, "apply to state=present only: task_history_limit"),
        ({"state": "absent", "rotate_worker_token": True}, "rotate_worker_token"),
        ({"force": True}, "state=present: these options apply to state=absent only: force"),
        ({"task_history_limit": -1}, "task_history_limit must be 0 or more"),
        ({"election_tick": 0}, "election_tick must be at least 1"),
        ({"subnet_size": 30}, "subnet_size must be between 1 and 29"),
        ({"data_path_port": 1023}, "data_path_port must be between 1024 and 49151 (or 0 for 4789), not 1023"),
        ({"data_path_port": 49152}, "data_path_port must be between 1024 and 49151"),
        ({"dispatcher_heartbeat_period": "soon"}, "is not a duration"),
        ({"node_cert_expiry": "0s"}, "node_cert_expiry must be positive"),
        ({"state": "gone"}, "value of state must be one of"),
        ({"unknown_option": 1}, "Unsupported parameters"),
    ],
)
def test_bad_arguments_fail_clearly_and_touch_nothing(agent: FakeAgent, run, args, message) -> None:
    failed, result = run(**args)
    assert failed and message in result["msg"], result
    assert agent.requests == []


def test_agent_errors_become_the_failure_message(agent: FakeAgent, run) -> None:
    agent.fail[("POST", "/swarm/init")] = (400, "advertise address must be a non-zero IP address or network interface")
    failed, result = run(advertise_addr="nosuchif")
    assert failed and result["msg"] == "advertise address must be a non-zero IP address or network interface"
    assert result["status"] == 400


def test_unreachable_agent_fails_with_the_socket(tmp_path) -> None:
    from unit.test_module_support import run_module

    failed, result = run_module(swarm_init, {"socket_path": str(tmp_path / "none.sock")})
    assert failed and "cannot talk to the shoal agent" in result["msg"] and result["status"] == 0


# --- the root CA (issue 15): ca_force_rotate, signing_ca_cert/key -----------------------------------


def test_ca_force_rotate_is_a_counter_compared_with_the_swarm(agent: FakeAgent, run) -> None:
    agent.make_manager()
    failed, result = run(ca_force_rotate=0)
    assert not failed and not result["changed"]  # the swarm has none: 0 is what is in effect
    failed, result = run(ca_force_rotate=1, diff=True)
    assert not failed and result["changed"] and result["actions"] == ["ca_force_rotate updated"]
    assert result["diff"]["before"]["ca_force_rotate"] == 0 and result["diff"]["after"]["ca_force_rotate"] == 1
    assert agent.writes()[-1][3]["CAConfig"]["ForceRotate"] == 1
    failed, again = run(ca_force_rotate=1)
    assert not failed and not again["changed"]


def _pem(body: str, width: int) -> str:
    return "\n".join(
        [
            "-----BEGIN CERTIFICATE-----",
            *[body[i : i + width] for i in range(0, len(body), width)],
            "-----END CERTIFICATE-----",
        ]
    )


def test_signing_ca_goes_with_its_key_which_no_diff_shows(agent: FakeAgent, run) -> None:
    agent.make_manager()
    body = "MIIB" + "A" * 200
    key = "-----BEGIN PRIVATE KEY-----\nSECRETKEYMATERIAL\n-----END PRIVATE KEY-----"
    failed, result = run(signing_ca_cert=_pem(body, 64), signing_ca_key=key, diff=True)
    assert not failed and result["changed"]
    sent = agent.writes()[-1][3]["CAConfig"]
    assert sent["SigningCACert"] == _pem(body, 64) and sent["SigningCAKey"] == key
    assert result["diff"]["after"]["signing_ca_cert"].startswith("sha256:")
    assert "SECRETKEYMATERIAL" not in repr(result)
    agent.cluster["Spec"]["CAConfig"].pop("SigningCAKey")  # as the agent does: the key never stays in the spec
    # the same certificate wrapped at another width is the same certificate
    failed, again = run(signing_ca_cert=_pem(body, 76), signing_ca_key=key)
    assert not failed and not again["changed"], again


def test_signing_ca_key_without_cert_fails(agent: FakeAgent, run) -> None:
    agent.make_manager()
    failed, result = run(signing_ca_key="-----BEGIN PRIVATE KEY-----\nX\n-----END PRIVATE KEY-----")
    assert failed and result["msg"] == "signing_ca_cert and signing_ca_key go together (shoal has no external CA)"
    assert agent.writes() == []
