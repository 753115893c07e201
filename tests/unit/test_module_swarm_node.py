"""swarm_node against a fake agent: join (and which cluster), leave, roles, availability, labels, waits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from unit.test_module_support import (
    FOREIGN_TOKEN,
    MANAGER_TOKEN,
    OTHER_CA_PEM,
    SELF_ID,
    W1_ID,
    W2_ID,
    WORKER_TOKEN,
    FakeAgent,
    module_runner,
    serve_fake_agent,
)

from ansible_collections.shoal.swarm.plugins.modules import swarm_node  # isort: skip

MANAGER = ["10.213.0.10:2377"]


@pytest.fixture
def agent() -> Iterator[FakeAgent]:
    with serve_fake_agent() as fake:
        yield fake


@pytest.fixture
def run(agent: FakeAgent):
    return module_runner(swarm_node, agent)


def spec_updates(agent: FakeAgent) -> list[tuple[str, dict[str, str], Any]]:
    return [(w[1], w[2], w[3]) for w in agent.writes() if w[1].endswith("/update")]


# ---- join and leave
def test_join_as_worker_then_idempotent(agent: FakeAgent, run) -> None:
    failed, result = run(join_token=WORKER_TOKEN, remote_addrs=MANAGER, advertise_addr="eth0", diff=True)
    assert not failed, result
    assert result["changed"] and result["actions"] == ["joined the swarm"] and result["changes"] == ["state"]
    assert result["node_id"] == W1_ID and result["node"]["Spec"]["Role"] == "worker"
    assert result["diff"] == {"before": {"state": "absent"}, "after": {"state": "present"}}
    (join,) = agent.writes()
    assert join[1] == "/swarm/join"
    assert join[3] == {"JoinToken": WORKER_TOKEN, "RemoteAddrs": MANAGER, "AdvertiseAddr": "eth0"}
    failed, again = run(join_token=WORKER_TOKEN, remote_addrs=MANAGER, advertise_addr="eth0")
    assert not failed and not again["changed"], again
    assert len(agent.writes()) == 1


def test_join_token_is_not_logged(agent: FakeAgent, run) -> None:
    failed, result = run(join_token=WORKER_TOKEN, remote_addrs=MANAGER)
    assert not failed
    assert WORKER_TOKEN not in str(result["invocation"])


def test_join_in_check_mode_predicts_and_writes_nothing(agent: FakeAgent, run) -> None:
    failed, result = run(check=True, join_token=WORKER_TOKEN, remote_addrs=MANAGER, labels={"zone": "a"})
    assert not failed and result["changed"] and result["node_id"] == ""
    assert agent.writes() == [] and agent.state == "inactive"


def test_join_without_token_fails_clearly(agent: FakeAgent, run) -> None:
    failed, result = run(role="worker")
    assert failed and "not part of a swarm: give join_token and remote_addrs" in result["msg"]
    assert agent.writes() == []


def test_node_in_another_swarm_is_refused(agent: FakeAgent, run) -> None:
    agent.make_worker()
    failed, result = run(join_token=FOREIGN_TOKEN, remote_addrs=MANAGER)
    assert failed and "already part of another swarm" in result["msg"], result
    assert "Leave the current swarm first" in result["msg"]
    assert FOREIGN_TOKEN not in result["msg"]
    assert agent.writes() == []
    # the right swarm's token passes, whichever of its tokens it is
    for token in (WORKER_TOKEN, MANAGER_TOKEN):
        failed, result = run(join_token=token, remote_addrs=MANAGER)
        assert not failed and not result["changed"], result


def test_cluster_check_falls_back_to_the_node_description(agent: FakeAgent, run) -> None:
    agent.make_worker()  # a worker's /info has no Cluster: the CA comes from its node object
    agent.nodes[W1_ID]["Description"]["TLSInfo"]["TrustRoot"] = OTHER_CA_PEM
    failed, result = run(join_token=FOREIGN_TOKEN, remote_addrs=MANAGER)
    assert not failed and not result["changed"], result
    failed, result = run(join_token=WORKER_TOKEN, remote_addrs=MANAGER)
    assert failed and "another swarm" in result["msg"]


def test_join_with_manager_token_then_labels_in_the_same_task(agent: FakeAgent, run) -> None:
    failed, result = run(join_token=MANAGER_TOKEN, remote_addrs=MANAGER, labels={"zone": "a"}, role="manager")
    assert not failed, result
    assert result["actions"] == ["joined the swarm", "labels updated"]
    assert result["node"]["Spec"]["Labels"] == {"zone": "a"}


def test_worker_cannot_change_its_own_spec_and_says_how(agent: FakeAgent, run) -> None:
    failed, result = run(join_token=WORKER_TOKEN, remote_addrs=MANAGER, labels={"zone": "a"})
    assert failed and "only a manager" in result["msg"] and "hostname: swarm01" in result["msg"]
    assert result["changed"] and result["actions"] == ["joined the swarm"]  # the join itself happened
    assert spec_updates(agent) == []


def test_leave_and_leave_again(agent: FakeAgent, run) -> None:
    agent.make_worker()
    failed, result = run(state="absent", check=True)
    assert not failed and result["changed"] and agent.state == "active"
    failed, result = run(state="absent")
    assert not failed and result["changed"] and result["actions"] == ["left the swarm"]
    assert agent.state == "inactive"
    failed, result = run(state="absent")
    assert not failed and not result["changed"]


def test_manager_leave_surfaces_the_refusal_unless_forced(agent: FakeAgent, run) -> None:
    agent.make_manager()
    failed, result = run(state="absent")
    assert failed and "is a manager" in result["msg"]
    failed, result = run(state="absent", force=True)
    assert not failed and agent.state == "inactive"


# ---- spec changes from a manager
def test_drain_with_diff_and_version(agent: FakeAgent, run) -> None:
    agent.make_manager()
    failed, result = run(hostname="swarm01", availability="drain", diff=True)
    assert not failed and result["changed"], result
    assert result["actions"] == ["availability set to drain"] and result["changes"] == ["availability"]
    assert result["diff"]["before"] == {"role": "worker", "availability": "active", "labels": {}}
    assert result["diff"]["after"] == {"role": "worker", "availability": "drain", "labels": {}}
    ((path, query, body),) = spec_updates(agent)
    assert path == f"/nodes/{W1_ID}/update" and query == {"version": "10"}
    assert body == {"Labels": {}, "Role": "worker", "Availability": "drain"}
    assert result["node"]["Spec"]["Availability"] == "drain"
    failed, again = run(hostname="swarm01", availability="drain")
    assert not failed and not again["changed"]


def test_check_mode_predicts_spec_changes_without_writing(agent: FakeAgent, run) -> None:
    agent.make_manager()
    failed, result = run(hostname="swarm01", availability="pause", role="manager", check=True, diff=True)
    assert not failed and result["changed"] and result["changes"] == ["role", "availability"]
    assert result["actions"] == ["promoted to manager", "availability set to pause"]
    assert agent.writes() == []


def test_labels_merge_replace_and_remove(agent: FakeAgent, run) -> None:
    agent.make_manager()
    agent.nodes[W1_ID]["Spec"]["Labels"] = {"zone": "a", "disk": "hdd"}
    failed, result = run(hostname="swarm01", labels={"disk": "ssd", "n": 2})
    assert not failed and result["node"]["Spec"]["Labels"] == {"zone": "a", "disk": "ssd", "n": "2"}
    failed, result = run(hostname="swarm01", labels={"disk": "ssd", "n": 2})
    assert not failed and not result["changed"]
    failed, result = run(hostname="swarm01", labels_to_remove=["n", "absent"])
    assert not failed and result["node"]["Spec"]["Labels"] == {"zone": "a", "disk": "ssd"}
    failed, result = run(hostname="swarm01", labels={"only": "me"}, labels_state="replace")
    assert not failed and result["node"]["Spec"]["Labels"] == {"only": "me"}
    failed, result = run(hostname="swarm01", labels_state="replace")
    assert not failed and result["node"]["Spec"]["Labels"] == {}
    failed, result = run(hostname="swarm01", labels_state="replace")
    assert not failed and not result["changed"]


def test_version_conflict_is_retried_on_a_fresh_read(agent: FakeAgent, run) -> None:
    agent.make_manager()
    agent.conflicts = 1
    failed, result = run(hostname="swarm02", labels={"zone": "b"})
    assert not failed and result["changed"], result
    queries = [q for _, q, _ in spec_updates(agent)]
    assert len(queries) == 2 and queries[0] != queries[1]


def test_hostname_accepts_ids_and_prefixes(agent: FakeAgent, run) -> None:
    agent.make_manager()
    failed, result = run(hostname=W2_ID[:6], availability="pause")
    assert not failed and result["node_id"] == W2_ID
    failed, result = run(hostname=SELF_ID, labels={"me": "yes"})  # the local node by ID
    assert not failed and result["node_id"] == SELF_ID


def test_unknown_node_fails_and_absent_unknown_node_is_ok(agent: FakeAgent, run) -> None:
    agent.make_manager()
    failed, result = run(hostname="swarm09", availability="drain")
    assert failed and "swarm09 is not part of the swarm" in result["msg"]
    failed, result = run(hostname="swarm09", state="absent")
    assert not failed and not result["changed"]


def test_remove_another_node_needs_force_while_it_is_up(agent: FakeAgent, run) -> None:
    agent.make_manager()
    failed, result = run(hostname="swarm02", state="absent")
    assert failed and "is not down" in result["msg"]
    assert W2_ID in agent.nodes
    failed, result = run(hostname="swarm02", state="absent", force=True)
    assert not failed and result["changed"] and W2_ID not in agent.nodes
    assert agent.writes()[-1][0:3] == ("DELETE", f"/nodes/{W2_ID}", {"force": "true"})


def test_worker_reads_but_cannot_change_other_nodes(agent: FakeAgent, run) -> None:
    agent.make_worker()
    failed, result = run(hostname="swarm02", availability="active")
    assert not failed and not result["changed"]  # nothing to change: reading through the worker is enough
    failed, result = run(hostname="swarm02", availability="drain")
    assert failed and "only a manager can make" in result["msg"]
    assert spec_updates(agent) == []


def test_demoting_the_last_manager_surfaces_the_agents_refusal(agent: FakeAgent, run) -> None:
    agent.make_manager()
    failed, result = run(role="worker")
    assert failed and result["msg"] == "attempting to demote the last manager of the swarm"
    assert result["status"] == 400


# ---- waiting
def test_promote_waits_until_the_node_is_a_reachable_manager(agent: FakeAgent, run, monkeypatch) -> None:
    monkeypatch.setattr("time.sleep", lambda _s: None)
    agent.make_manager()
    agent.role_settles_after = 3
    failed, result = run(hostname="swarm01", role="manager", wait=True)
    assert not failed, result
    assert result["node"]["ManagerStatus"]["Reachability"] == "reachable"
    failed, result = run(hostname="swarm01", role="worker", wait=True)
    assert not failed and "ManagerStatus" not in result["node"]


def test_role_wait_times_out_with_a_message(agent: FakeAgent, run, monkeypatch) -> None:
    clock = iter(range(0, 10_000, 5))
    monkeypatch.setattr("time.sleep", lambda _s: None)
    monkeypatch.setattr("time.monotonic", lambda: next(clock))
    agent.make_manager()
    agent.role_settles_after = 10**6
    failed, result = run(hostname="swarm01", role="manager", wait=True, wait_timeout=30)
    assert failed
    assert "timed out after 30 s waiting for node swarm01 to be ready and a reachable manager" in result["msg"]
    assert result["changed"]  # the promotion was asked for


def test_drain_waits_for_replicated_tasks_only(agent: FakeAgent, run, monkeypatch) -> None:
    monkeypatch.setattr("time.sleep", lambda _s: None)
    agent.make_manager()
    agent.services = [
        {"ID": "svc-r", "Spec": {"Name": "web", "Mode": {"Replicated": {"Replicas": 2}}}},
        {"ID": "svc-g", "Spec": {"Name": "agent", "Mode": {"Global": {}}}},
    ]
    agent.tasks = [
        {"ID": "t1", "Name": "web.1", "NodeID": W1_ID, "ServiceID": "svc-r", "Status": {"State": "running"}},
        {"ID": "t2", "Name": "agent.x", "NodeID": W1_ID, "ServiceID": "svc-g", "Status": {"State": "running"}},
    ]
    agent.task_reads_until_drained = 3
    failed, result = run(hostname="swarm01", availability="drain", wait=True)
    assert not failed, result
    task_reads = [r for r in agent.requests if r[1] == "/tasks"]
    assert len(task_reads) == 3
    assert '"node": ["' + W1_ID + '"]' in task_reads[0][2]["filters"].replace(":", ": ")


def test_drain_wait_times_out_naming_the_tasks(agent: FakeAgent, run, monkeypatch) -> None:
    clock = iter(range(0, 10_000, 5))
    monkeypatch.setattr("time.sleep", lambda _s: None)
    monkeypatch.setattr("time.monotonic", lambda: next(clock))
    agent.make_manager()
    agent.services = [{"ID": "svc-r", "Spec": {"Name": "web", "Mode": {"Replicated": {"Replicas": 2}}}}]
    agent.tasks = [{"ID": "t1", "Name": "web.1", "NodeID": W1_ID, "ServiceID": "svc-r", "Status": {"State": "running"}}]
    failed, result = run(hostname="swarm01", availability="drain", wait=True, wait_timeout=20)
    assert failed and "to drain: 1 task(s) of replicated services still running (web.1)" in result["msg"]


def test_drain_wait_fails_at_once_when_the_agent_cannot_list_tasks(agent: FakeAgent, run) -> None:
    agent.make_manager()  # an agent without /tasks: the drain cannot be seen, which is not "drained"
    failed, result = run(hostname="swarm01", availability="drain", wait=True)
    assert failed and result["changed"] and result["status"] == 404, result
    assert result["msg"] == "page not found: GET /tasks"
    assert [r for r in agent.requests if r[1] == "/tasks"] == [agent.requests[-1]]


# ---- bad input
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"availability": "sideways"}, "value of availability must be one of: active, pause, drain, got: sideways"),
        ({"role": "king"}, "value of role must be one of: manager, worker"),
        ({"join_token": WORKER_TOKEN}, "parameters are required together: join_token, remote_addrs"),
        ({"remote_addrs": MANAGER}, "parameters are required together: join_token, remote_addrs"),
        ({"advertise_addr": "eth0"}, "missing parameter(s) required by 'advertise_addr': join_token"),
        ({"join_token": "SWMTKN-1-bad", "remote_addrs": MANAGER}, "invalid join token"),
        (
            {"state": "absent", "availability": "drain"},
            "state=absent: these options apply to state=present only: availability",
        ),
        ({"labels": {"a": "1"}, "labels_to_remove": ["a"]}, "'a' is both in labels and in labels_to_remove"),
        ({"wait_timeout": 0}, "wait_timeout must be at least 1, not 0"),
    ],
)
def test_bad_arguments_fail_clearly_and_touch_nothing(agent: FakeAgent, run, args, message) -> None:
    agent.make_manager()
    failed, result = run(**args)
    assert failed and message in result["msg"], result
    assert agent.requests == []


def test_join_options_with_another_hostname_conflict(agent: FakeAgent, run) -> None:
    agent.make_manager()
    failed, result = run(hostname="swarm01", join_token=WORKER_TOKEN, remote_addrs=MANAGER)
    assert failed and "apply to the node the task runs on, not to swarm01" in result["msg"]
    assert agent.writes() == []
