"""A pass's entries go to Raft several at once, in order, and a failure stops what follows."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shoal.errors import StoreError
from shoal.manager.orchestrator.loop import commit_entries


class SlowStore:
    """acommit takes `latency` seconds; records the order entries were proposed in and the most in flight."""

    def __init__(self, latency: float, fail_on: set[int] | None = None) -> None:
        self.latency = latency
        self.fail_on = fail_on or set()
        self.proposed: list[int] = []
        self.committed: list[int] = []
        self.in_flight = 0
        self.most = 0

    async def acommit(self, entry: list[Any], timeout: float | None = None, *, epoch: int | None = None) -> int:
        number = entry[0]
        self.proposed.append(number)
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(self.latency)
            if number in self.fail_on:
                raise StoreError(f"entry {number} lost")
            self.committed.append(number)
            return number
        finally:
            self.in_flight -= 1


def test_entries_are_proposed_in_order_several_at_once() -> None:
    store = SlowStore(0.05)
    entries = [[i] for i in range(20)]

    async def run() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await commit_entries(store, entries, epoch=1, in_flight=4)
        return loop.time() - t0

    took = asyncio.run(run())
    assert store.proposed == list(range(20))
    assert sorted(store.committed) == list(range(20))
    assert store.most == 4
    assert took < 20 * 0.05  # one after the other would take the sum of their latencies


def test_a_failed_entry_is_raised_and_nothing_after_it_is_proposed() -> None:
    store = SlowStore(0.01, fail_on={5})
    with pytest.raises(StoreError, match="entry 5 lost"):
        asyncio.run(commit_entries(store, [[i] for i in range(40)], epoch=1, in_flight=3))
    assert 5 not in store.committed
    assert max(store.proposed) <= 5 + 3  # those already in flight when it failed, no more
    assert store.in_flight == 0


def test_a_cancelled_pass_leaves_no_write_waited_for() -> None:
    store = SlowStore(10.0)

    async def run() -> None:
        task = asyncio.ensure_future(commit_entries(store, [[i] for i in range(6)], epoch=1, in_flight=3))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        assert store.in_flight == 0

    asyncio.run(run())
    assert store.proposed == [0, 1, 2]
