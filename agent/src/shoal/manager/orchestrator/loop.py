"""The orchestrator's loop: wake on store events or timers, reconcile, commit one batch."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from shoal import metrics
from shoal.aio import BackgroundLoop, cpu_timed
from shoal.errors import NotFound, StoreError, WatchLost
from shoal.manager.orchestrator.pipeline import allocate, changes, place, split
from shoal.manager.orchestrator.plan import Plan
from shoal.manager.orchestrator.quiet import Quiet
from shoal.manager.orchestrator.reconcile import reconcile
from shoal.manager.orchestrator.update import Watch
from shoal.manager.scheduler.loads import NodeLoads
from shoal.model.ids import now_rfc3339
from shoal.store.changes import Change
from shoal.store.protocol import Store

log = logging.getLogger("shoal.orchestrator")

# Passes follow store events; restart, update and monitor delays wake the loop themselves (plan.wake_at_ns,
# SwarmKit's timers). Without either, a pass still runs this often: a safety net for a clock step. An idle pass
# reads every table (0.05 s of CPU at 9,000 tasks, 0.16 s at 30,000), so once a second was a tenth of a busy
# leader's CPU.
IDLE_PERIOD = 10.0
RETRY_PERIOD = 1.0  # after a pass that failed: the write it lost may bring no event (no quorum, a bug)
DEBOUNCE = 0.005  # gather a burst of events into one pass
MAX_DEBOUNCE = 2.0


# Entries of one pass in Raft at once. One after the other, each waited for its commit (about 1 s on
# a busy leader at 1,000 nodes: journal syncs, status reports from every node in the same log), and
# 30,000 new tasks took 60 commits in a row: their creation, not their start, was most of the time
# to RUNNING (docs/scale.md). In flight together, one journal sync and one append to the followers
# carry several.
ENTRIES_IN_FLIGHT = 8


async def commit_entries(
    store: Store, entries: list[list[Change]], epoch: int, in_flight: int = ENTRIES_IN_FLIGHT
) -> None:
    """Commit `entries` in order, up to `in_flight` of them proposed at once; raises the first
    failure once those proposed have finished (each entry is all-or-nothing, a pass is not: the
    next pass re-reads the store and decides again what a failed entry left out), and proposes no
    more after it."""
    pending: list[asyncio.Task[int]] = []
    failure: BaseException | None = None
    try:
        for entry in entries:
            while len(pending) >= in_flight and failure is None:
                await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                failure = _first_failure(pending)
                pending = [p for p in pending if not p.done()]
            if failure is not None:
                break
            pending.append(asyncio.ensure_future(store.acommit(entry, timeout=5.0, epoch=epoch)))
        if pending:
            await asyncio.wait(pending)
        failure = failure or _first_failure(pending)
    finally:
        for p in pending:  # cancelled (the orchestrator stopped): no write of this pass is waited for
            p.cancel()
    if failure is not None:
        raise failure


def debounce(last_cost: float, since_pass: float) -> float:
    """Seconds to gather store events before the next pass: the last pass's CPU (so that passes take
    at most half of the leader) less the time since that pass ended, at least DEBOUNCE. An event
    long after the last pass (the status report a rolling update's batch waits for) is acted on at
    once; one right after it (the pass's own commit) waits the whole cost, as before: the whole cost
    after every event made each batch of a rolling update at 1,000 nodes wait 0.15-0.2 s more."""
    return max(DEBOUNCE, min(last_cost, MAX_DEBOUNCE) - since_pass)


def _first_failure(tasks: list[asyncio.Task[int]]) -> BaseException | None:
    """The first failure among the finished `tasks`; every one's is read (none is left unretrieved)."""
    failures = [t.exception() for t in tasks if t.done() and not t.cancelled()]
    return next((f for f in failures if f is not None), None)


class Orchestrator:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.epoch = 0
        self.last_batch: dict[str, int] = {}
        self.watch = Watch()  # the updater's per-task Monitor windows (update.py)
        self.quiet = Quiet()  # services a pass may skip (quiet.py)
        self.loads = NodeLoads()  # the scheduler's node loads, caught up each pass (scheduler/loads.py)
        self._loop = BackgroundLoop("orchestrator", self._run)
        self.passes = 0
        # CPU seconds the last pass's decision took (its thread's own): the wall time of a decision in a
        # thread that shares the GIL with a busy leader's loop was 3-5 times its CPU, and the debounce
        # that long made a rolling update of 10,000 tasks wait ~2.6 s between batches (docs/scale.md)
        self.last_cost = 0.0

    def start(self) -> None:
        self.epoch = self.store.epoch
        self.watch = Watch(since_ns=time.time_ns())
        self.quiet = Quiet()
        self.loads = NodeLoads()
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    def history_limit(self) -> int:
        for cluster in self.store.list_shared("cluster"):
            return int(cluster["Spec"].get("Orchestration", {}).get("TaskHistoryRetentionLimit", 5))
        return 5

    async def run_once(self) -> int:
        """One pass; returns how many object changes it committed."""
        with metrics.timed(metrics.ORCHESTRATOR_PASS_SECONDS):
            return await self._pass()

    async def _pass(self) -> int:
        # The stored objects themselves: reconcile, allocate and place build new objects for what
        # they change and never modify their inputs (tests/unit/test_orchestrator.py checks it);
        # a copy of every table on each pass was most of a pass's cost at a few hundred tasks.
        services = self.store.list_shared("service")
        tasks = self.store.list_shared("task")
        nodes = self.store.list_shared("node")
        networks = self.store.list_shared("network")
        # The decision is pure and O(tasks) (about 1 s at 30,000 tasks): in a worker thread, the
        # leader's loop keeps answering heartbeats and assignment polls while it runs.
        plan, self.last_cost = await asyncio.to_thread(
            cpu_timed, self._decide, services, tasks, nodes, networks, self.history_limit()
        )
        self._wake_at = plan.wake_at_ns
        if not plan.changed():
            return 0
        batch = changes(plan, {t["ID"]: t for t in tasks}, {s["ID"]: s for s in services})
        await commit_entries(self.store, split(batch), self.epoch)
        self.passes += 1
        return len(batch)

    def _decide(
        self,
        services: list[dict[str, Any]],
        tasks: list[dict[str, Any]],
        nodes: list[dict[str, Any]],
        networks: list[dict[str, Any]],
        history_limit: int,
    ) -> Plan:
        plan = reconcile(
            services,
            tasks,
            nodes,
            now_rfc3339(),
            time.time_ns(),
            history_limit,
            self.last_batch,
            self.watch,
            self.quiet,
        )
        self.watch.keep_only({t["ID"] for t in tasks})
        allocate(plan, services, networks, tasks, nodes)
        with metrics.timed(metrics.SCHEDULER_PASS_SECONDS):
            place(plan, tasks, nodes, self.loads)
        return plan

    async def _run(self) -> None:
        sub = self.store.subscribe(asyncio.get_running_loop())
        self._wake_at: int | None = None
        self._pass_ended = time.monotonic()
        try:
            while True:
                timeout = IDLE_PERIOD
                try:
                    await self.run_once()
                    self._pass_ended = time.monotonic()
                except (StoreError, NotFound) as exc:  # a concurrent write: the next pass sees it
                    # said: what a lost entry held waits for the next pass, which shows in the bench
                    log.info("orchestrator pass not wholly committed, the next one decides again: %s", exc)
                    await asyncio.sleep(0.05)
                    timeout = RETRY_PERIOD
                except Exception:
                    log.exception("orchestrator pass failed")
                    await asyncio.sleep(0.5)
                    timeout = RETRY_PERIOD
                if self._wake_at is not None:
                    timeout = max(0.0, min(timeout, (self._wake_at - time.time_ns()) / 1e9))
                if await sub.wait(timeout):  # what changed is read in the next pass, not from events
                    await asyncio.sleep(debounce(self.last_cost, time.monotonic() - self._pass_ended))
                    try:
                        sub.discard()
                    except WatchLost:  # fell behind during a burst: watch again (the pass re-reads)
                        sub.close()
                        sub = self.store.subscribe(asyncio.get_running_loop())
        finally:
            sub.close()
