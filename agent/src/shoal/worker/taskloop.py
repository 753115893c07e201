"""The worker's two task streams with the managers: assignments in (long poll), status out."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from shoal.aio import BackgroundLoop
from shoal.backoff import backoff
from shoal.clusterclient import ClusterClient
from shoal.errors import ShoalError
from shoal.model.netdelta import Held
from shoal.model.taskdelta import HeldTasks, tasks_version
from shoal.worker.executor import Executor
from shoal.worker.hooks import NodeNetwork

log = logging.getLogger("shoal.tasks")

LONG_POLL = 10.0
EXIT_POLL = 1.0  # only for tasks without a pidfd; the others are watched by the event loop
# Reports of tasks starting together are sent as one batch (one Raft commit on the leader) rather
# than one call each as their threads finish: 100 tasks took ~70 calls without this, ~47 when the
# leader was slower to answer. It delays a single report by as much.
STATUS_COALESCE = 0.02


STALE_PAUSE = 0.5
# A poll or a status report that reached no manager is tried again after RETRY_FIRST, doubling up to
# RETRY_MAX, each wait drawn between half and all of that (jitter): a fixed 0.5 s had every node of
# a fleet whose managers were overloaded come back together twice a second, each with a new TLS
# handshake, and the managers spent their time on handshakes the nodes then gave up on (docs/scale.md).
RETRY_FIRST = 0.5
RETRY_MAX = 8.0


def retry_after(failures: int, rng: random.Random | None = None) -> float:
    """Seconds before trying again after `failures` (at least 1) calls in a row reached no manager."""
    return backoff(failures, RETRY_FIRST, RETRY_MAX, rng)


# A status report is not urgent, and one sent again after a timeout is a duplicate the manager
# drops (states only move forward): it gets as long as the long poll rather than the client's 5 s,
# within which a busy node (or manager) often did not read the answer, and every retry needed a new
# connection while the late one still held its own (clusterclient.LATE_GRACE).
STATUS_TIMEOUT = LONG_POLL + 5


def newer(answer: dict[str, Any], epoch: int, index: int) -> tuple[int, int] | None:
    """(epoch, index) of an assignments answer if it is as new as the one acted on last, else None.
    Managers before "Index" existed send none: their answers are judged by the epoch alone."""
    their_epoch = int(answer.get("Epoch", 0))
    their_index = int(answer.get("Index", 0) or 0)
    if their_epoch < epoch or (their_epoch == epoch and "Index" in answer and their_index < index):
        return None
    return their_epoch, max(their_index, index) if their_epoch == epoch else their_index


# TaskLoop's counters of assignment polls that brought nothing acted on (see __init__)
POLL_COUNTERS = ("polls_failed", "answers_stale", "answers_unfit", "polls_late")


class TaskLoop:
    def __init__(
        self,
        executor: Executor,
        client: Callable[[], ClusterClient],
        managers: Callable[[], list[str]],
        leader: Callable[[], str | None],
        network: NodeNetwork | None = None,
        exit_poll: float = EXIT_POLL,
        held: Held | None = None,
        on_delivered: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.executor = executor
        self.on_delivered = on_delivered  # status reports a manager took (committed): simulated nodes time them
        self.client = client
        self.managers = managers
        self.leader = leader
        self.signature: str | None = None
        self.network = network
        self.epoch = 0
        self.held = held or Held()  # its networks' state as of the versions it holds (increments apply to it)
        self.held_tasks = HeldTasks()  # its task list as of the version it holds (increments apply to it)
        self.index = 0  # the store index of the answer last applied (Raft log: the same on every manager)
        self.exit_poll = exit_poll  # simulated nodes poll less: a thousand of them share one process
        # assignment polls that brought nothing acted on (simulated fleets sum POLL_COUNTERS: bench/scale.py)
        self.polls_failed = 0  # no answer: unreachable, refused, or not within LONG_POLL + 5 s
        self.answers_stale = 0  # from an older store than the last one acted on
        self.answers_unfit = 0  # increments that did not follow what the node holds
        self.polls_late = 0  # timeouts of a poll to the leader, waited for again rather than re-sent
        self.net_changed_at = 0.0  # time.time() of the last answer that changed a network it holds
        self._loops = [
            BackgroundLoop("assignments", self._assignments),
            BackgroundLoop("task-status", self._status),
            BackgroundLoop("task-exits", self._exits),
        ]

    def start(self) -> None:
        for loop in self._loops:
            loop.start()

    async def stop(self) -> None:
        for loop in self._loops:
            await loop.stop()

    def _candidates(self) -> list[str]:
        leader = self.leader()
        managers = self.managers()
        return ([leader] if leader else []) + [m for m in managers if m != leader]

    async def _assignments(self) -> None:
        failures = 0  # polls in a row that reached no manager
        while True:
            try:
                _, answer = await self.client().poll_any(
                    self._candidates(),
                    "POST",
                    "/shoal/assignments",
                    self._poll_body(),
                    timeout=LONG_POLL + 5,
                    keep_waiting=self._keep_waiting,
                )
            except ShoalError as exc:
                self.polls_failed += 1
                failures += 1
                log.debug("no assignments: %s", exc.message)
                await asyncio.sleep(retry_after(failures))
                continue
            failures = 0
            seen = newer(answer, self.epoch, self.index)
            if seen is None:
                # from a deposed leader's replica, or a follower's behind the answer this node acted on
                # last: an older store never gives orders (its task set lacks what came since, and the
                # node would stop those tasks). Not at once again: it answers at once again.
                self.answers_stale += 1
                await asyncio.sleep(STALE_PAUSE)
                continue
            tasks = self._tasks(answer)
            if tasks is None:
                # a change from another list than the one held: nothing acted on (a partial list
                # would stop the tasks it lacks); asked again at once for the whole list
                self.answers_unfit += 1
                self.signature = None
                continue
            self.epoch, self.index = seen
            self.signature = answer.get("Signature")
            payloads = getattr(self.executor.driver, "payloads", None)  # runtime/secretfiles.py
            if payloads is not None:
                payloads.replace(answer.get("Payloads"))
            if self.network is not None:  # before any task of this answer is wired to an overlay
                self.network.set_data_path_port(answer.get("DataPathPort"))
            self.executor.apply(tasks, answer.get("Services") or {})
            if self.network is not None:
                await self.network.adopt(self.executor.assigned, self.executor.state)
                net = self._net_state(answer)
                if net is not None:
                    net["NetworkKeys"] = answer.get("NetworkKeys") or []  # encrypted overlays' key ring
                    await self.network.apply(net)
            # not kept through the next long poll: what matters was applied, and an answer with a big
            # overlay's every peer and name is megabytes of objects (simulated nodes: one per node)
            del answer

    def _keep_waiting(self, addr: str) -> bool:
        """A poll late past its timeout is waited for while its manager is still the leader this
        node knows (its heartbeats tell it): the answer comes once the leader catches up."""
        if self.leader() != addr:
            return False
        self.polls_late += 1
        return True

    def _tasks(self, answer: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The node's whole task list from this answer (changes applied to the list it holds), or
        None if the changes do not follow the list it holds."""
        parts = answer.get("TaskParts")
        if parts is None:  # a manager that sends whole lists
            return answer.get("Tasks") or []
        return self.held_tasks.apply(parts, tasks_version(answer.get("Signature")))

    def _poll_body(self) -> dict[str, Any]:
        # the task list as changes since the one it holds (model/taskdelta.py), not whole each time
        body: dict[str, Any] = {"Since": self.signature, "Wait": LONG_POLL, "TaskIncrements": True}
        if self.network is not None:  # increments of the networks' state, not whole sets
            body["NetHave"] = self.held.have()
        return body

    def _net_state(self, answer: dict[str, Any]) -> dict[str, Any] | None:
        """The node's whole network state from this answer (increments applied to what it holds),
        or None if an increment did not follow what it holds: asked again at once, whole."""
        parts = answer.get("NetParts")
        if parts is None:  # a manager that sends whole sets
            return answer.get("Net") or {}
        # a node with no network attached (yet; simulated nodes never) programs nothing: the
        # changes are kept, the whole state is not rebuilt (O(endpoints) per answer per node)
        net = self.held.apply(parts, assemble_state=getattr(self.network, "attached", True))
        if parts.get("Changes"):
            self.net_changed_at = time.time()
        if net is None:
            self.answers_unfit += 1
            self.signature = None
        return net

    async def _status(self) -> None:
        failures = 0  # reports in a row that reached no manager
        while True:
            await self.executor.wakeup.wait()
            await asyncio.sleep(STATUS_COALESCE)
            self.executor.wakeup.clear()
            reports = self.executor.take_reports()
            if not reports:
                continue
            try:
                await self.client().call_any(
                    self._candidates(), "POST", "/shoal/task-status", {"Updates": reports}, timeout=STATUS_TIMEOUT
                )
                failures = 0
                if self.on_delivered is not None:
                    self.on_delivered(reports)
            except ShoalError as exc:
                failures += 1
                log.debug("status not delivered yet (%s): retrying", exc.message)
                self.executor.requeue(reports)
                await asyncio.sleep(retry_after(failures))
                self.executor.wakeup.set()

    async def _exits(self) -> None:
        try:
            while True:
                self.executor.poll_unwatched()
                await asyncio.sleep(self.exit_poll)
        finally:
            self.executor.close()
