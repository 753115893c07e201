"""Store parts without Raft: the catch-up watchdog, the commit driver, watch subscriptions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pysyncobj import FAIL_REASON

from shoal.store.changes import Event
from shoal.store.commitop import CommitOp, Denied
from shoal.store.config import RaftConfig
from shoal.store.errors import NoQuorum, NotFound, Timeout, WatchLost
from shoal.store.watch import Hub
from shoal.store.watchdog import CatchupWatchdog, follower_matches

# ---- catch-up watchdog (notes defect 2)


def test_watchdog_fires_for_a_follower_stalled_below_the_commit_index() -> None:
    wd = CatchupWatchdog(stall_timeout=5.0)
    assert not wd.observe(0.0, 100, {"b": 100, "c": 40})
    assert not wd.observe(4.9, 100, {"b": 100, "c": 40})
    assert wd.observe(5.0, 100, {"b": 100, "c": 40})
    assert wd.fired == 1
    assert not wd.observe(6.0, 100, {"b": 100, "c": 40})  # one full period before asking again
    assert wd.observe(10.0, 100, {"b": 100, "c": 40})


def test_watchdog_leaves_progressing_caught_up_and_disconnected_followers_alone() -> None:
    wd = CatchupWatchdog(stall_timeout=5.0)
    for t in range(20):
        assert not wd.observe(float(t), 100 + t, {"b": 60 + t})  # behind but moving
    wd.observe(20.0, 200, {"c": 10})
    assert not wd.observe(24.0, 200, {})  # c disconnected: forgotten
    assert not wd.observe(26.0, 200, {"c": 10})  # and the clock restarts when it is back
    assert not wd.observe(30.0, 200, {"c": 200})


def test_follower_matches_reads_pysyncobj_status() -> None:
    status = {
        "commit_idx": 42,
        "match_idx_server_a:1": 42,
        "match_idx_server_b:2": 7,
        "partner_node_status_server_a:1": 2,
        "partner_node_status_server_b:2": 0,
    }
    assert follower_matches(status) == (42, {"a:1": 42})


# ---- commit driver


class FakeRaft:
    def __init__(self) -> None:
        self.now = 0.0
        self.quorum = True
        self.proposals: list[Any] = []

    def op(self, timeout: float = 2.0, quorum_wait: float = 1.0) -> CommitOp:
        return CommitOp(
            propose=self.proposals.append,
            has_quorum=lambda: self.quorum,
            describe_quorum=lambda: "no leader",
            now=lambda: self.now,
            deadline=self.now + timeout,
            quorum_wait=quorum_wait,
            wake=lambda: None,
        )


def test_commit_retries_retryable_answers_and_returns_the_index() -> None:
    raft = FakeRaft()
    op = raft.op()
    assert op.poll()[0] is False and len(raft.proposals) == 1
    raft.proposals[0](None, FAIL_REASON.LEADER_CHANGED)
    op.poll()
    raft.now += 0.02  # a short pause before proposing again
    op.poll()
    assert len(raft.proposals) == 2  # proposed again (same command, same request id)
    raft.proposals[0](None, FAIL_REASON.DISCARDED)  # a late answer to the first try: ignored
    raft.proposals[1](("ok", 12), FAIL_REASON.SUCCESS)
    assert op.poll() == (True, 12)


def test_commit_raises_the_state_machine_error() -> None:
    raft = FakeRaft()
    op = raft.op()
    op.poll()
    raft.proposals[0](("err", "NotFound", "task x not found"), FAIL_REASON.SUCCESS)
    with pytest.raises(NotFound, match="task x not found"):
        op.poll()


def test_no_quorum_fails_fast_and_says_so() -> None:
    raft = FakeRaft()
    raft.quorum = False
    op = raft.op(timeout=30.0, quorum_wait=1.0)
    raft.now = 0.5
    assert op.poll()[0] is False and raft.proposals == []
    raft.now = 1.0
    with pytest.raises(NoQuorum, match=r"^no quorum") as err:
        op.poll()
    assert err.value.status == 503 and not err.value.outcome_unknown


def test_quorum_lost_while_pending_is_an_unknown_outcome() -> None:
    raft = FakeRaft()
    op = raft.op(timeout=30.0)
    op.poll()
    raft.quorum = False
    raft.now = 0.1
    op.poll()
    raft.now = 1.2
    with pytest.raises(NoQuorum) as err:
        op.poll()
    assert err.value.outcome_unknown


def test_timeout_and_denied() -> None:
    raft = FakeRaft()
    op = raft.op(timeout=0.5)
    op.poll()
    raft.now = 0.5
    with pytest.raises(Timeout):
        op.poll()
    op = raft.op()
    op.poll()
    raft.proposals[-1](None, FAIL_REASON.REQUEST_DENIED)
    with pytest.raises(Denied):
        op.poll()


# ---- watch


def ev(i: int) -> Event:
    return Event("task", "create", {"ID": f"t{i}", "Spec": {}}, i)


def test_subscribers_get_private_copies_in_order() -> None:
    hub = Hub()
    a, b = hub.add(0, None, 100), hub.add(0, None, 100)
    hub.publish([ev(1), ev(2)])
    first = a.get(0)
    assert first is not None and first.obj["ID"] == "t1"
    first.obj["Spec"]["mutated"] = True
    other = b.get(0)
    assert other is not None and other.obj["Spec"] == {}
    assert a.get(0) == ev(2) and a.get(0.01) is None
    a.close()
    hub.publish([ev(3)])
    assert a.get(0) is None and b.get(0) == ev(2)


def test_a_subscriber_too_far_behind_is_dropped() -> None:
    hub = Hub()
    sub = hub.add(0, None, 3)
    hub.publish([ev(1), ev(2)])
    hub.publish([ev(3), ev(4)])
    with pytest.raises(WatchLost):
        sub.get(0)


def test_async_subscription() -> None:
    async def main() -> list[int]:
        hub = Hub()
        sub = hub.add(0, asyncio.get_running_loop(), 100)
        loop = asyncio.get_running_loop()
        loop.call_later(0.01, hub.publish, [ev(1)])
        loop.call_later(0.02, hub.publish, [ev(2)])
        got = [await sub.aget(), await sub.aget()]
        loop.call_later(0.01, sub.close)
        assert await sub.aget() is None
        return [e.index for e in got if e is not None]

    assert asyncio.run(main()) == [1, 2]


def test_wait_says_that_something_changed_and_discard_drops_it_unread() -> None:
    async def main() -> None:
        hub = Hub()
        loop = asyncio.get_running_loop()
        sub = hub.add(0, loop, 3)
        assert await sub.wait(0.01) is False  # nothing yet: the timeout
        loop.call_later(0.01, hub.publish, [ev(1), ev(2)])
        assert await sub.wait(1.0) is True
        sub.discard()
        assert sub.get_nowait() is None and await sub.wait(0.01) is False
        hub.publish([ev(3), ev(4)])
        hub.publish([ev(5), ev(6)])  # 4 behind with room for 3: dropped
        assert await sub.wait(0.01) is True
        with pytest.raises(WatchLost):
            sub.discard()

    asyncio.run(main())


# ---- config


def test_config_refuses_an_empty_password_and_bad_addresses(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="password"):
        RaftConfig("127.0.0.1:1", [], tmp_path, "").validate()
    with pytest.raises(ValueError, match="host:port"):
        RaftConfig("127.0.0.1", [], tmp_path, "pw").validate()
    conf = RaftConfig("127.0.0.1:7000", ["127.0.0.1:7000", "127.0.0.1:7001"], tmp_path, "pw")
    assert conf.other_peers() == ["127.0.0.1:7001"]
    sync = conf.sync_conf()
    assert sync.bindAddress == "127.0.0.1:7000"  # never 0.0.0.0
    assert sync.journalFile.startswith(str(tmp_path)) and sync.fullDumpFile.startswith(str(tmp_path))
    assert (sync.raftMinTimeout, sync.raftMaxTimeout, sync.leaderFallbackTimeout) == (0.25, 0.6, 1.0)
