"""The node's event stream: cluster events from this manager's replica (while it is one) and
container events of this node's tasks, kept in a short history for `since` and fanned out to
subscribers. Everything runs on the agent's event loop.

A subscriber has a bounded queue: one that falls behind is cut off (the API ends its stream with
an error event) instead of holding memory or slowing the node, as a slow `docker events` reader
does not slow dockerd.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from shoal import metrics
from shoal.errors import WatchLost
from shoal.manager.events import EVENT_KINDS, ClusterEvents
from shoal.model import events
from shoal.worker.events import container_event

log = logging.getLogger("shoal.events")

HISTORY = 1024  # events kept for `since` (dockerd keeps 256)
QUEUE = 512  # events a subscriber may have pending before it is cut off


class Subscriber:
    def __init__(self, hub: EventHub, filters: dict[str, list[str]], limit: int) -> None:
        self._hub = hub
        self.filters = filters
        self.limit = limit
        self.pending: deque[dict[str, Any]] = deque()
        self.overflowed = False
        self.closed = False
        self._ready = asyncio.Event()

    def _offer(self, msg: dict[str, Any]) -> None:
        if self.closed or not events.matches(msg, self.filters):
            return
        if len(self.pending) >= self.limit:
            self.overflowed = True
            self.pending.clear()
            self._hub.unsubscribe(self)
        else:
            self.pending.append(msg)
        self._ready.set()

    async def next(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next message; None on timeout, once closed, or once overflowed (check `overflowed`)."""
        while not self.pending:
            if self.overflowed or self.closed:
                return None
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return None
        return self.pending.popleft()

    def close(self) -> None:
        self.closed = True
        self._hub.unsubscribe(self)
        self._ready.set()


class EventHub:
    def __init__(self, history: int = HISTORY, queue: int = QUEUE) -> None:
        self.history: deque[dict[str, Any]] = deque(maxlen=history)
        self.queue = queue
        self.subscribers: list[Subscriber] = []

    def publish(self, msg: dict[str, Any] | None) -> None:
        if msg is None:
            return
        self.history.append(msg)
        for sub in list(self.subscribers):
            sub._offer(msg)

    def subscribe(self, filters: dict[str, list[str]], since_ns: int | None) -> tuple[list[dict[str, Any]], Subscriber]:
        """Past events at or after `since` (matching), then a live subscription: no gap, no repeat."""
        past = (
            []
            if since_ns is None
            else [m for m in self.history if m["timeNano"] >= since_ns and events.matches(m, filters)]
        )
        sub = Subscriber(self, filters, self.queue)
        self.subscribers.append(sub)
        return past, sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with contextlib.suppress(ValueError):
            self.subscribers.remove(sub)


def task_listener(hub: EventHub, executor: Any) -> Callable[[dict[str, Any], str, dict[str, Any]], None]:
    """The executor's state changes as container events."""

    def on_state(task: dict[str, Any], state: str, fields: dict[str, Any]) -> None:
        metrics.task_state(state)
        if "ServiceID" not in task:
            return
        service = executor.service_names.get(task["ServiceID"], task["ServiceID"][:12])
        hub.publish(container_event(task, state, executor.task_name(task, full=True), service, fields.get("ExitCode")))

    return on_state


async def follow_cluster(hub: EventHub, manager_of: Callable[[], Any], poll: float = 0.5) -> None:
    """While this node is a manager, its replica's watch events become cluster events (every
    manager logs them, as each dockerd of a swarm does)."""
    while True:
        manager = manager_of()
        if manager is None:
            await asyncio.sleep(poll)
            continue
        store = manager.store
        sub = store.subscribe(loop=asyncio.get_running_loop(), kinds=frozenset(EVENT_KINDS))
        try:
            translator = ClusterEvents((kind, obj) for kind in EVENT_KINDS for obj in store.list(kind))
            while manager_of() is manager:
                try:
                    ev = await asyncio.wait_for(sub.aget(), poll)
                except TimeoutError:
                    continue
                if ev is None:  # the store closed: wait for the agent to drop or replace this manager
                    await asyncio.sleep(poll)
                    break
                hub.publish(translator.translate(ev.kind, ev.action, ev.obj))
        except WatchLost:
            log.warning("cluster event watch fell behind: resubscribing")
        except Exception:
            log.exception("cluster event feed failed; restarting it")
            await asyncio.sleep(poll)
        finally:
            sub.close()
