"""swarm_service's `healthcheck` (community.docker's shape) against a fake agent: create, idempotence,
check and diff mode, in-place change, disabling, bad values."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from unit.test_module_support import FakeAgent, module_runner, serve_fake_agent

from ansible_collections.shoal.swarm.plugins.modules import swarm_service  # isort: skip

S = 1_000_000_000
WEB: dict[str, Any] = {
    "name": "web",
    "image": "shoal/hello",
    "healthcheck": {"test": "wget -q -O /dev/null http://127.0.0.1:8080/", "interval": "5s", "retries": 3},
}


@pytest.fixture
def agent() -> Iterator[FakeAgent]:
    with serve_fake_agent() as fake:
        yield fake.enable_workloads()


@pytest.fixture
def run(agent: FakeAgent):
    return module_runner(swarm_service, agent)


def health_of(agent: FakeAgent) -> Any:
    return agent.find_service("web")["Spec"]["TaskTemplate"]["ContainerSpec"].get("HealthCheck")


def writes(agent: FakeAgent) -> list[Any]:
    return [w for w in agent.writes() if w[1].startswith("/services")]


def test_create_then_idempotent(agent: FakeAgent, run) -> None:
    failed, result = run(**WEB)
    assert not failed and result["changed"], result
    assert health_of(agent) == {
        "Test": ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/"],
        "Interval": 5 * S,
        "Retries": 3,
    }
    failed, again = run(**WEB)
    assert not failed and not again["changed"], again
    # the same check written as Docker's list and 5000ms is the same check
    same = {**WEB, "healthcheck": {**WEB["healthcheck"], "interval": "5000ms"}}
    same["healthcheck"]["test"] = ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/"]
    failed, again = run(**same)
    assert not failed and not again["changed"], again
    assert len(writes(agent)) == 1


def test_check_and_diff_mode_then_update_in_place(agent: FakeAgent, run) -> None:
    run(**WEB)
    version = agent.find_service("web")["Version"]["Index"]
    changed = {**WEB, "healthcheck": {**WEB["healthcheck"], "timeout": "2s", "start_period": "10s"}}
    failed, result = run(check=True, diff=True, **changed)
    assert not failed and result["changed"] and result["changes"] == ["healthcheck"], result
    assert result["diff"]["before"]["healthcheck"]["timeout"] == "0s"
    assert result["diff"]["after"]["healthcheck"]["timeout"] == "2s"
    assert agent.find_service("web")["Version"]["Index"] == version
    failed, result = run(**changed)
    assert not failed and result["changed"]
    assert health_of(agent)["Timeout"] == 2 * S and health_of(agent)["StartPeriod"] == 10 * S


def test_leaving_it_out_keeps_it_and_none_disables_it(agent: FakeAgent, run) -> None:
    run(**WEB)
    failed, result = run(name="web", image="shoal/hello")
    assert not failed and not result["changed"]
    failed, result = run(name="web", healthcheck={"test": ["NONE"]})
    assert not failed and result["changed"]
    assert health_of(agent) == {"Test": ["NONE"]}


@pytest.mark.parametrize(
    ("healthcheck", "message"),
    [
        ({"test": "true", "interval": "soon"}, "healthcheck.interval: 'soon' is not a duration"),
        ({"test": "true", "timeout": "500us"}, "healthcheck.timeout must be 0 or at least 1ms"),
        ({"test": "true", "retries": -1}, "healthcheck.retries cannot be negative"),
        ({"test": ["curl", "x"]}, "must start with NONE, CMD or CMD-SHELL"),
    ],
)
def test_bad_values_fail_and_write_nothing(agent: FakeAgent, run, healthcheck: dict, message: str) -> None:
    failed, result = run(**{**WEB, "healthcheck": healthcheck})
    assert failed and message in result["msg"], result
    assert agent.writes() == []
