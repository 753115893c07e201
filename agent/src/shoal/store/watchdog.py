"""Leader-side catch-up watchdog (notes/raft.md, defect 2).

After a partition heals, a former leader that holds uncommitted entries of its old term may not
catch up until the leader compacts its log and ships a snapshot, which by default waits up to
`logCompactionMinTime`. The watchdog notices a connected follower whose match index stays below
the commit index without moving for `stall_timeout` seconds and asks for a compaction now.

Pure logic with the clock passed in, so it is tested without Raft; `replicated.py` feeds it from
pysyncobj's public `getStatus()` on the tick thread and calls `forceLogCompaction()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shoal.store.elections import followers_of


class CatchupWatchdog:
    def __init__(self, stall_timeout: float = 5.0) -> None:
        self.stall_timeout = stall_timeout
        self._since: dict[str, tuple[int, float]] = {}  # follower -> (match index, stalled since)
        self.fired = 0

    def observe(self, now: float, commit_index: int, match: Mapping[str, int]) -> bool:
        """`match`: match index of each *connected* follower. True when a compaction should be forced."""
        fire = False
        for peer in list(self._since):
            if peer not in match:
                del self._since[peer]  # disconnected: nothing to catch up with yet
        for peer, index in match.items():
            if index >= commit_index:
                self._since.pop(peer, None)
                continue
            seen = self._since.get(peer)
            if seen is None or seen[0] != index:
                self._since[peer] = (index, now)  # new lag, or progress: restart the clock
            elif now - seen[1] >= self.stall_timeout:
                fire = True
        if fire:
            self.fired += 1
            # give the snapshot one full period to arrive before asking again
            self._since = {peer: (index, now) for peer, (index, _t) in self._since.items()}
        return fire

    def reset(self) -> None:
        self._since.clear()


def follower_matches(status: Mapping[str, Any]) -> tuple[int, dict[str, int]]:
    """(commit index, match index of each connected follower) from pysyncobj's getStatus()."""
    followers = followers_of(status)
    return int(status.get("commit_idx") or 0), {peer: match for peer, (up, _next, match) in followers.items() if up}
