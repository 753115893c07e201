"""swarm_info against a fake agent: manager, worker, inactive node, agent down, filters."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from unit.test_module_support import (
    CLUSTER_ID,
    SELF_ID,
    W1_ID,
    FakeAgent,
    module_runner,
    run_module,
    serve_fake_agent,
)

from ansible_collections.shoal.swarm.plugins.modules import swarm_info  # isort: skip


@pytest.fixture
def agent() -> Iterator[FakeAgent]:
    with serve_fake_agent() as fake:
        yield fake


@pytest.fixture
def run(agent: FakeAgent):
    return module_runner(swarm_info, agent)


def test_manager_sees_everything_and_no_tokens(agent: FakeAgent, run) -> None:
    agent.make_manager()
    agent.services = [{"ID": "s1", "Spec": {"Name": "web"}}]
    agent.tasks = [{"ID": "t1", "NodeID": W1_ID, "Status": {"State": "running"}}]
    failed, result = run(check=True, networks=False)
    assert not failed and not result["changed"]
    assert result["can_talk_to_agent"] and result["swarm_active"] and result["is_manager"]
    assert result["node_id"] == SELF_ID and result["cluster_id"] == CLUSTER_ID
    assert result["local_node_state"] == "active" and result["agent_version"] == "0.1.0"
    assert sorted(n["Description"]["Hostname"] for n in result["nodes"]) == ["swarm00", "swarm01", "swarm02"]
    assert [s["ID"] for s in result["services"]] == ["s1"] and [t["ID"] for t in result["tasks"]] == ["t1"]
    assert "networks" not in result  # not read: not returned, rather than an empty list
    assert "JoinTokens" not in result["swarm_facts"] and "SWMTKN" not in json.dumps(result)
    assert not result.get("warnings")
    assert agent.writes() == []


def test_worker_reads_by_default_only_what_it_can_see(agent: FakeAgent, run) -> None:
    agent.make_worker()
    agent.services, agent.tasks, agent.networks = [{"ID": "s1"}], [], []
    failed, result = run()
    assert not failed, result
    assert result["swarm_active"] and not result["is_manager"] and result["node_id"] == W1_ID
    assert len(result["nodes"]) == 3
    assert "services" not in result and "tasks" not in result and "networks" not in result
    assert "swarm_facts" not in result
    assert [r[1] for r in agent.requests if r[1] != "/info"] == ["/nodes"]


@pytest.mark.parametrize("name", ["services", "tasks", "networks"])
def test_a_list_asked_for_that_a_worker_cannot_see_fails_with_the_agents_message(
    agent: FakeAgent, run, name: str
) -> None:
    agent.make_worker()
    agent.services, agent.tasks, agent.networks = [{"ID": "s1"}], [], []
    failed, result = run(**{name: True})
    assert failed and result["status"] == 503, result
    assert result["msg"] == "This node is not a swarm manager."
    assert name not in result


@pytest.mark.parametrize("status", [404, 503])
def test_a_refused_list_fails_instead_of_reading_empty(agent: FakeAgent, run, status: int) -> None:
    agent.make_manager()
    agent.services, agent.tasks = [{"ID": "s1"}], []
    agent.fail[("GET", "/networks")] = (status, "page not found: GET /networks")
    failed, result = run()
    assert failed and result["status"] == status and result["msg"] == "page not found: GET /networks", result
    assert "networks" not in result


def test_a_manager_that_cannot_read_the_swarm_warns_and_still_answers(agent: FakeAgent, run) -> None:
    agent.make_manager()
    agent.fail[("GET", "/swarm")] = (503, "The swarm does not have a leader.")
    failed, result = run(services=False, tasks=False, networks=False)
    assert not failed and result["is_manager"] and len(result["nodes"]) == 3, result
    assert "swarm_facts" not in result
    assert "could not read the swarm: The swarm does not have a leader." in str(result["warnings"])


def test_inactive_node_reads_no_lists(agent: FakeAgent, run) -> None:
    failed, result = run()
    assert not failed and result["can_talk_to_agent"] and not result["swarm_active"]
    assert result["local_node_state"] == "inactive"
    assert not set(result) & {"nodes", "services", "tasks", "networks"}
    failed, result = run(nodes=True)
    assert failed and result["status"] == 503 and "not part of a swarm" in result["msg"]


def test_agent_down_is_not_a_failure(tmp_path) -> None:
    failed, result = run_module(swarm_info, {"socket_path": str(tmp_path / "no.sock")})
    assert not failed and not result["can_talk_to_agent"]
    assert "cannot talk to the shoal agent" in result["msg"]
    assert "nodes" not in result and not result["is_manager"]


def test_lists_can_be_skipped_and_filtered(agent: FakeAgent, run) -> None:
    agent.make_manager()
    failed, _ = run(services=False, tasks=False, networks=False, nodes_filters={"role": "manager"})
    assert not failed
    paths = [r[1] for r in agent.requests]
    assert "/services" not in paths and "/tasks" not in paths and "/networks" not in paths
    (nodes_call,) = [r for r in agent.requests if r[1] == "/nodes"]
    assert json.loads(nodes_call[2]["filters"]) == {"role": ["manager"]}


def test_filters_for_a_list_that_is_not_read_are_refused(agent: FakeAgent, run) -> None:
    agent.make_manager()
    failed, result = run(tasks=False, tasks_filters={"node": "swarm01"})
    assert failed and "tasks_filters given, but the list is not read (tasks=false)" in result["msg"], result
    assert agent.requests == []


def test_filter_values_become_lists_of_strings() -> None:
    filters = swarm_info.normalise_filters({"role": "manager", "n": [1, True]})
    assert filters == {"role": ["manager"], "n": ["1", "true"]}
    assert swarm_info.normalise_filters({}) is None
