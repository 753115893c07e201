"""A publish wakes each event loop once, however many of its subscriptions wait: one wake per
subscriber (a write to the loop's self-pipe each, the GIL given up and taken back each time) held
the Raft tick thread for seconds with 300 nodes' long polls waiting on a busy leader, and the
followers, hearing nothing, called elections (docs/scale.md)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from shoal.store.changes import Event
from shoal.store.watch import Hub


def test_one_publish_wakes_the_loop_once_and_every_waiting_subscription() -> None:
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        hub = Hub()
        subs = [hub.add(0, loop, 100) for _ in range(50)]
        other = hub.add(0, None, 100)  # a thread's subscription: no loop to wake
        wakes: list[Any] = []
        threadsafe = loop.call_soon_threadsafe

        def counting(callback: Any, *args: Any) -> Any:
            wakes.append(callback)
            return threadsafe(callback, *args)

        async def all_wait() -> list[bool]:
            return await asyncio.gather(*(s.wait(10.0) for s in subs))

        waiting = asyncio.run_coroutine_threadsafe(all_wait(), loop)
        threading.Event().wait(0.2)  # every wait() blocks on its asyncio event by now
        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        hub.publish([Event("task", "create", {"ID": "t1"}, 1), Event("task", "create", {"ID": "t2"}, 2)])
        assert waiting.result(timeout=5.0) == [True] * 50  # woken by the publish, not by their timeout
        assert len(wakes) == 1
        assert other.get_nowait() is not None and other.get_nowait() is not None  # queued for it as well
        assert [s.get_nowait().obj["ID"] for s in subs[:2]] == ["t1", "t1"]  # copies, in order
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(5.0)
        loop.close()


def test_a_subscription_of_some_kinds_gets_only_those_and_is_not_woken_by_others() -> None:
    """The cluster event feed watches nodes, services, networks, secrets and configs: a task's
    every status report was queued for it, woke it, and was deep-copied to be dropped."""
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        hub = Hub()
        nodes_only = hub.add(0, loop, 100, kinds=frozenset({"node"}))
        wakes: list[Any] = []
        threadsafe = loop.call_soon_threadsafe

        def counting(callback: Any, *args: Any) -> Any:
            wakes.append(callback)
            return threadsafe(callback, *args)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        hub.publish([Event("task", "update", {"ID": "t1"}, 1)])
        assert wakes == [] and nodes_only.pending == 0
        hub.publish([Event("task", "update", {"ID": "t1"}, 2), Event("node", "update", {"ID": "n1"}, 2)])
        assert len(wakes) == 1 and nodes_only.pending == 1
        ev = nodes_only.get_nowait()
        assert ev is not None and (ev.kind, ev.obj["ID"]) == ("node", "n1")
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(5.0)
        loop.close()
