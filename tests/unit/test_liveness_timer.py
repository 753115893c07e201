"""When the leader's liveness rounds run: just after the first live node's grace ends (SwarmKit's
per-node timers), not on a fixed half-period tick that let a lost node stay Ready up to half a
period past its grace."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from shoal.manager.dispatcher import MIN_ROUND, Dispatcher, first_expiry, next_round_in
from shoal.store.changes import Change
from unit.test_cluster_settings import ClusterStore, _cluster, _node


def test_the_next_round_is_just_after_the_first_live_nodes_grace_ends() -> None:
    now = 100.0
    told = {"w1": 4.0, "w2": 4.0}
    seen = {"w1": now - 11.0, "w2": now - 1.0}  # graces (3 beats of 4 s) end in 1 s and 11 s
    assert first_expiry(seen, told, 4.0, now) == 1.0
    assert 1.0 < next_round_in(seen, told, 4.0, now) < 1.0 + MIN_ROUND
    # a node already past its grace (Down) sets no timer: the loop would spin on it
    seen["w1"] = now - 13.0
    assert first_expiry(seen, told, 4.0, now) == 11.0
    assert next_round_in(seen, told, 4.0, now) == 2.0  # at most half a period apart
    # no live node at all: every half period; never more often than MIN_ROUND
    assert next_round_in({}, {}, 4.0, now) == 2.0
    assert next_round_in({"w1": now - 11.99}, told, 4.0, now) == MIN_ROUND
    # a node not heard from in this term has twice the grace
    assert first_expiry({"w3": now - 5.0}, {}, 4.0, now) == 19.0


class RecordingStore(ClusterStore):
    """The dispatcher's reads, and the node changes it commits, with when it committed them."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.commits: list[tuple[float, list[Change]]] = []

    async def acommit(self, changes: list[Change], epoch: int | None = None, timeout: float = 5.0) -> int:
        self.commits.append((time.monotonic(), changes))
        for c in changes:
            self.nodes = [c.obj if n["ID"] == c.obj_id else n for n in self.nodes]
        self.applied_index += 1
        return self.applied_index


def test_a_node_that_stops_beating_is_down_right_after_its_grace() -> None:
    async def run() -> tuple[float, float, list[tuple[float, list[Change]]]]:
        store = RecordingStore(_cluster(2_000_000_000), [_node("m1"), _node("w1"), _node("w2")], [])
        dispatcher = Dispatcher(store, "m1", 2.0, cluster_id="c1")  # type: ignore[arg-type]
        dispatcher.start()
        started = time.monotonic()
        # w1 last beat 5.5 s ago (told 2 s: 6 s of grace, ending in 0.5 s); w2 keeps beating
        dispatcher.last_seen["w1"] = started - 5.5
        dispatcher.told["w1"] = 2.0
        dispatcher.heartbeat("w2", None)
        try:
            deadline = started + 3.0
            while not store.commits and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
                dispatcher.heartbeat("w2", None)
        finally:
            await dispatcher.stop()
        return started, started + 0.5, store.commits

    started, grace_ends, commits = asyncio.run(run())
    assert commits, "w1 never marked Down"
    at, changes = commits[0]
    assert [(c.obj_id, c.obj["Status"]["State"]) for c in changes] == [("w1", "down")]
    # after its grace, and well before the half-period tick (1 s after the start) would have seen it
    assert grace_ends <= at < grace_ends + 0.3, at - started
