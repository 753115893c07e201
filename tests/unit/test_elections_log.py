"""The Raft story a replica logs: one line per change of term, state or leader; a leader's stalled commits."""

from __future__ import annotations

from shoal.store.elections import STALL_REPORT, ElectionLog, RaftView, followers_of

FOLLOWER, CANDIDATE, LEADER = 0, 1, 2


def view(term: int, state: int, leader: str | None = None, log_index: int = 10, commit: int = 10) -> RaftView:
    return RaftView(term=term, state=state, leader=leader, log_index=log_index, commit_index=commit)


def test_one_line_per_change_and_none_while_nothing_changes() -> None:
    watch = ElectionLog()
    assert watch.observe(view(3, FOLLOWER, "b:2378")) == ["Raft term 3: follower, leader b:2378"]
    assert watch.observe(view(3, FOLLOWER, "b:2378", log_index=11, commit=11)) == []
    assert watch.observe(view(3, FOLLOWER, None)) == ["Raft term 3: the leader is now unknown"]
    (line,) = watch.observe(view(4, CANDIDATE, None, log_index=12, commit=11))
    assert line == "Raft term 4: candidate, standing for election (log index 12, commit index 11)"
    (line,) = watch.observe(view(5, FOLLOWER, None))
    assert line == "Raft term 5: follower, leader unknown (was candidate in term 4)"
    (line,) = watch.observe(view(6, LEADER, "a:2378", log_index=13, commit=12))
    assert line == "Raft term 6: leader (log index 13, commit index 12)"


def test_a_leader_says_where_its_followers_are_when_nothing_commits() -> None:
    watch = ElectionLog()
    followers = {"b:2378": (True, 14, 9), "c:2378": (False, 11, 0)}
    stuck = view(6, LEADER, "a:2378", log_index=13, commit=9)
    assert watch.stalled(0.0, stuck, followers) is None  # the clock starts
    assert watch.stalled(STALL_REPORT - 0.1, stuck, followers) is None
    line = watch.stalled(STALL_REPORT, stuck, followers)
    assert line is not None
    assert "nothing committed for 5 s (commit index 9, log 13)" in line
    assert "b:2378 connected next 14 match 9, c:2378 NOT connected next 11 match 0" in line
    assert watch.stalled(STALL_REPORT + 1, stuck, followers) is None  # not again before the next period
    assert watch.stalled(2 * STALL_REPORT + 0.1, stuck, followers) is not None


def test_progress_or_a_caught_up_log_restarts_the_clock() -> None:
    watch = ElectionLog()
    assert watch.stalled(0.0, view(6, LEADER, log_index=13, commit=9), {}) is None
    assert watch.stalled(4.0, view(6, LEADER, log_index=14, commit=10), {}) is None  # a commit: progress
    assert watch.stalled(8.0, view(6, LEADER, log_index=14, commit=10), {}) is None  # 4 s since it
    assert watch.stalled(9.0, view(6, LEADER, log_index=14, commit=14), {}) is None  # all committed
    assert watch.stalled(20.0, view(6, LEADER, log_index=15, commit=14), {}) is None
    assert watch.stalled(20.0, view(6, FOLLOWER, log_index=15, commit=14), {}) is None  # not a leader


def test_followers_read_from_pysyncobj_status() -> None:
    status = {
        "match_idx_server_b:2378": 7,
        "next_node_idx_server_b:2378": 8,
        "partner_node_status_server_b:2378": 2,
        "match_idx_server_c:2378": 0,
        "next_node_idx_server_c:2378": 3,
        "partner_node_status_server_c:2378": 0,
        "commit_idx": 7,
    }
    assert followers_of(status) == {"b:2378": (True, 8, 7), "c:2378": (False, 3, 0)}
