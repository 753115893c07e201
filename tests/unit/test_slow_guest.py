"""Timeouts for slow guests: the Raft timeouts stretch with the configured election timeout."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoal import config
from shoal.store.config import RaftConfig

ARGS = {"self_addr": "10.213.0.10:2378", "peers": [], "data_dir": Path("/x"), "password": "p"}


def test_default_election_timeout_keeps_the_tuned_defaults() -> None:
    assert RaftConfig.scaled(0.25, **ARGS) == RaftConfig(**ARGS)


def test_a_longer_election_timeout_stretches_every_raft_timeout_but_not_the_periods() -> None:
    base, slow = RaftConfig(**ARGS), RaftConfig.scaled(3.0, **ARGS)
    assert slow.raft_min_timeout == pytest.approx(3.0)
    assert slow.raft_max_timeout == pytest.approx(base.raft_max_timeout * 12)
    assert slow.leader_fallback_timeout == pytest.approx(base.leader_fallback_timeout * 12)
    assert slow.quorum_wait == pytest.approx(base.quorum_wait * 12)
    assert slow.commit_timeout == pytest.approx(base.commit_timeout * 12)  # a write's default deadline
    assert slow.append_entries_period == base.append_entries_period
    slow.validate()


@pytest.mark.parametrize("election_timeout", [0.1, 0.25, 1.0, 5.0])
def test_swarm_init_waits_at_least_the_longest_election_of_the_scaled_timeouts(election_timeout: float) -> None:
    # swarm init waits for its lone replica to win; it must not give up before it can even stand
    scaled = RaftConfig.scaled(election_timeout, **ARGS)
    assert RaftConfig.longest_election(election_timeout) == pytest.approx(scaled.raft_max_timeout)


def test_config_election_timeout(tmp_path: Path) -> None:
    path = tmp_path / "shoald.yml"
    path.write_text("election_timeout: 3\n")
    assert config.load(path).election_timeout == 3.0
    assert config.load(None).election_timeout == 0.25
    path.write_text("election_timeout: 0.1\n")
    with pytest.raises(config.ConfigError, match="election_timeout"):
        config.load(path)
