"""The replicated store on real pysyncobj, members in this process, on 127.0.0.1 only.

Covers the store's contract (batches, conflicts, request ids, forwarding, membership, watch) and
the notes/raft.md workarounds that live in-process: peer pings (1), the catch-up watchdog (2),
epoch fencing (3) and journal syncs (4). Kill -9 and full restarts are in test_store_raft_procs.py.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.metrics import REGISTRY
from shoal.store import (
    Change,
    NameConflict,
    NoQuorum,
    RaftConfig,
    ReplicatedStore,
    StaleEpoch,
    StoreError,
    Timeout,
    VersionConflict,
)
from shoal.store.config import DUMP_FILE

PASSWORD = "test-raft-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def start(addrs: list[str], root: Path, peers: list[str] | None = None, **cfg: Any) -> list[ReplicatedStore]:
    return [
        ReplicatedStore(
            RaftConfig(a, peers if peers is not None else addrs, root / a.replace(":", "_"), PASSWORD, **cfg)
        )
        for a in addrs
    ]


def leader_of(stores: list[ReplicatedStore]) -> ReplicatedStore:
    return wait_for(lambda: next((s for s in stores if s.leading), None), 5.0, "a leader with a committed epoch")


def task(obj_id: str) -> Change:
    return Change("create", "task", {"ID": obj_id, "CreatedAt": "t", "UpdatedAt": "t", "Spec": {}})


def service(obj_id: str, name: str) -> dict[str, Any]:
    return {"ID": obj_id, "CreatedAt": "t", "UpdatedAt": "t", "Spec": {"Name": name}}


def ids(store: ReplicatedStore, kind: str = "task") -> list[str]:
    return sorted(o["ID"] for o in store.list(kind))


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicatedStore]:
    (store,) = start([f"127.0.0.1:{free_port()}"], tmp_path_factory.mktemp("single"))
    leader_of([store])
    yield store
    store.close()


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ReplicatedStore]]:
    stores = start([f"127.0.0.1:{free_port()}" for _ in range(3)], tmp_path_factory.mktemp("trio"))
    leader_of(stores)
    yield stores
    for s in stores:
        s.close()


# ---- one member: the store's contract


def test_a_batch_of_100_creates_is_one_command(single: ReplicatedStore) -> None:
    sub = single.subscribe()
    index = single.commit([task(f"b{i}") for i in range(100)])
    objs = [o for o in single.list("task") if o["ID"].startswith("b")]
    assert len(objs) == 100 and {o["Version"]["Index"] for o in objs} == {index}
    assert single.applied_index >= index
    events = [sub.get(1.0) for _ in range(100)]
    assert {(e.action, e.index) for e in events if e} == {("create", index)}
    sub.close()
    # reads are copies
    got = single.get("task", "b0")
    assert got is not None
    got["Spec"]["changed"] = True
    assert single.get("task", "b0") == {**got, "Spec": {}}


def test_a_stale_version_is_a_conflict_and_changes_nothing(single: ReplicatedStore) -> None:
    first = single.commit([Change("create", "service", service("s1", "web"))])
    second = single.commit([Change("update", "service", service("s1", "web"), expected_version=first)])
    before = single.list("service"), ids(single)
    stale = Change("update", "service", service("s1", "web-2"), expected_version=first)
    with pytest.raises(VersionConflict, match="out of sequence") as err:
        single.commit([task("never"), stale])
    assert err.value.status == 409
    assert (single.list("service"), ids(single)) == before
    assert single.get("service", "s1")["Version"]["Index"] == second  # type: ignore[index]


def test_a_name_conflict_applies_nothing_of_the_batch(single: ReplicatedStore) -> None:
    single.commit([Change("create", "network", service("n1", "backend"))])
    with pytest.raises(NameConflict, match='network name "backend" is already in use'):
        single.commit([task("nope-1"), Change("create", "network", service("n2", "backend")), task("nope-2")])
    assert "nope-1" not in ids(single) and single.get("network", "n2") is None
    assert single.find_by_name("network", "backend")["ID"] == "n1"  # type: ignore[index]


def test_a_retried_request_id_is_applied_once(single: ReplicatedStore) -> None:
    first = single.commit([task("once")], request_id="req-1")
    again = single.commit([task("once")], request_id="req-1")  # a create that would conflict if re-applied
    assert again == first
    assert single.get("task", "once")["Version"]["Index"] == first  # type: ignore[index]


def test_acommit_answers_without_blocking_the_loop(single: ReplicatedStore) -> None:
    async def main() -> tuple[list[int], int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        tick_task = asyncio.create_task(ticker())
        indexes = [await single.acommit([task(f"async-{i}")]) for i in range(5)]
        tick_task.cancel()
        return indexes, ticks

    indexes, ticks = asyncio.run(main())
    assert indexes == sorted(indexes) and len(set(indexes)) == 5
    assert ticks >= 20  # the loop kept running while writes were in flight


def test_writes_from_the_tick_thread_are_refused(single: ReplicatedStore) -> None:
    errors: list[Exception] = []
    done = threading.Event()

    def job() -> None:
        try:
            single.commit([task("from-tick")])
        except StoreError as exc:
            errors.append(exc)
        done.set()

    single.on_tick_thread(job)
    assert done.wait(2.0) and errors and "tick thread" in str(errors[0])


def test_the_journal_is_synced_before_a_single_member_answers(single: ReplicatedStore) -> None:
    index = single.commit([task("durable")])
    assert single.hooks.flusher is not None and single.hooks.flusher.durable_index >= index


def test_state_comes_back_from_snapshot_plus_journal(tmp_path: Path) -> None:
    addr = f"127.0.0.1:{free_port()}"
    (store,) = start([addr], tmp_path, log_compaction_min_entries=20)
    leader_of([store])
    for i in range(30):  # past the compaction threshold: a snapshot, then more journal entries
        store.commit([task(f"s{i}")])
    wait_for(lambda: (tmp_path / addr.replace(":", "_") / DUMP_FILE).exists(), 5.0, "a snapshot")
    flusher = store.hooks.flusher
    assert flusher is not None
    wait_for(lambda: flusher._dump_seen is not None, 2.0, "the snapshot to be synced")
    for i in range(30, 35):
        store.commit([task(f"s{i}")])
    before = store.export_state()
    store.close()
    (store,) = start([addr], tmp_path, log_compaction_min_entries=20)
    try:
        wait_for(lambda: store.applied_index >= before["Index"], 5.0, "replay")
        after = store.export_state()
        assert after["Objects"] == before["Objects"]  # same objects, same Version.Index
        assert len(after["Objects"]["task"]) == 35
        leader_of([store])
        assert store.epoch > before["Epoch"]["Epoch"]
    finally:
        store.close()


def test_a_held_up_tick_thread_is_counted_and_said(single: ReplicatedStore, caplog: pytest.LogCaptureFixture) -> None:
    # The followers call an election when the leader's tick thread sends no heartbeat for an election
    # timeout: a tick that comes late shows in a metric and, past half that timeout, in the log.
    def stalls() -> float:
        return REGISTRY.get_sample_value("shoal_raft_tick_stall_seconds_count") or 0.0

    before = stalls()
    caplog.set_level(logging.WARNING, logger="shoal.store")
    single._tick_jobs.put(lambda: time.sleep(0.6))  # holds the tick thread, as a busy process would
    wait_for(lambda: stalls() > before, 5.0, "the late tick to be counted")
    held = [r.getMessage() for r in caplog.records if "tick thread was held up" in r.getMessage()]
    # (a loaded machine may add shorter stalls of its own: only the one made here is certain)
    assert any(float(m.split("held up ")[1].split(" s")[0]) >= 0.6 for m in held), held


def hold_after_next_read(store: ReplicatedStore, seconds: float) -> threading.Event:
    """Hold the store's tick thread right after its next socket read, as a full collection of the
    garbage collector or a busy GIL does: the peers' messages queue meanwhile. Set when done."""
    sync = store.raft
    assert sync is not None
    read = sync._poller.poll
    done = threading.Event()

    def read_then_hold(timeout: float) -> None:
        read(timeout)
        if not done.is_set():
            done.set()  # once: the read-first poll of the next tick must not hold again
            time.sleep(seconds)

    sync._poller.poll = read_then_hold
    return done


