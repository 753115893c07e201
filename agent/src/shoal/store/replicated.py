"""ReplicatedStore: the cluster's objects, replicated by pysyncobj (DESIGN §3, notes/raft.md).

Threads: pysyncobj's tick thread runs Raft, applies commands (`machine.py`) and our on-tick hook;
a notifier thread runs `on_leader_change` callbacks; everything else is called from the caller's
thread. Reads are local (may be stale) and return deep copies. A write is one Raft command however
many changes it carries; see `commitop.py` for how it reaches a definite answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import queue
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from pysyncobj import SyncObj

from shoal import metrics
from shoal.store import membership
from shoal.store.atrest import hooks as atrest
from shoal.store.changes import KINDS, NAMED_KINDS, Change
from shoal.store.commitop import CommitOp
from shoal.store.config import DUMP_FILE, JOURNAL_FILE, MAX_BATCH_BYTES, RaftConfig
from shoal.store.durability import JournalFlusher
from shoal.store.elections import ElectionLog, followers_of, view_of
from shoal.store.errors import InvalidChange, StoreError
from shoal.store.leadership import LeaderCallback, Leadership
from shoal.store.machine import StoreMachine
from shoal.store.notifier import Notifier
from shoal.store.readfirst import ReadFirstSyncObj
from shoal.store.state import spec_name
from shoal.store.transport import ShoalTransport, TransportHooks, node_addr
from shoal.store.watch import Hub, Notice, Subscription, clone
from shoal.store.watchdog import CatchupWatchdog, follower_matches

__all__ = ["RaftConfig", "ReplicatedStore"]

log = logging.getLogger("shoal.store")

WATCHDOG_PERIOD = 0.25
# A tick this long after the previous one is counted: over ten times a normal gap (auto_tick_period
# 0.02 s of waiting plus the tick's work), far below an election timeout.
TICK_STALL = 0.25


class ReplicatedStore:
    def __init__(self, cfg: RaftConfig) -> None:
        cfg.validate()
        self.cfg = cfg
        self.addr = cfg.self_addr
        Path(cfg.data_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
        self._closed = False
        self._tick_ident: int | None = None
        self._last_tick = time.monotonic()  # when the tick thread last ran our hook
        self._tick_jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._hub = Hub()
        self._notifier = Notifier()
        self._watchdog = CatchupWatchdog(cfg.catchup_stall_timeout)
        self._elections = ElectionLog()
        self._next_watch = 0.0
        self._sync: SyncObj | None = None
        self.hooks = TransportHooks(cfg.ping_period, None)  # diagnostics, and fault injection in tests
        self._machine = StoreMachine(self._hub.publish, self._on_epoch, self._on_applied)
        self._leadership = Leadership(cfg.self_addr, self._machine, self._notifier)
        data_dir = Path(cfg.data_dir)
        if cfg.unsealed_for_benchmarks:
            storage: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        else:
            key_source = atrest.key_source_for(data_dir, cfg.key_source)
            cipher = atrest.prepare(data_dir / JOURNAL_FILE, data_dir / DUMP_FILE, key_source)
            storage = atrest.sealed_storage(cipher)
        try:
            with storage:  # the journal is replayed (and opened) in here
                self._sync = ReadFirstSyncObj(
                    cfg.self_addr,
                    cfg.other_peers(),
                    cfg.sync_conf(),
                    consumers=[self._machine],
                    transportClass=partial(ShoalTransport, hooks=self.hooks),
                )
        except Exception:
            self._notifier.close()
            raise
        self._leadership.sync = self._sync
        try:
            self._sync.waitBinded()
        except Exception as exc:
            self._sync.destroy_synchronous()
            self._notifier.close()
            raise StoreError(f"cannot listen for Raft on {cfg.bind_addr or cfg.self_addr}: {exc}") from exc
        if cfg.flush_journal:
            flusher = JournalFlusher(Path(cfg.data_dir) / JOURNAL_FILE, Path(cfg.data_dir) / DUMP_FILE)
            flusher.before_answer(int(self._sync.raftCommitIndex))  # what an earlier run left in the page cache
            self.hooks.flusher = flusher
        self._last_tick = time.monotonic()  # not since __init__: the journal's replay is no stall
        self._sync.addOnTickCallback(self._on_tick)

    # ---- reads (local, possibly stale; deep copies)
    def get(self, kind: str, obj_id: str) -> dict[str, Any] | None:
        with self._machine.lock:
            obj = self._machine.state.objects.get(kind, {}).get(obj_id)
        return None if obj is None else clone(obj)

    def list(self, kind: str) -> list[dict[str, Any]]:
        with self._machine.lock:
            objs = list(self._machine.state.objects.get(kind, {}).values())
        return clone(objs)  # type: ignore[no-any-return]

    def list_shared(self, kind: str) -> list[dict[str, Any]]:
        """The stored objects themselves, not copies: for readers that only read and serialize
        (stored objects are never mutated in place, so each is a stable snapshot). Never modify them."""
        with self._machine.lock:
            return list(self._machine.state.objects.get(kind, {}).values())

    def read_shared(self, kinds: tuple[str, ...]) -> tuple[int, dict[str, list[dict[str, Any]]]]:
        """The stored objects of `kinds` (as `list_shared`) and the log index they are as of, read at
        one instant: separate reads may straddle a commit, and a view labelled with an index newer
        than its objects is never rebuilt while nothing more is committed."""
        with self._machine.lock:
            state = self._machine.state
            return state.last_index, {kind: list(state.objects.get(kind, {}).values()) for kind in kinds}

    def get_shared(self, kind: str, obj_id: str) -> dict[str, Any] | None:
        """The stored object itself, not a copy (as `list_shared`). Never modify it."""
        with self._machine.lock:
            return self._machine.state.objects.get(kind, {}).get(obj_id)

    def find_by_name(self, kind: str, name: str) -> dict[str, Any] | None:
        with self._machine.lock:
            state = self._machine.state
            if kind in NAMED_KINDS:
                obj_id = state.names[kind].get(name)
                obj = state.objects[kind].get(obj_id) if obj_id else None
            else:
                obj = next((o for o in state.objects.get(kind, {}).values() if spec_name(o) == name), None)
        return None if obj is None else clone(obj)

    @property
    def applied_index(self) -> int:
        """Log index of the last store command applied on this replica."""
        return self._machine.state.last_index

    @property
    def epoch(self) -> int:
        """The last committed epoch (one per leader term that announced itself)."""
        return self._machine.state.epoch

    # ---- writes
    def commit(
        self,
        changes: list[Change],
        timeout: float | None = None,
        *,
        request_id: str | None = None,
        epoch: int | None = None,
    ) -> int:
        """Apply all changes as one Raft command, or none; return its log index.

        `timeout`: the write's deadline, default the config's `commit_timeout`.
        `request_id`: pass the same one to retry a write whose outcome is unknown (applied once).
        `epoch`: fence the write to that epoch (StaleEpoch if a newer leader announced itself).
        Never call it on the tick thread (a replicated method or pysyncobj callback): it would wait
        for itself.
        """
        self._check_caller()
        with metrics.timed(metrics.RAFT_COMMIT_SECONDS):
            return int(_drive(lambda wake: self._new_op(changes, timeout, request_id, epoch, wake)))

    def run_proposal(self, propose: Callable[..., None], timeout: float, **kw: Any) -> Any:
        """Drive any pysyncobj proposal (membership changes) like a write: retries, fast NoQuorum."""
        return _drive(lambda wake: self._op(propose, timeout, wake, **kw))

    async def acommit(
        self,
        changes: list[Change],
        timeout: float | None = None,
        *,
        request_id: str | None = None,
        epoch: int | None = None,
    ) -> int:
        """commit() for asyncio: never blocks the loop (pysyncobj answers via call_soon_threadsafe)."""
        self._check_caller()
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # loop closed: nobody waits any more
                loop.call_soon_threadsafe(woken.set)

        op = self._new_op(changes, timeout, request_id, epoch, wake)
        started = time.perf_counter()
        while True:
            woken.clear()
            finished, value = op.poll()
            if finished:
                metrics.RAFT_COMMIT_SECONDS.observe(time.perf_counter() - started)
                return int(value)
            with contextlib.suppress(TimeoutError):  # not wait_for: it may swallow a cancel (bpo-42130)
                async with asyncio.timeout(value):
                    await woken.wait()

    def _new_op(
        self,
        changes: list[Change],
        timeout: float | None,
        request_id: str | None,
        epoch: int | None,
        wake: Callable[[], None],
    ) -> CommitOp:
        if not isinstance(changes, list | tuple) or not all(isinstance(c, Change) for c in changes):
            raise InvalidChange("commit() takes a list of Change")
        rid = request_id or uuid.uuid4().hex
        data = pickle.dumps([c.to_wire() for c in changes], protocol=pickle.HIGHEST_PROTOCOL)
        if len(data) > MAX_BATCH_BYTES:
            raise InvalidChange(f"batch of {len(data)} bytes is larger than {MAX_BATCH_BYTES}: split it")
        # A private copy: a retry under the same request id must carry the same changes even if
        # the caller mutates its objects meanwhile.
        wire = pickle.loads(data)
        machine = self._machine

        def propose(callback: Callable[[Any, int], None]) -> None:
            machine.apply_batch(rid, wire, epoch, callback=callback)

        return self._op(propose, self.cfg.commit_timeout if timeout is None else timeout, wake)

    def _op(self, propose: Callable[..., None], timeout: float, wake: Callable[[], None], **kw: Any) -> CommitOp:
        return CommitOp(
            propose=propose,
            has_quorum=self.has_quorum,
            describe_quorum=self._describe_quorum,
            now=time.monotonic,
            deadline=time.monotonic() + timeout,
            quorum_wait=min(self.cfg.quorum_wait, timeout),
            wake=wake,
            **kw,
        )

    def _check_caller(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")
        if threading.get_ident() == self._tick_ident:
            raise StoreError("a write from the Raft tick thread would wait for itself; use a callback")

    # ---- watch
    def subscribe(
        self, loop: asyncio.AbstractEventLoop | None = None, kinds: frozenset[str] | None = None
    ) -> Subscription:
        """Events (kind, action, obj, index) after apply, of `kinds` only when given. Queued by the
        tick thread; read them with `get()` on your own thread, or `await aget()` on `loop`.
        Subscribe, then read the state."""
        with self._machine.lock:
            return self._hub.add(self._machine.state.last_index, loop, self.cfg.watch_max_pending, kinds)

    def notice(self, loop: asyncio.AbstractEventLoop) -> Notice:
        """A subscription that says only that something was applied (`Notice`): for waiters that
        read the state again anyway. Subscribe, then read the state."""
        with self._machine.lock:
            return self._hub.add_notice(self._machine.state.last_index, loop)

    def held(self) -> dict[str, int]:
        """What this replica holds in memory that can grow under load: Raft log entries (pysyncobj
        keeps every entry since the last snapshot in memory beside the journal file) and the events
        queued for watchers. Figures for metrics, read without the tick thread's help."""
        subs, queued, most = self._hub.pending()
        out = {"watch_subscriptions": subs, "watch_events_queued": queued, "watch_events_queued_max": most}
        log = getattr(self._sync, "_SyncObj__raftLog", None)  # pysyncobj keeps it private
        if log is not None:
            entries = list(log)  # a copy: the tick thread appends meanwhile
            out["raft_log_entries"] = len(entries)
            out["raft_log_bytes"] = sum(len(entry[0]) for entry in entries)
        return out

    def on_leader_change(self, callback: LeaderCallback) -> None:
        """`callback(leading, epoch)` on the notifier thread: True once this node's epoch is
        committed (start leader-only loops), False as soon as it stops being leader. Called once
        right away with the current state. It may call commit(); it must not block for long."""
        self._leadership.add_callback(callback)

    @property
    def leading(self) -> bool:
        """Leader *and* its epoch is committed: what leader-only loops should check."""
        return self._leadership.leading

    # ---- Raft view
    def is_leader(self) -> bool:
        return bool(self._sync is not None and self._sync._isLeader())

    def leader(self) -> str | None:
        """The leader this replica last heard of (may be stale when it has no quorum)."""
        node = self._sync._getLeader() if self._sync is not None else None
        return None if node is None else node_addr(node)

    def replica_lag(self) -> int | None:
        """Committed entries this replica has not applied yet: the leader's commit index, as of its
        last message, less this replica's last applied entry (0 on a leader whose epoch is
        applied). None while unknown: a leader whose own epoch is not applied yet, or a replica no
        leader spoke to since it started; a restarted replica applies only up to the commit index
        its journal saved (once a second), so the tasks created in the second before it stopped
        are missing until a leader commits again. A replica stuck behind (a snapshot it could not
        load) or not known current must not answer nodes as if it were current."""
        sync = self._sync
        if sync is None:
            return 0
        if sync._isLeader():
            return 0 if self._leadership.leading else None
        status = sync.getStatus()
        if status.get("leader_commit_idx") is None:
            return None
        return max(0, int(status["leader_commit_idx"]) - int(status.get("last_applied") or 0))

    def members(self) -> list[str]:
        """All voting members, this one included."""
        assert self._sync is not None
        return sorted({self.addr, *(node_addr(n) for n in self._sync.otherNodes)})

    def peer_status(self) -> dict[str, bool]:
        """Other member -> connected (Reachable/Unreachable in `node ls`)."""
        assert self._sync is not None
        return {node_addr(n): bool(self._sync.isNodeConnected(n)) for n in self._sync.otherNodes}

    def has_quorum(self) -> bool:
        """Whether a write could commit now, as far as this replica can tell: it leads and heard
        from a majority recently, or it follows a leader that is connected and heartbeating."""
        sync = self._sync
        if sync is None or self._closed:
            return False
        others = sync.otherNodes
        now, window = time.monotonic(), self.cfg.raft_max_timeout
        if sync._isLeader():
            fresh = 1 + sum(
                1
                for n in others
                if sync.isNodeConnected(n) and now - self.hooks.last_ack.get(node_addr(n), -1e9) <= window
            )
            return fresh > (len(others) + 1) / 2
        leader = sync._getLeader()
        if leader is None or leader == sync.selfNode or not sync.isNodeConnected(leader):
            return False
        return now - self.hooks.last_append.get(node_addr(leader), -1e9) <= window

    def _describe_quorum(self) -> str:
        peers = self.peer_status()
        total, up = len(peers), sum(peers.values())
        if self.is_leader():
            now, window = time.monotonic(), self.cfg.raft_max_timeout
            fresh = sum(1 for p, ok in peers.items() if ok and now - self.hooks.last_ack.get(p, -1e9) <= window)
            return f"this manager leads but only {fresh} of {total} other managers answer"
        leader = self.leader()
        if leader is None or leader == self.addr:
            return f"no leader elected; this manager reaches {up} of {total} other managers"
        return f"leader {leader} is unreachable; this manager reaches {up} of {total} other managers"

    # ---- membership (one change at a time; run on the leader or forwarded to it)
    def add_member(self, addr: str, timeout: float = 5.0) -> None:
        """Add a voter. Start the new member (empty data dir, full member list) before or right after."""
        self._check_caller()
        membership.change_membership(self, addr, True, timeout)

    def remove_member(self, addr: str, timeout: float = 5.0) -> None:
        """Remove another member. A leader cannot remove itself: transfer_leadership() first, then
        ask the new leader. Wipe the removed member's data dir before reusing it."""
        self._check_caller()
        membership.change_membership(self, addr, False, timeout)

    def transfer_leadership(self, target: str | None = None, timeout: float = 2.0) -> str | None:
        """Hand leadership to `target` (default: the most caught-up follower); returns the new leader."""
        self._check_caller()
        return membership.transfer_leadership(self, target, timeout)

    # ---- admin
    def export_state(self) -> dict[str, Any]:
        """Everything needed to seed a new cluster from this replica (force-new-cluster)."""
        with self._machine.lock:
            state = self._machine.state
            objects = {kind: list(state.objects.get(kind, {}).values()) for kind in KINDS}
            epoch = {"Epoch": state.epoch, "Leader": state.epoch_leader, "Term": state.epoch_term}
            index = state.last_index
        return {"Index": index, "Epoch": epoch, "Members": self.members(), "Objects": clone(objects)}

    def close(self) -> None:
        if self._closed:
            return
        if threading.get_ident() == self._tick_ident:
            raise StoreError("close() from the tick thread would wait for itself")
        self._closed = True
        if self._sync is not None:
            self._sync.removeOnTickCallback(self._on_tick)
            self._sync.destroy_synchronous()
        if self.hooks.flusher is not None:
            self.hooks.flusher.close()
        self._hub.close_all()
        self._notifier.close()

    # ---- tick thread
    @property
    def raft(self) -> SyncObj | None:
        """The pysyncobj replica (None while closing): for `membership.py`."""
        return self._sync

    def on_tick_thread(self, job: Callable[[], None]) -> None:
        self._tick_jobs.put(job)

    def _on_tick(self) -> None:
        self._tick_ident = threading.get_ident()
        now = time.monotonic()
        if now - self._last_tick > TICK_STALL:
            self._tick_stalled(now - self._last_tick)
        self._last_tick = now
        try:
            self._tick()
        except Exception:  # never let our hook break pysyncobj's loop
            log.exception("store on-tick hook failed")

    def _tick_stalled(self, seconds: float) -> None:
        """The tick thread came back `seconds` after its previous tick: pysyncobj sent no heartbeat
        meanwhile, and followers call an election after an election timeout without one. Counted,
        and said when it reached half of that timeout (docs/scale.md: a leader that woke every
        waiting long poll one by one at each commit held its tick thread for 1-2.5 s)."""
        metrics.RAFT_TICK_STALL_SECONDS.observe(seconds)
        if seconds >= self.cfg.raft_min_timeout / 2:
            log.warning(
                "the Raft tick thread was held up %.2f s (election timeout %.2f s): this manager is short of CPU",
                seconds,
                self.cfg.raft_min_timeout,
            )

    def _tick(self) -> None:
        while True:
            try:
                job = self._tick_jobs.get_nowait()
            except queue.Empty:
                break
            try:
                job()
            except Exception:
                log.exception("store job on the tick thread failed")
        sync = self._sync
        if sync is None:
            return
        leader = bool(sync._isLeader())
        self._leadership.on_tick(leader)
        now = time.monotonic()
        view = view_of(sync)
        for line in self._elections.observe(view):
            log.info("%s", line)
        if self.hooks.flusher is not None:
            self.hooks.flusher.check_dump()
        if now >= self._next_watch:
            self._next_watch = now + WATCHDOG_PERIOD
            if leader:
                status = sync.getStatus()
                stalled = self._elections.stalled(now, view, followers_of(status))
                if stalled:
                    log.warning("%s", stalled)
                commit_index, match = follower_matches(status)
                if self._watchdog.observe(now, commit_index, match):
                    log.warning("a follower stalled below commit index %d: forcing a log compaction", commit_index)
                    sync.forceLogCompaction()
            else:
                self._watchdog.reset()

    def _on_epoch(self, epoch: int, leader: str | None, term: int) -> None:
        self._leadership.on_epoch(epoch, leader, term)

    def _on_applied(self, index: int) -> None:
        # A single member has no follower acknowledgements to sync before: sync before answering.
        flusher = self.hooks.flusher
        if flusher is not None and self._sync is not None and not self._sync.otherNodes:
            flusher.before_answer(index)


def _drive(make_op: Callable[[Callable[[], None]], CommitOp]) -> Any:
    """Run an op to its end on this (non-tick) thread, sleeping until pysyncobj answers."""
    woken = threading.Event()
    op = make_op(woken.set)
    while True:
        woken.clear()
        finished, value = op.poll()
        if finished:
            return value
        woken.wait(value)
