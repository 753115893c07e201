"""This replica's Raft story in its log: terms, candidacies, leaders, and a leader's commits that stall.

pysyncobj logs none of it, and at 1,000 nodes a takeover took 107 s to elect and its new leader then
committed nothing for minutes (docs/scale.md, session 19) without a line that said why. One line per
change of term, state or leader (rare: a cluster that elects says a few lines), and on a leader whose
log has entries it cannot commit, every STALL_REPORT seconds, where each follower stands.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# pysyncobj's _RAFT_STATE values
STATES = {0: "follower", 1: "candidate", 2: "leader"}
# A leader that has held uncommitted entries this long says where its followers are, and again
# every STALL_REPORT seconds while it lasts.
STALL_REPORT = 5.0


@dataclass(frozen=True)
class RaftView:
    term: int
    state: int
    leader: str | None
    log_index: int  # this replica's last log index
    commit_index: int


def view_of(sync: Any) -> RaftView:
    """The view of a pysyncobj SyncObj, read from its private state (getStatus() builds a dict of
    everything each call, and lacks the last log index)."""
    leader = sync._SyncObj__raftLeader
    return RaftView(
        term=int(sync.raftCurrentTerm),
        state=int(sync._SyncObj__raftState),
        leader=None if leader is None else str(getattr(leader, "id", leader)),
        log_index=int(sync._SyncObj__getCurrentLogIndex()),
        commit_index=int(sync.raftCommitIndex),
    )


def followers_of(status: Mapping[str, Any]) -> dict[str, tuple[bool, int, int]]:
    """Each follower: (connected, next index, match index), from a leader's getStatus()."""
    out: dict[str, tuple[bool, int, int]] = {}
    for key, value in status.items():
        if key.startswith("match_idx_server_"):
            peer = key[len("match_idx_server_") :]
            connected = status.get("partner_node_status_server_" + peer) == 2
            out[peer] = (connected, int(status.get("next_node_idx_server_" + peer) or 0), int(value))
    return out


class ElectionLog:
    """Turns successive views of one replica into the lines worth logging (pure: no clock, no I/O)."""

    def __init__(self) -> None:
        self._last: RaftView | None = None
        self._stalled_since: float | None = None  # a leader's commit index stopped below its log
        self._stalled_at = 0
        self._reported = 0.0

    def observe(self, view: RaftView) -> list[str]:
        lines: list[str] = []
        last, self._last = self._last, view
        if last is None or view.term != last.term or view.state != last.state:
            lines.append(self._describe(view, last))
        elif view.leader != last.leader:
            lines.append(f"Raft term {view.term}: the leader is now {view.leader or 'unknown'}")
        return lines

    def stalled(self, now: float, view: RaftView, followers: Mapping[str, tuple[bool, int, int]]) -> str | None:
        """On a leader: a line when entries have waited STALL_REPORT seconds or more without a
        commit (and then every STALL_REPORT seconds while they still wait), else None."""
        if view.state != 2 or view.log_index <= view.commit_index:
            self._stalled_since = None
            return None
        if self._stalled_since is None or view.commit_index != self._stalled_at:
            self._stalled_since, self._stalled_at, self._reported = now, view.commit_index, now
            return None
        if now - self._reported < STALL_REPORT:
            return None
        self._reported = now
        where = ", ".join(
            f"{peer} {'connected' if up else 'NOT connected'} next {nxt} match {match}"
            for peer, (up, nxt, match) in sorted(followers.items())
        )
        return (
            f"Raft term {view.term}: nothing committed for {now - self._stalled_since:.0f} s "
            f"(commit index {view.commit_index}, log {view.log_index}); followers: {where or 'none'}"
        )

    @staticmethod
    def _describe(view: RaftView, last: RaftView | None) -> str:
        state = STATES.get(view.state, str(view.state))
        head = f"Raft term {view.term}: {state}"
        if view.state == 1:
            return f"{head}, standing for election (log index {view.log_index}, commit index {view.commit_index})"
        if view.state == 2:
            return f"{head} (log index {view.log_index}, commit index {view.commit_index})"
        was = "" if last is None else f" (was {STATES.get(last.state, last.state)} in term {last.term})"
        return f"{head}, leader {view.leader or 'unknown'}{was}"
