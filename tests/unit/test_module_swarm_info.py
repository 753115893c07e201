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
    failed, result = run(check=True)
    assert not failed and not result["changed"]
    assert result["can_talk_to_agent"] and result["swarm_active"] and result["is_manager"]
    assert result["node_id"] == SELF_ID and result["cluster_id"] == CLUSTER_ID
    assert result["local_node_state"] == "active" and result["agent_version"] == "0.1.0"
    assert sorted(n["Description"]["Hostname"] for n in result["nodes"]) == ["swarm00", "swarm01", "swarm02"]
    assert [s["ID"] for s in result["services"]] == ["s1"] and [t["ID"] for t in result["tasks"]] == ["t1"]
    assert result["networks"] == []  # not served yet: an empty list, no failure, no warning
    assert "JoinTokens" not in result["swarm_facts"] and "SWMTKN" not in json.dumps(result)
    assert not result.get("warnings")
    assert agent.writes() == []


def test_worker_sees_nodes_and_empty_lists_for_the_rest(agent: FakeAgent, run) -> None:
    agent.make_worker()
    agent.services = [{"ID": "s1"}]
    agent.tasks = []
    failed, result = run()
    assert not failed
    assert result["swarm_active"] and not result["is_manager"] and result["node_id"] == W1_ID
    assert len(result["nodes"]) == 3
    assert result["services"] == [] and result["tasks"] == []
    assert "swarm_facts" not in result


def test_inactive_node_has_no_lists(agent: FakeAgent, run) -> None:
    failed, result = run()
    assert not failed and result["can_talk_to_agent"] and not result["swarm_active"]
    assert result["nodes"] == [] and result["local_node_state"] == "inactive"


def test_agent_down_is_not_a_failure(tmp_path) -> None:
    failed, result = run_module(swarm_info, {"socket_path": str(tmp_path / "no.sock")})
    assert not failed and not result["can_talk_to_agent"]
    assert "cannot talk to the shoal agent" in result["msg"]
    assert result["nodes"] == [] and not result["is_manager"]


def test_lists_can_be_skipped_and_filtered(agent: FakeAgent, run) -> None:
    agent.make_manager()
    failed, _ = run(services=False, tasks=False, networks=False, nodes_filters={"role": "manager"})
    assert not failed
    paths = [r[1] for r in agent.requests]
    assert "/services" not in paths and "/tasks" not in paths and "/networks" not in paths
    (nodes_call,) = [r for r in agent.requests if r[1] == "/nodes"]
    assert json.loads(nodes_call[2]["filters"]) == {"role": ["manager"]}


def test_unexpected_list_errors_warn(agent: FakeAgent, run) -> None:
    agent.make_manager()
    agent.fail[("GET", "/networks")] = (500, "internal error: boom")
    failed, result = run()
    assert not failed and result["networks"] == []
    assert "could not list networks: internal error: boom" in str(result["warnings"])


def test_filter_values_become_lists_of_strings() -> None:
    filters = swarm_info.normalise_filters({"role": "manager", "n": [1, True]})
    assert filters == {"role": ["manager"], "n": ["1", "true"]}
    assert swarm_info.normalise_filters({}) is None
