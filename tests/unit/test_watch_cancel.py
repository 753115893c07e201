"""A store watch's `wait` cancelled as its event comes must end cancelled: asyncio.wait_for on 3.11
swallows such a cancellation (bpo-42130), and the leader loop waiting in it (the orchestrator)
then ran on while its stop waited for it forever."""

from __future__ import annotations

import asyncio

from shoal.store.watch import Hub


def test_a_watch_cancelled_as_its_event_comes_is_cancelled() -> None:
    async def main() -> str:
        sub = Hub().add(0, asyncio.get_running_loop(), 100)
        waiting = asyncio.create_task(sub.wait(10.0))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert sub._aevent is not None
        sub._aevent.set()  # the event arrives ...
        waiting.cancel()  # ... in the same turn as the stop
        try:
            return f"returned {await waiting}"
        except asyncio.CancelledError:
            return "cancelled"

    assert asyncio.run(main()) == "cancelled"


def test_a_watch_wait_still_answers_and_times_out() -> None:
    async def main() -> tuple[bool, bool]:
        sub = Hub().add(0, asyncio.get_running_loop(), 100)
        quiet = await sub.wait(0.05)
        assert sub._aevent is not None
        asyncio.get_running_loop().call_later(0.02, sub.close)
        woken = await sub.wait(10.0)
        return quiet, woken

    assert asyncio.run(main()) == (False, True)