def test_a_held_up_follower_reads_the_leader_before_calling_an_election(tmp_path: Path) -> None:
    # Held up 1.5 s, past its election timeout (0.25-0.6 s), with the leader's heartbeats waiting in its
    # socket: had it called an election first, its higher term would depose a healthy leader.
    stores = start([f"127.0.0.1:{free_port()}" for _ in range(3)], tmp_path)
    try:
        leader = leader_of(stores)
        held = next(s for s in stores if s is not leader)
        terms = {s.addr: s.raft.raftCurrentTerm for s in stores}  # type: ignore[union-attr]
        reads = held.raft.held_up_reads  # type: ignore[union-attr]
        done = hold_after_next_read(held, 1.5)
        assert done.wait(5.0)
        wait_for(lambda: held.raft.held_up_reads > reads, 5.0, "the held-up tick")  # type: ignore[union-attr]
        time.sleep(0.3)  # what an election would take to show
        assert {s.addr: s.raft.raftCurrentTerm for s in stores} == terms  # type: ignore[union-attr]
        assert leader.leading and leader_of(stores) is leader
    finally:
        for s in stores:
            s.close()


def test_a_password_is_required(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="password"):
        ReplicatedStore(RaftConfig(f"127.0.0.1:{free_port()}", [], tmp_path, ""))


