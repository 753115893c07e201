"""One write driven to a definite answer across leader changes, shared by commit() and acommit().

pysyncobj answers a proposal with a result, or with LEADER_CHANGED / NOT_LEADER / DISCARDED /
MISSING_LEADER / UNKNOWN_OUTCOME, all of which mean "maybe applied, maybe not". The op then
proposes the same command again: it carries the same request id, so the state machine applies it
at most once and answers a repeat with the first outcome.

No quorum is answered fast: before proposing, the op waits at most `quorum_wait` for this node to
see a leader backed by a majority; while a proposal is pending, losing that view for `quorum_wait`
also ends the wait (outcome unknown). The driver (sync or async) calls `poll()` and sleeps for what
it returns; `wake` is called from the tick thread when pysyncobj answers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from pysyncobj import FAIL_REASON

from shoal.store.errors import BY_NAME, Denied, NoQuorum, StoreError, Timeout

# Answers after which a proposal may be retried with the same request id.
RETRYABLE = {
    FAIL_REASON.MISSING_LEADER,
    FAIL_REASON.NOT_LEADER,
    FAIL_REASON.LEADER_CHANGED,
    FAIL_REASON.DISCARDED,
    FAIL_REASON.UNKNOWN_OUTCOME,
}
POLL = 0.05  # how often a pending write re-checks quorum (seconds); an answer wakes it sooner
IDLE_POLL = 0.01  # how often a write waiting for a leader looks again
RETRY_PAUSE = 0.01  # between a retryable answer and the next proposal

Callback = Callable[[Any, int], None]


def outcome_value(outcome: Any) -> int:
    """The index of an ("ok", index) outcome; raise the error of an ("err", name, message) one."""
    if isinstance(outcome, tuple) and outcome and outcome[0] == "ok":
        return int(outcome[1])
    if isinstance(outcome, tuple) and len(outcome) == 3 and outcome[0] == "err":
        raise BY_NAME.get(outcome[1], StoreError)(str(outcome[2]))
    raise StoreError(f"unexpected answer from the state machine: {outcome!r}")


class CommitOp:
    def __init__(
        self,
        *,
        propose: Callable[[Callback], None],
        has_quorum: Callable[[], bool],
        describe_quorum: Callable[[], str],
        now: Callable[[], float],
        deadline: float,
        quorum_wait: float,
        wake: Callable[[], None],
        decode: Callable[[Any], Any] = outcome_value,
    ) -> None:
        self._propose = propose
        self._decode = decode
        self._has_quorum = has_quorum
        self._describe = describe_quorum
        self._now = now
        self._deadline = deadline
        self._quorum_wait = quorum_wait
        self._wake = wake
        self._lock = threading.Lock()
        self._answers: list[tuple[int, Any, int]] = []  # (attempt, result, pysyncobj error code)
        self._attempt = 0
        self._pending = False
        self._no_quorum_since: float | None = now()  # the quorum wait counts from the start
        self._retry_at = 0.0

    def _callback(self, attempt: int) -> Callback:
        def done(result: Any, err: int) -> None:  # tick thread
            with self._lock:
                self._answers.append((attempt, result, err))
            self._wake()

        return done

    def poll(self) -> tuple[bool, Any]:
        """(True, value) when finished, else (False, seconds to sleep). Raises the store's errors."""
        now = self._now()
        with self._lock:
            answers, self._answers = self._answers, []
        for attempt, result, err in answers:
            if err == FAIL_REASON.SUCCESS:
                return True, self._decode(result)  # any attempt's success is *the* outcome
            if err == FAIL_REASON.REQUEST_DENIED:
                raise Denied("request denied by the Raft leader")
            if err == FAIL_REASON.QUEUE_FULL:
                raise StoreError("the Raft command queue is full; try again", outcome_unknown=self._attempt > 1)
            if attempt == self._attempt and err in RETRYABLE:
                self._pending = False
                self._retry_at = now + RETRY_PAUSE
        quorum = self._has_quorum()
        if quorum:
            self._no_quorum_since = None
        elif self._no_quorum_since is None:
            self._no_quorum_since = now
        lost_for = 0.0 if self._no_quorum_since is None else now - self._no_quorum_since
        unknown = self._attempt > 0
        if lost_for >= self._quorum_wait or (not quorum and now >= self._deadline):
            raise NoQuorum(f"no quorum: {self._describe()}", outcome_unknown=unknown)
        if now >= self._deadline:
            raise Timeout(
                "timed out waiting for the write to commit; the outcome is unknown "
                "(a retry with the same request id is applied at most once)"
            )
        if not self._pending and quorum and now >= self._retry_at:
            self._attempt += 1
            self._pending = True
            self._propose(self._callback(self._attempt))
        return False, max(0.0, min(POLL if self._pending else IDLE_POLL, self._deadline - now))
