"""The hub counts what its watchers have not taken yet: queued events hold their object versions
alive, so a watcher that falls behind shows in `shoal_manager_held` before it shows in RSS."""

from __future__ import annotations

import asyncio

import pytest

from shoal.store.changes import Event
from shoal.store.watch import Hub


def events(n: int, start: int = 1) -> list[Event]:
    return [Event("task", "update", {"ID": f"t{i}"}, i) for i in range(start, start + n)]


def test_pending_counts_what_each_subscription_has_not_taken() -> None:
    hub = Hub()
    fast, _slow = hub.add(0, None, 100), hub.add(0, None, 100)
    hub.publish(events(3))
    assert fast.get_nowait() is not None
    assert hub.pending() == (2, 5, 3)
    fast.discard()
    hub.publish(events(2, start=4))
    assert hub.pending() == (2, 7, 5)


def test_a_dropped_or_closed_subscription_holds_nothing() -> None:
    hub = Hub()
    lagging, closed = hub.add(0, None, 4), hub.add(0, None, 100)
    closed.close()
    hub.publish(events(5))  # more than `lagging` may queue: it is dropped and its queue cleared
    assert hub.pending() == (0, 0, 0)
    assert lagging.closed and lagging.pending == 0


def test_a_notice_keeps_no_events_only_that_something_changed() -> None:
    hub = Hub()

    async def main() -> tuple[bool, bool, bool, tuple[int, int, int]]:
        notice = hub.add_notice(0, asyncio.get_running_loop())
        idle = await notice.wait(0.01)
        hub.publish(events(500))  # a big commit: one flag, no queue of 500
        held = hub.pending()
        changed = await notice.wait(5.0)
        notice.discard()
        after = await notice.wait(0.01)
        notice.close()
        return idle, changed, after, held

    idle, changed, after, held = asyncio.run(main())
    assert (idle, changed, after) == (False, True, False)
    assert held == (1, 1, 1)
    assert hub.pending() == (0, 0, 0)  # closed: removed from the hub


def test_a_notice_cannot_be_read_for_events() -> None:
    notice = Hub().add_notice(0, None)
    with pytest.raises(RuntimeError, match="keeps no events"):
        notice.get_nowait()