# ---- three members


def test_a_write_on_a_follower_is_forwarded(trio: list[ReplicatedStore]) -> None:
    follower = next(s for s in trio if not s.is_leader())
    index = follower.commit([task("via-follower")])
    for s in trio:
        wait_for(lambda s=s: s.applied_index >= index, 2.0, "replication")
        assert "via-follower" in ids(s)
    assert all(s.leader() == leader_of(trio).addr for s in trio)
    assert all(len(s.members()) == 3 for s in trio)
    # a link may be between reconnects on a loaded machine; every one must be (back) up soon
    wait_for(lambda: all(all(s.peer_status().values()) for s in trio), 5.0, "every peer link up")


def test_peer_pings_keep_idle_links_read_fresh(trio: list[ReplicatedStore]) -> None:
    # Workaround 1: followers never talk to each other in Raft, so without pings their link reads
    # nothing for longer than connection_timeout and the first vote request after a leader dies is
    # lost. Idle past that timeout: every member must have read from every peer recently.
    before = {s.addr: s.hooks.pings_received for s in trio}
    time.sleep(trio[0].cfg.connection_timeout + 0.3)
    now = time.monotonic()
    for s in trio:  # how many pings fit in the wait depends on the machine's load: not asserted
        assert s.hooks.pings_received > before[s.addr]
        silent = {p: now - s.hooks.last_heard.get(p, 0.0) for p in s.peer_status()}
        assert max(silent.values()) < s.cfg.connection_timeout, silent  # no link ever reads stale


def test_every_member_syncs_the_journal_before_acknowledging(trio: list[ReplicatedStore]) -> None:
    # Workaround 4: the leader syncs before replicating, followers before acknowledging, so when
    # commit() returns the entry is on disk on the leader and on at least one follower.
    leader = leader_of(trio)
    for i in range(5):
        index = leader.commit([task(f"sync-{i}")])
        durable = sorted((s.hooks.flusher.durable_index for s in trio if s.hooks.flusher), reverse=True)
        assert leader.hooks.flusher is not None and leader.hooks.flusher.durable_index >= index
        assert durable[1] >= index


