"""The collection's agent client (module_utils/_shoal_api.py): wire, errors, retries, tokens, durations."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shoal.manager.tokens import ca_digest as agent_ca_digest
from shoal.model.ids import format_duration as agent_format_duration
from shoal.model.ids import parse_duration as agent_parse_duration
from unit.test_module_support import (
    CA_PEM,
    FOREIGN_TOKEN,
    OTHER_CA_PEM,
    WORKER_TOKEN,
    FakeAgent,
    serve_fake_agent,
)

from ansible_collections.shoal.swarm.plugins.module_utils import _shoal_api as api_mod  # isort: skip
from ansible_collections.shoal.swarm.plugins.module_utils._shoal_api import (  # isort: skip
    AgentUnreachable,
    ShoalAPIError,
    ShoalClient,
    build_path,
    ca_digest,
    format_duration,
    label_map,
    parse_duration,
    parse_join_token,
    retry_on_conflict,
    wait_until,
)


@pytest.fixture
def agent() -> Iterator[FakeAgent]:
    with serve_fake_agent() as fake:
        yield fake


def test_errors_carry_the_agents_message_and_status(agent: FakeAgent) -> None:
    client = ShoalClient(agent.sock, 5)
    with pytest.raises(ShoalAPIError) as exc:
        client.get("/swarm")
    assert exc.value.status == 503
    assert exc.value.message.startswith("This node is not part of a swarm")
    assert not exc.value.is_version_conflict
    agent.fail[("GET", "/info")] = (500, "internal error: boom")
    with pytest.raises(ShoalAPIError) as exc:
        client.info()
    assert (exc.value.status, exc.value.message) == (500, "internal error: boom")


def test_unreachable_agent_is_status_0_with_the_socket_in_the_message(tmp_path) -> None:
    client = ShoalClient(str(tmp_path / "nobody.sock"), 2)
    with pytest.raises(AgentUnreachable) as exc:
        client.info()
    assert exc.value.status == 0 and "nobody.sock" in exc.value.message
    assert client.ping() is False


def test_queries_booleans_filters_and_node_paths(agent: FakeAgent) -> None:
    assert build_path("/nodes") == "/nodes"
    assert build_path("/swarm/leave", {"force": True}) == "/swarm/leave?force=true"
    assert build_path("/swarm/leave", {"force": None}) == "/swarm/leave"
    assert build_path("/tasks", {"filters": {"node": ["a"]}}) == "/tasks?filters=%7B%22node%22%3A%5B%22a%22%5D%7D"
    agent.make_manager()
    client = ShoalClient(agent.sock, 5)
    with pytest.raises(ShoalAPIError) as refused:  # /tasks not served: an error, not "no tasks"
        client.tasks({"node": ["x"]})
    assert refused.value.status == 404 and agent.requests[-1][0:2] == ("GET", "/tasks")
    agent.tasks = [{"ID": "t1", "NodeID": "x", "Status": {"State": "running"}}]
    assert [t["ID"] for t in client.tasks({"node": ["x"]})] == ["t1"]
    assert client.tasks({"node": ["y"]}) == []
    assert api_mod.node_path("a/b", "/update") == "/nodes/a%2Fb/update"


def test_unknown_node_is_none_but_ambiguous_is_an_error(agent: FakeAgent) -> None:
    agent.make_manager()
    client = ShoalClient(agent.sock, 5)
    assert client.node("nosuchnode") is None
    agent.fail[("GET", "/nodes/9")] = (404, "node 9 is ambiguous (2 matches)")
    with pytest.raises(ShoalAPIError, match="ambiguous"):
        client.node("9")


def test_retry_on_conflict_reads_again_then_gives_up() -> None:
    calls = []

    def attempt() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ShoalAPIError(409, "update out of sequence: node x is at version 5, the update was for version 4")
        return "done"

    assert retry_on_conflict(attempt, delay=0) == "done" and len(calls) == 3
    calls.clear()

    def always() -> str:
        calls.append(1)
        raise ShoalAPIError(409, "update out of sequence")

    with pytest.raises(ShoalAPIError):
        retry_on_conflict(always, attempts=4, delay=0)
    assert len(calls) == 4

    def other() -> str:
        calls.append(1)
        raise ShoalAPIError(409, "a network named x already exists")  # a name conflict is not retried

    calls.clear()
    with pytest.raises(ShoalAPIError):
        retry_on_conflict(other, delay=0)
    assert len(calls) == 1


def test_wait_until_returns_the_value_or_times_out() -> None:
    ticks = iter(range(100))
    values = iter([None, 0, {"a": 1}])
    done, value = wait_until(lambda: next(values), timeout=50, interval=0, clock=lambda: next(ticks))
    assert done and value == {"a": 1}
    ticks = iter(range(100))
    done, value = wait_until(lambda: [], timeout=3, interval=0, clock=lambda: next(ticks))
    assert not done and value == []
    ticks = iter(range(100))

    def broken() -> None:
        raise ShoalAPIError(503, "no quorum")

    with pytest.raises(ShoalAPIError, match="no quorum"):
        wait_until(broken, timeout=2, interval=0, clock=lambda: next(ticks))
    calls = []

    def refused() -> None:
        calls.append(1)
        raise ShoalAPIError(404, "page not found: GET /tasks")

    with pytest.raises(ShoalAPIError, match="page not found"):
        wait_until(refused, timeout=50, interval=0, clock=lambda: next(ticks))
    assert len(calls) == 1  # a refusal is not waited out


def test_ca_digest_is_the_agents_and_pins_the_token() -> None:
    assert ca_digest(CA_PEM) == agent_ca_digest(CA_PEM)
    assert ca_digest(OTHER_CA_PEM) == agent_ca_digest(OTHER_CA_PEM)
    assert ca_digest(CA_PEM + OTHER_CA_PEM) == agent_ca_digest(CA_PEM + OTHER_CA_PEM)
    assert parse_join_token(WORKER_TOKEN)[0] == ca_digest(CA_PEM)
    assert parse_join_token(FOREIGN_TOKEN)[0] == ca_digest(OTHER_CA_PEM) != ca_digest(CA_PEM)
    with pytest.raises(ValueError, match="no certificate"):
        ca_digest("not a pem")


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("nonsense", "must start with SWMTKN-1-"),
        ("SWMTKN-2-abc-def", "unsupported version"),
        ("SWMTKN-1-abc", "expected SWMTKN-1-<CA digest>-<secret>"),
        ("SWMTKN-1-abc-0123456789012345678901234", "CA digest must be 50"),
        ("SWMTKN-1-" + "a" * 50 + "-short", "secret must be 25"),
        ("SWMTKN-1-" + "A" * 50 + "-" + "b" * 25, "CA digest must be 50"),
    ],
)
def test_malformed_tokens_are_named(token: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("<", ".").replace(">", ".")):
        parse_join_token(token)


@pytest.mark.parametrize(
    ("text", "ns"),
    [("5s", 5 * 10**9), ("500ms", 5 * 10**8), ("1m30s", 90 * 10**9), ("2h", 7200 * 10**9), ("1.5s", 15 * 10**8)],
)
def test_durations_parse_like_go(text: str, ns: int) -> None:
    assert parse_duration(text) == ns == agent_parse_duration(text)
    assert parse_duration(format_duration(ns)) == ns


def test_duration_numbers_are_seconds_and_junk_is_refused() -> None:
    assert parse_duration(2) == parse_duration("2") == 2 * 10**9
    assert parse_duration(0.25) == 250 * 10**6
    for bad in ("", "5x", "s5", "1s junk", True):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad, "period")


def test_format_duration_reads_like_go() -> None:
    for ns in (10**9, 5 * 10**9, 90 * 10**9, 2160 * 3600 * 10**9, 250 * 10**6, 1500, 7, 1_500_000_001):
        assert parse_duration(format_duration(ns)) == ns
        assert format_duration(ns) == agent_format_duration(ns)
    assert format_duration(90 * 10**9) == "1m30s"
    assert format_duration(2160 * 3600 * 10**9) == "2160h0m0s"
    assert format_duration(250 * 10**6) == "250ms"
    assert format_duration(None) is None


def test_labels_become_strings() -> None:
    assert label_map({"zone": "a", "n": 3, "ssd": True, "off": False, "empty": None}) == {
        "zone": "a",
        "n": "3",
        "ssd": "true",
        "off": "false",
        "empty": "",
    }
    assert label_map(None) == {}
