"""The orchestrator's loop waits for store events, for the earliest delay a pass asked to be woken for, and
otherwise for IDLE_PERIOD (a safety net); after a failed pass it comes back within RETRY_PERIOD."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from shoal.errors import StoreError
from shoal.manager.orchestrator import loop
from shoal.manager.orchestrator.plan import Plan


class Subscription:
    """Records each wait's timeout; no event ever comes."""

    def __init__(self, waits: list[float], enough: asyncio.Event, count: int) -> None:
        self.waits, self.enough, self.count = waits, enough, count

    async def wait(self, timeout: float) -> bool:
        self.waits.append(timeout)
        if len(self.waits) >= self.count:
            self.enough.set()
            await asyncio.sleep(3600)
        await asyncio.sleep(0)
        return False

    def discard(self) -> None:
        pass

    def close(self) -> None:
        pass


class EmptyStore:
    epoch = 1

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.commits: list[Any] = []
        self.sub: Subscription | None = None

    def list_shared(self, kind: str) -> list[dict[str, Any]]:
        if self.failures:
            self.failures -= 1
            raise StoreError("no quorum")
        return []

    async def acommit(self, entry: Any, timeout: float, epoch: int) -> None:
        self.commits.append(entry)

    def subscribe(self, event_loop: asyncio.AbstractEventLoop) -> Subscription:
        assert self.sub is not None
        return self.sub


def waits_of(store: EmptyStore, count: int, decide: Any = None) -> list[float]:
    """The timeouts of the loop's first ``count`` waits."""

    async def main() -> list[float]:
        waits: list[float] = []
        enough = asyncio.Event()
        store.sub = Subscription(waits, enough, count)
        orchestrator = loop.Orchestrator(store)  # type: ignore[arg-type]
        if decide is not None:
            orchestrator._decide = decide  # type: ignore[method-assign]
        orchestrator.start()
        await asyncio.wait_for(enough.wait(), 10)
        await orchestrator.stop()
        return waits

    return asyncio.run(main())


def test_an_idle_loop_waits_for_the_idle_period() -> None:
    assert waits_of(EmptyStore(), 3) == [loop.IDLE_PERIOD] * 3


def test_a_failed_pass_is_retried_within_the_retry_period() -> None:
    assert waits_of(EmptyStore(failures=2), 4) == [
        loop.RETRY_PERIOD,
        loop.RETRY_PERIOD,
        loop.IDLE_PERIOD,
        loop.IDLE_PERIOD,
    ]


def test_a_delay_a_pass_asked_for_wakes_the_loop_before_the_idle_period() -> None:
    def decide(*args: Any) -> Plan:
        plan = Plan(now="")
        plan.wake(time.time_ns() + 2_000_000_000)  # a restart delay of 2 s
        return plan

    (first,) = waits_of(EmptyStore(), 1, decide)
    assert 1.5 < first <= 2.0


def test_a_delay_already_due_means_no_wait() -> None:
    def decide(*args: Any) -> Plan:
        plan = Plan(now="")
        plan.wake(time.time_ns() - 1)
        return plan

    assert waits_of(EmptyStore(), 2, decide) == [0.0, 0.0]


def test_the_debounce_follows_the_decisions_cpu_not_its_wall_time() -> None:
    """A decision that waits (its thread held off the GIL by a busy leader's loop) is not charged for
    the wait: the next pass comes after its CPU, not its wall time."""

    def waiting(*args: Any) -> Plan:
        time.sleep(0.3)  # off the CPU, as a thread waiting for the GIL
        return Plan(now="")

    def computing(*args: Any) -> Plan:
        until = time.thread_time() + 0.2
        while time.thread_time() < until:
            pass
        return Plan(now="")

    async def cost_of(decide: Any) -> float:
        orchestrator = loop.Orchestrator(EmptyStore())  # type: ignore[arg-type]
        orchestrator._decide = decide  # type: ignore[method-assign]
        await orchestrator.run_once()
        return orchestrator.last_cost

    assert asyncio.run(cost_of(waiting)) < 0.05
    assert 0.15 < asyncio.run(cost_of(computing)) < 1.0


def test_the_debounce_is_the_last_passs_cpu_less_the_time_since_it_ended() -> None:
    assert loop.debounce(0.2, 0.0) == 0.2  # the pass's own commit, right after it: the whole cost
    assert abs(loop.debounce(0.2, 0.15) - 0.05) < 1e-9
    assert loop.debounce(0.2, 1.0) == loop.DEBOUNCE  # a report long after it: at once
    assert loop.debounce(60.0, 0.0) == loop.MAX_DEBOUNCE
    assert loop.debounce(0.0, 0.0) == loop.DEBOUNCE