def test_epoch_fencing_follows_a_leadership_transfer(trio: list[ReplicatedStore]) -> None:
    # Workaround 3: a new leader's epoch is committed before its loops start; older epochs are refused.
    old = leader_of(trio)
    calls: dict[str, list[tuple[bool, int]]] = {s.addr: [] for s in trio}
    for s in trio:
        s.on_leader_change(lambda leading, epoch, a=s.addr: calls[a].append((leading, epoch)))
    old_epoch = old.epoch
    wait_for(lambda: calls[old.addr] == [(True, old_epoch)], 2.0, "the current state on registration")
    target = next(s for s in trio if s is not old)
    assert old.transfer_leadership(target.addr) == target.addr
    wait_for(lambda: target.leading, 3.0, "the target to commit its epoch")
    wait_for(lambda: calls[target.addr][-1:] == [(True, old_epoch + 1)], 2.0, "the new leader's callback")
    assert (False, old_epoch) in calls[old.addr] or (False, old_epoch + 1) in calls[old.addr]
    assert {s.epoch for s in trio if s.applied_index >= target.applied_index} == {old_epoch + 1}
    with pytest.raises(StaleEpoch):
        old.commit([task("fenced")], epoch=old_epoch)
    assert old.commit([task("current")], epoch=old_epoch + 1) > 0


def test_the_catchup_watchdog_rescues_a_stalled_follower(trio: list[ReplicatedStore]) -> None:
    # Workaround 2: a follower that stays connected but cannot append entries gets a snapshot
    # once the leader sees its match index stall below the commit index.
    leader = leader_of(trio)
    follower = next(s for s in trio if s is not leader)
    leader._watchdog.stall_timeout = 1.0  # 5 s in production
    fired = leader._watchdog.fired
    sub = follower.subscribe()
    follower.hooks.deaf.add(leader.addr)
    try:
        for i in range(5):
            leader.commit([task(f"stalled-{i}")])
        time.sleep(0.5)
        assert "stalled-4" not in ids(follower)  # it really is stuck
        wait_for(lambda: "stalled-4" in ids(follower), 5.0, "the snapshot to reach the follower")
    finally:
        follower.hooks.deaf.clear()
        leader._watchdog.stall_timeout = 5.0
    assert leader._watchdog.fired > fired
    assert (Path(leader.cfg.data_dir) / DUMP_FILE).exists()
    seen = set()
    while (ev := sub.get(0.5)) is not None:
        seen.add(ev.obj["ID"])
    assert {f"stalled-{i}" for i in range(5)} <= seen  # watchers saw the snapshot as changes
    sub.close()


def test_add_and_remove_a_member(trio: list[ReplicatedStore], tmp_path: Path) -> None:
    leader = leader_of(trio)
    new_addr = f"127.0.0.1:{free_port()}"
    (new,) = start([new_addr], tmp_path, peers=[*leader.members(), new_addr])  # empty data dir
    try:
        leader.add_member(new_addr)
        assert all(new_addr in s.members() for s in trio)
        index = leader.commit([task("with-four")])
        wait_for(lambda: new.applied_index >= index, 3.0, "the new member to catch up")
        assert ids(new) == ids(leader)
        follower = next(s for s in trio if s is not leader)
        follower.remove_member(new_addr)  # forwarded to the leader
        wait_for(lambda: all(new_addr not in s.members() for s in trio), 2.0, "removal everywhere")
        assert leader.commit([task("with-three")]) > index
        with pytest.raises(StoreError):
            leader.remove_member(leader.addr)  # transfer leadership first
    finally:
        new.close()


