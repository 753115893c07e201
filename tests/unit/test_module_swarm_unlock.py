"""swarm_unlock and swarm_init's autolock_managers against a fake agent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from unit.test_module_support import FakeAgent, module_runner, serve_fake_agent

from ansible_collections.shoal.swarm.plugins.modules import swarm_init, swarm_unlock  # isort: skip

KEY = "SWMKEY-1-" + "A" * 43
PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "unlock.yml"


@pytest.fixture
def agent() -> Iterator[FakeAgent]:
    with serve_fake_agent() as fake:
        yield fake


def test_init_with_autolock_returns_the_unlock_key(agent: FakeAgent) -> None:
    failed, result = module_runner(swarm_init, agent)(autolock_managers=True, diff=True)
    assert not failed, result
    assert agent.writes()[0][3]["Spec"] == {"EncryptionConfig": {"AutoLockManagers": True}}
    assert result["unlock_key"] == agent.unlock_key and result["unlock_key"].startswith("SWMKEY-1-")
    # idempotent: the second run changes nothing and still returns the key
    failed, again = module_runner(swarm_init, agent)(autolock_managers=True)
    assert not failed and not again["changed"] and again["unlock_key"] == agent.unlock_key


def test_check_mode_predicts_autolock_and_writes_nothing(agent: FakeAgent) -> None:
    agent.make_manager()
    failed, result = module_runner(swarm_init, agent)(autolock_managers=True, check=True, diff=True)
    assert not failed and result["changed"] and result["changes"] == ["autolock_managers"]
    assert result["diff"]["before"]["autolock_managers"] is False
    assert result["diff"]["after"]["autolock_managers"] is True
    assert agent.writes() == [] and result["unlock_key"] == ""


def test_autolock_on_then_off_then_rotation_refused(agent: FakeAgent) -> None:
    agent.make_manager()
    run = module_runner(swarm_init, agent)
    failed, on = run(autolock_managers=True)
    assert not failed and on["changed"] and on["unlock_key"] == agent.unlock_key != ""
    assert on["actions"] == ["autolock_managers updated"]
    failed, rotated = run(rotate_unlock_key=True)
    assert not failed and rotated["actions"] == ["unlock key rotated"]
    assert rotated["unlock_key"] == agent.unlock_key != on["unlock_key"]
    assert agent.writes()[-1][2].get("rotateManagerUnlockKey") == "true"
    failed, off = run(autolock_managers=False)
    assert not failed and off["changed"] and off["unlock_key"] == "" and agent.unlock_key == ""
    writes = len(agent.writes())
    failed, refused = run(rotate_unlock_key=True)
    assert failed and refused["msg"] == "cannot rotate because autolock is not turned on"
    assert len(agent.writes()) == writes


def test_unlock_unlocks_a_locked_manager_once(agent: FakeAgent) -> None:
    agent.make_locked(KEY)
    run = module_runner(swarm_unlock, agent)
    failed, result = run(unlock_key=KEY, diff=True)
    assert not failed, result
    assert result["changed"] and result["state"] == "active" and agent.state == "active"
    assert result["diff"] == {"before": {"state": "locked"}, "after": {"state": "active"}}
    assert KEY not in str(result)
    failed, again = run(unlock_key=KEY)
    assert not failed and not again["changed"] and again["state"] == "active"
    assert [w[1] for w in agent.writes()] == ["/swarm/unlock"]


def test_unlock_check_mode_sends_nothing(agent: FakeAgent) -> None:
    agent.make_locked(KEY)
    failed, result = module_runner(swarm_unlock, agent)(unlock_key=KEY, check=True, diff=True)
    assert not failed and result["changed"] and agent.state == "locked" and agent.writes() == []


def test_unlock_with_a_wrong_key_fails_with_the_agents_message(agent: FakeAgent) -> None:
    agent.make_locked(KEY)
    failed, result = module_runner(swarm_unlock, agent)(unlock_key="SWMKEY-1-" + "B" * 43)
    assert failed and result["msg"] == "swarm could not be unlocked: invalid key provided"
    assert not result["changed"] and agent.state == "locked"


@pytest.mark.parametrize(
    ("setup", "key", "message"),
    [
        ("locked", "not-a-key", "unlock_key must be a swarm unlock key (SWMKEY-1-...)"),
        ("inactive", KEY, "This node is not part of a swarm"),
    ],
)
def test_unlock_refusals(agent: FakeAgent, setup: str, key: str, message: str) -> None:
    if setup == "locked":
        agent.make_locked(KEY)
    failed, result = module_runner(swarm_unlock, agent)(unlock_key=key)
    assert failed and message in result["msg"]
    assert agent.writes() == []


def test_swarm_init_on_a_locked_manager_says_to_unlock_it(agent: FakeAgent) -> None:
    agent.make_locked(KEY)
    failed, result = module_runner(swarm_init, agent)(task_history_limit=3)
    assert failed and "this manager is locked (autolock)" in result["msg"]


def test_the_unlock_playbook_unlocks_managers_from_the_vaulted_variable() -> None:
    (play,) = yaml.safe_load(PLAYBOOK.read_text())
    assert play["hosts"] == "{{ shoal_managers_group | default('managers') }}"
    check, unlock = play["tasks"]
    assert "shoal_unlock_key is defined" in check["ansible.builtin.assert"]["that"]
    assert unlock["shoal.swarm.swarm_unlock"] == {"unlock_key": "{{ shoal_unlock_key }}"}
