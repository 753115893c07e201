"""pysyncobj's SyncObj that reads what has arrived before it calls an election.

pysyncobj's tick checks its election deadline first and reads its sockets last: a follower whose
deadline passed stands for election before it looks at the messages waiting for it. When the tick
thread itself was held up (a full collection of Python's garbage collector in a manager holding
30,000 tasks takes seconds with the GIL held, docs/scale.md), the leader's heartbeats are sitting
in the socket buffer: the silence was this follower's, not the leader's, yet its higher term
deposed a healthy leader. Raft's election timeout is about what a running replica observes; so
after a held-up tick this one first reads its sockets, then lets pysyncobj decide. A leader that
really went quiet sent nothing, and the election happens as before. (A leader held up sends no
heartbeats at all: its followers rightly elect another, which only a shorter hold prevents.)
"""

from __future__ import annotations

import time
from typing import Any

from pysyncobj import SyncObj

# A tick this long after the previous one started was held up (its period is 0.02 s plus its work).
HELD_UP = 0.25


class ReadFirstSyncObj(SyncObj):  # type: ignore[misc]  # pysyncobj has no type hints
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._previous_tick = time.monotonic()
        self.held_up_reads = 0  # ticks that read their sockets first (tests, diagnostics)
        super().__init__(*args, **kwargs)

    def _onTick(self, timeToWait: float = 0.0) -> None:  # pysyncobj names it
        now = time.monotonic()
        gap = now - self._previous_tick
        self._previous_tick = now
        transport = getattr(self, "_SyncObj__transport", None)  # pysyncobj keeps it private
        if gap > HELD_UP and transport is not None and transport.ready:
            self.held_up_reads += 1
            self._poller.poll(0)  # deliver what came meanwhile: heartbeats reset the election deadline
        super()._onTick(timeToWait)