def test_an_isolated_leader_fails_fast_and_still_reads(tmp_path: Path) -> None:
    stores = start([f"127.0.0.1:{free_port()}" for _ in range(3)], tmp_path)
    try:
        old = leader_of(stores)
        old.commit([task("before")])
        others = [s for s in stores if s is not old]
        for s in others:  # cut both links of the leader
            old.hooks.blocked.add(s.addr)
            s.hooks.blocked.add(old.addr)
        time.sleep(0.1)
        t0 = time.monotonic()
        with pytest.raises(NoQuorum, match=r"^no quorum") as err:
            old.commit([task("cut-off")], timeout=30.0)
        # the loss of quorum was detected, not waited out to the commit's deadline (the figure: bench/)
        assert time.monotonic() - t0 < 15 and err.value.status == 503
        assert "before" in ids(old)  # reads still answer
        new = leader_of(others)
        new.commit([task("majority")])
        for s in others:
            old.hooks.blocked.discard(s.addr)
            s.hooks.blocked.discard(old.addr)
        wait_for(lambda: "majority" in ids(old), 5.0, "the old leader to catch up after the heal")
        assert "cut-off" not in ids(old) and not old.leading
    finally:
        for s in stores:
            s.close()


def test_a_leadership_change_is_told_in_the_log(trio: list[ReplicatedStore], caplog: pytest.LogCaptureFixture) -> None:
    # pysyncobj says nothing of terms and votes; a takeover that took 107 s left no line saying why.
    caplog.set_level(logging.INFO, logger="shoal.store")
    old = leader_of(trio)
    target = next(s for s in trio if s is not old)
    assert old.transfer_leadership(target.addr) == target.addr
    wait_for(lambda: target.leading, 3.0, "the target to lead")

    def told() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.getMessage().startswith("Raft term ")]

    wait_for(lambda: any(": leader (log index" in line for line in told()), 2.0, "the new leader's line")
    # the two others follow it: the old leader steps down, the third hears of a new leader
    wait_for(
        lambda: (
            sum(f"leader {target.addr}" in line or f"the leader is now {target.addr}" in line for line in told()) >= 2
        ),
        3.0,
        "both followers naming the new leader",
    )
    term = int(target.raft.raftCurrentTerm)
    assert any(line.startswith(f"Raft term {term}: leader") for line in told())


def test_a_notice_wakes_its_waiter_on_a_commit_and_keeps_no_events(single: ReplicatedStore) -> None:
    # what a node's assignment long poll waits on: woken by the tick thread's apply, nothing queued
    async def main() -> tuple[bool, float, dict[str, int]]:
        notice = single.notice(asyncio.get_running_loop())
        try:
            started = time.monotonic()
            waiting = asyncio.create_task(notice.wait(10.0))
            await asyncio.sleep(0.05)
            await single.acommit([task(f"notice-{i}") for i in range(50)])
            woke = await waiting
            return woke, time.monotonic() - started, single.held()
        finally:
            notice.close()

    woke, took, held = asyncio.run(main())
    assert woke and took < 5.0, took
    assert held["watch_events_queued"] <= 1  # a flag, not the commit's 50 events


def test_a_write_without_a_timeout_gets_the_configured_deadline(tmp_path: Path) -> None:
    # a write's default deadline is the config's commit_timeout (stretched with the election timeout)
    (store,) = start([f"127.0.0.1:{free_port()}"], tmp_path, commit_timeout=0.3)
    try:
        leader_of([store])
        assert store.commit([task("on-time")]) > 0
        original = store._machine.apply_batch

        def lost(*args: Any, **kwargs: Any) -> None:  # the proposal is lost: nothing ever answers
            return None

        store._machine.apply_batch = lost  # type: ignore[method-assign]
        started = time.monotonic()
        with pytest.raises(Timeout):
            store.commit([task("late")])
        assert 0.25 <= time.monotonic() - started < 1.5  # its 0.3 s, not the former fixed 2 s
        store._machine.apply_batch = original  # type: ignore[method-assign]
    finally:
        store.close()
