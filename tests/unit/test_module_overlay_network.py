"""overlay_network against a fake agent (shoal's own network validation): create, compare, recreate only when
no service uses the network, check and diff mode, bad arguments."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from unit.test_module_support import FakeAgent, module_runner, serve_fake_agent

from ansible_collections.shoal.swarm.plugins.module_utils._shoal_api import ShoalClient  # isort: skip
from ansible_collections.shoal.swarm.plugins.modules import overlay_network  # isort: skip


@pytest.fixture
def agent() -> Iterator[FakeAgent]:
    with serve_fake_agent() as fake:
        yield fake.enable_workloads()


@pytest.fixture
def run(agent: FakeAgent):
    return module_runner(overlay_network, agent)


def network_writes(agent: FakeAgent) -> list[tuple[str, str, dict[str, str], Any]]:
    return [w for w in agent.writes() if w[1].startswith("/networks")]


def use_network(agent: FakeAgent, network: str, service: str = "web") -> None:
    ShoalClient(agent.sock).post(
        "/services/create",
        {
            "Name": service,
            "TaskTemplate": {"ContainerSpec": {"Image": "shoal/host"}, "Networks": [{"Target": network}]},
        },
    )


def test_create_then_idempotent(agent: FakeAgent, run) -> None:
    args = {"name": "backend", "subnet": "10.0.9.0/24", "labels": {"tier": "back", "n": 1}, "attachable": True}
    failed, result = run(**args, diff=True)
    assert not failed and result["changed"] and result["actions"] == ["network created"], result
    ((method, path, _query, body),) = network_writes(agent)
    assert (method, path) == ("POST", "/networks/create")
    assert body == {
        "Name": "backend",
        "Driver": "overlay",
        "CheckDuplicate": True,
        "Attachable": True,
        "Labels": {"tier": "back", "n": "1"},
        "IPAM": {"Driver": "default", "Config": [{"Subnet": "10.0.9.0/24"}]},
    }
    assert result["network"]["IPAM"]["Config"] == [{"Subnet": "10.0.9.0/24", "Gateway": "10.0.9.1"}]
    assert result["network_id"] == agent.find_network("backend")["ID"]
    assert result["diff"]["before"] == {"state": "absent"} and result["diff"]["after"]["subnet"] == "10.0.9.0/24"
    failed, again = run(**args)
    assert not failed and not again["changed"], again
    failed, again = run(name="backend")  # nothing given: nothing to compare
    assert not failed and not again["changed"]
    assert len(network_writes(agent)) == 1


def test_a_difference_recreates_an_unused_network(agent: FakeAgent, run) -> None:
    run(name="backend", subnet="10.0.9.0/24", internal=True)
    old = agent.find_network("backend")["ID"]
    failed, result = run(name="backend", subnet="10.0.10.0/24", diff=True)
    assert not failed and result["changed"] and result["changes"] == ["subnet"], result
    assert result["actions"] == ["network removed and created again"]
    assert result["diff"]["before"]["subnet"] == "10.0.9.0/24" and result["diff"]["after"]["subnet"] == "10.0.10.0/24"
    assert result["diff"]["after"]["gateway"] == "10.0.10.1"
    new = agent.find_network("backend")
    assert new["ID"] != old and new["IPAM"]["Configs"][0]["Subnet"] == "10.0.10.0/24"
    assert new["Spec"]["Internal"] is True  # what was not given is kept
    assert [w[0] for w in network_writes(agent)][-2:] == ["DELETE", "POST"]


def test_a_network_in_use_is_not_changed_and_says_by_whom(agent: FakeAgent, run) -> None:
    run(name="backend", subnet="10.0.9.0/24")
    use_network(agent, "backend", "api")
    use_network(agent, "backend", "web")
    before = len(agent.writes())
    failed, result = run(name="backend", subnet="10.0.10.0/24")
    assert failed and not result["changed"], result
    assert "network backend is used by service(s) api, web: it cannot change in place" in result["msg"]
    assert "'10.0.9.0/24' -> '10.0.10.0/24'" in result["msg"] and result["services"] == ["api", "web"]
    assert len(agent.writes()) == before


def test_force_still_fails_clearly_when_the_swarm_refuses(agent: FakeAgent, run) -> None:
    run(name="backend", subnet="10.0.9.0/24")
    use_network(agent, "backend")
    failed, result = run(name="backend", subnet="10.0.10.0/24", force=True)
    assert failed and not result["changed"], result
    assert "the swarm refused to remove it: network backend is in use by service web" in result["msg"]
    assert "Nothing was changed" in result["msg"] and result["status"] == 409
    assert agent.find_network("backend")["IPAM"]["Configs"][0]["Subnet"] == "10.0.9.0/24"


def test_an_overlapping_new_subnet_is_refused_before_anything_is_removed(agent: FakeAgent, run) -> None:
    run(name="a", subnet="10.0.9.0/24")
    run(name="b", subnet="10.0.10.0/24")
    before = len(agent.writes())
    failed, result = run(name="a", subnet="10.0.10.0/25")
    assert failed and "overlaps with the subnet of network b" in result["msg"], result
    assert len(agent.writes()) == before


def test_a_failed_create_restores_the_old_network(agent: FakeAgent, run) -> None:
    run(name="backend", subnet="10.0.9.0/24", labels={"a": "1"}, internal=True)
    agent.fail_once[("POST", "/networks/create")] = (400, "boom")
    failed, result = run(name="backend", labels={"a": "2"})
    assert failed and "refused the new one: boom. The old network was created again" in result["msg"], result
    assert not result["changed"]
    restored = agent.find_network("backend")["Spec"]
    assert restored["Labels"] == {"a": "1"} and restored["Internal"] is True
    assert restored["IPAMOptions"]["Configs"][0]["Subnet"] == "10.0.9.0/24"
    agent.fail[("POST", "/networks/create")] = (400, "boom")
    failed, result = run(name="backend", labels={"a": "2"})
    assert failed and result["changed"] and "Creating the old one again failed too" in result["msg"]


def test_check_mode_predicts_and_changes_nothing(agent: FakeAgent, run) -> None:
    failed, result = run(name="backend", subnet="10.0.9.0/24", check=True, diff=True)
    assert not failed and result["changed"] and result["network_id"] == "", result
    assert network_writes(agent) == []
    run(name="backend", subnet="10.0.9.0/24")
    use_network(agent, "backend")
    writes = len(agent.writes())
    failed, result = run(name="backend", subnet="10.0.10.0/24", check=True, diff=True)
    assert not failed and result["changed"] and result["changes"] == ["subnet"], result
    assert "used by service(s) web" in str(result["warnings"])  # an earlier task may remove it
    failed, result = run(name="backend", state="absent", check=True)
    assert not failed and result["changed"] and "used by service(s) web" in str(result["warnings"])
    assert len(agent.writes()) == writes


def test_absent_removes_refuses_while_used_and_is_idempotent(agent: FakeAgent, run) -> None:
    run(name="backend")
    use_network(agent, "backend")
    failed, result = run(name="backend", state="absent")
    assert failed and "network backend is used by service(s) web" in result["msg"], result
    ShoalClient(agent.sock).delete("/services/web")
    failed, result = run(name="backend", state="absent")
    assert not failed and result["changed"] and result["actions"] == ["network removed"]
    failed, result = run(name="backend", state="absent")
    assert not failed and not result["changed"]


def test_ingress_cannot_be_managed(agent: FakeAgent, run) -> None:
    failed, result = run(name="ingress", state="absent")
    assert failed and "routing mesh" in result["msg"]
    assert network_writes(agent) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"subnet": "10.0.9.1/24"}, "invalid subnet '10.0.9.1/24'"),
        ({"subnet": "10.0.9.0/30"}, "an IPv4 subnet of /29 or larger is needed"),
        ({"subnet": "10.0.9.0/24", "gateway": "10.0.8.1"}, "gateway 10.0.8.1 is not a usable address"),
        ({"gateway": "10.0.9.1"}, "missing parameter(s) required by 'gateway': subnet"),
        ({"gateway": "nope", "subnet": "10.0.9.0/24"}, "invalid gateway 'nope'"),
        ({"state": "absent", "internal": True}, "state=absent: these options apply to state=present only: internal"),
        ({"name": "bad name"}, "invalid network name 'bad name'"),
    ],
)
def test_bad_arguments_fail_clearly(agent: FakeAgent, run, args: dict[str, Any], message: str) -> None:
    failed, result = run(**{"name": "backend", **args})
    assert failed and message in result["msg"], result
    assert agent.writes() == []


def test_the_agents_refusal_is_surfaced(agent: FakeAgent, run) -> None:
    run(name="a", subnet="10.0.9.0/24")
    failed, result = run(name="b", subnet="10.0.9.0/25")
    assert failed and "overlaps with the subnet of network a" in result["msg"] and result["status"] == 400


def test_a_name_that_only_prefixes_other_ids_is_a_new_network(agent: FakeAgent, run) -> None:
    """The API resolves a reference by ID, name, then unique ID prefix: a new network's name that
    happens to prefix two existing IDs ("ambiguous") names no network, so it is created."""
    run(name="a", subnet="10.0.9.0/24")
    prefix = "b"
    for network in agent.networks:  # two networks whose IDs start like the new name
        network["ID"] = prefix + network["ID"][1:]
    failed, result = run(name=prefix, subnet="10.0.10.0/24")
    assert not failed and result["changed"], result.get("msg")
    assert [n["Spec"]["Name"] for n in agent.networks if n["Spec"]["Name"] == prefix] == [prefix]


def test_encrypted_is_asked_for_with_dockers_option_and_the_refusal_is_the_failure(agent: FakeAgent, run) -> None:
    failed, result = run(name="secure", encrypted=True)  # the fake nodes did not report IPsec support
    assert failed and "this cluster cannot encrypt (swarm00: did not report IPsec support" in result["msg"], result
    ((_, _, _, body),) = network_writes(agent)
    assert body["Options"] == {"encrypted": ""}
    assert all(n["Spec"]["Name"] != "secure" for n in agent.networks)  # never made unencrypted
    # a plain network is what encrypted=false asks for: nothing to change
    run(name="plain")
    failed, again = run(name="plain", encrypted=False)
    assert not failed and not again["changed"], again


def test_encrypted_network_is_created_checked_and_idempotent_where_every_node_has_esp(agent: FakeAgent, run) -> None:
    for node in agent.nodes.values():
        node["Description"]["Dataplane"] = {"EncryptedOverlay": True, "Reason": ""}
    failed, result = run(name="secure", encrypted=True, check=True)
    assert not failed and result["changed"] and not network_writes(agent), result
    failed, result = run(name="secure", encrypted=True, diff=True)
    assert not failed and result["changed"] and result["diff"]["after"]["encrypted"] is True, result
    assert result["network"]["Options"]["encrypted"] == ""  # Docker's inspect shows the option
    failed, again = run(name="secure", encrypted=True)
    assert not failed and not again["changed"], again
    # asking for it plain is a difference: the unused network is made again, unencrypted
    failed, plain = run(name="secure", encrypted=False)
    assert not failed and plain["changed"] and plain["changes"] == ["encrypted"], plain
    assert "encrypted" not in agent.find_network("secure")["Spec"]["DriverConfiguration"]["Options"]
