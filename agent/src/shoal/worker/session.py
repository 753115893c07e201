"""A node's session with the managers: heartbeats to the leader, reconnecting on failure.

The answer to each heartbeat tells the node who leads, which managers exist and what role the
cluster wants it to have; the agent reacts to role changes (promote/demote).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from shoal import metrics
from shoal.aio import BackgroundLoop
from shoal.backoff import backoff
from shoal.clusterclient import ClusterClient
from shoal.errors import ShoalError, Unavailable
from shoal.model.validate import MAX_HEARTBEAT_PERIOD, MIN_HEARTBEAT_PERIOD

log = logging.getLogger("shoal.session")

# Each beat comes after a random 75-100 % of the period (SwarmKit jitters its heartbeats too):
# nodes that started together (a rack after a power cut, a thousand simulated nodes) spread their
# beats over the period instead of hitting the leader in one burst each period, and no gap ever
# exceeds the period that the leader's grace (3 periods) counts on.
JITTER = 0.25
# A beat that reached no manager is tried again after RETRY_FIRST, doubling, at most one period
# (SwarmKit's agent restarts a failed session after 100 ms, doubling): waiting a whole period spent a
# third of the leader's grace (3 periods) on one lost beat, and a node whose link then dropped for
# 6 s was Down and its tasks replaced (200 simulated nodes flapping, docs/scale.md). Each wait is
# drawn between half and all of that: a leader killed under 1,000 nodes failed all their beats at one
# instant, and without the spread they came back in step, thousands of calls at each doubling to the
# two survivors that were trying to elect a leader.
RETRY_FIRST = 0.1

# The periods a node accepts from the leader; validate.py refuses a HeartbeatPeriod outside them, so
# that every period the cluster spec can hold is the one every node uses.
MIN_PERIOD = MIN_HEARTBEAT_PERIOD / 1e9
MAX_PERIOD = MAX_HEARTBEAT_PERIOD / 1e9


def next_beat(period: float, rng: random.Random | None = None) -> float:
    return period * (1.0 - JITTER * (rng or random).random())


def after_failure(failures: int, period: float, rng: random.Random | None = None) -> float:
    """Seconds before the next try after `failures` beats in a row reached no manager (at least 1)."""
    return backoff(failures, RETRY_FIRST, period, rng)


class Session:
    def __init__(
        self,
        client: Callable[[], ClusterClient],
        managers: Callable[[], list[str]],
        self_addr: str,
        period: float,
        on_answer: Callable[[dict[str, Any]], Awaitable[None]],
        is_leader: Callable[[], bool] = lambda: False,
    ) -> None:
        self.client = client
        self.managers = managers
        self.self_addr = self_addr
        self.period = period
        metrics.HEARTBEAT_PERIOD.set(period)
        self.on_answer = on_answer
        self.is_leader = is_leader
        self.leader: str | None = None
        self.connected = False
        self.last_error: str | None = None
        self.unreachable = 0  # beats that reached no manager (timeouts, refused connections): a figure
        self.timeouts = 0  # of which: no answer within the beat's timeout (a side too busy)
        self.slowest = 0.0  # seconds: the longest a beat that was answered took
        # manager address -> the beat sent to it and not answered yet: a beat that timed out is
        # waited for again by the next try rather than sent again (a new request would need a new
        # connection, i.e. a TLS handshake, while the first still holds its own)
        self._beats: dict[str, asyncio.Task[Any]] = {}
        self._loop = BackgroundLoop("session", self._run)

    def candidates(self) -> list[str]:
        known = [a for a in self.managers() if a != self.self_addr]
        if self.leader and self.leader != self.self_addr:
            known = [self.leader] + [a for a in known if a != self.leader]
        return known

    async def beat_once(self) -> dict[str, Any] | None:
        tried: set[str] = set()
        queue = self.candidates()
        while queue:
            addr = queue.pop(0)
            if addr in tried or addr == self.self_addr:
                continue
            tried.add(addr)
            sent = time.monotonic()
            timeout = max(1.0, min(self.period * 2, 60.0))
            try:
                answer = await self._beat(addr, timeout)
            except Unavailable as exc:
                self.last_error = exc.message
                self.unreachable += 1
                if isinstance(exc.__cause__, TimeoutError):
                    self.timeouts += 1
                continue
            except ShoalError as exc:
                self.last_error = exc.message
                log.warning("heartbeat refused by %s: %s", addr, exc.message)
                continue
            self.slowest = max(self.slowest, time.monotonic() - sent)
            redirect = answer.get("Redirect")
            if redirect:  # a follower answered: go to the leader it names
                self.leader = redirect
                queue.insert(0, redirect)
                continue
            self.leader = answer.get("Leader") or addr
            period = answer.get("Period")
            if isinstance(period, (int, float)) and MIN_PERIOD <= period <= MAX_PERIOD:
                self.period = float(period)  # the leader's grace counts the period it named, not ours
                metrics.HEARTBEAT_PERIOD.set(self.period)
            self.connected = True
            self.last_error = None
            return answer
        self.connected = False
        return None

    async def _beat(self, addr: str, timeout: float) -> Any:
        client = self.client()
        kept = getattr(client, "session", None)
        if kept is None or kept.closed:  # no kept connections: one call each
            return await client.call(addr, "POST", "/shoal/heartbeat", {"Addr": self.self_addr}, timeout=timeout)
        pending = self._beats.get(addr)
        if pending is None:
            pending = client.begin(addr, "POST", "/shoal/heartbeat", {"Addr": self.self_addr}, timeout=timeout)
            self._beats[addr] = pending
            pending.add_done_callback(
                lambda done: self._beats.pop(addr, None) if self._beats.get(addr) is done else None
            )
        return await client.wait(addr, pending, timeout)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        for pending in list(self._beats.values()):
            pending.cancel()
        self._beats.clear()

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                # the leader needs no session: it is the one that keeps them
                leader = self.is_leader()
                answer = None if leader else await self.beat_once()
                failures = 0 if leader or answer is not None else failures + 1
                await self.on_answer(answer or {})
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("session round failed")
            await asyncio.sleep(after_failure(failures, self.period) if failures else next_beat(self.period))
