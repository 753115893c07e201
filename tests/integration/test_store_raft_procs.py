"""The replicated store with one process per member (`python -m shoal.store.member`), killed with
SIGKILL by pid: failover, no acknowledged write lost, no quorum on a minority, restart of all.
Loopback only; every process this file starts is killed by its pid at the end.
"""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.store.member import MemberError, MemberProcess

PASSWORD = "test-raft-secret"


class Member(MemberProcess):
    def __init__(self, addr: str, peers: list[str], data_dir: Path) -> None:
        super().__init__(addr, peers, data_dir, PASSWORD)

    def write(self, *task_ids: str, timeout: float = 2.0) -> int:
        changes = [
            ["create", "task", {"ID": t, "CreatedAt": "t", "UpdatedAt": "t", "Spec": {}}, None, None] for t in task_ids
        ]
        return int(self.call("commit", changes=changes, timeout=timeout))

    def ids(self) -> list[str]:
        return list(self.call("ids", kind="task"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(member: Member, key: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = member.call("status")
        if status[key]:
            return dict(status)
        time.sleep(0.02)
    raise AssertionError(f"{member.addr}: no {key} after {timeout}s")


def leader(members: list[Member], timeout: float = 5.0) -> Member:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in members:
            if m.call("status")["leading"]:
                return m
        time.sleep(0.02)
    raise AssertionError("no leader")


@pytest.fixture
def trio(tmp_path: Path) -> Iterator[list[Member]]:
    addrs = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    members = [Member(a, [p for p in addrs if p != a], tmp_path / f"m{i}") for i, a in enumerate(addrs)]
    try:
        for m in members:
            m.start()
        yield members
    finally:
        for m in members:
            m.kill9()


def test_kill_9_of_the_leader_fails_over_and_loses_no_acknowledged_write(trio: list[Member]) -> None:
    old = leader(trio)
    writer = next(m for m in trio if m is not old)
    acked = [t for i in range(20) for t in [f"a{i}"] if writer.write(t)]
    # Idle past connectionTimeout (2 s): without peer pings the followers' link is stale now and the
    # first vote request after the leader dies would be dropped (notes defect 1).
    time.sleep(2.3)
    old.kill9()
    killed_at = time.monotonic()
    failover = None
    for i in itertools.count():
        try:
            writer.write(f"f{i}", timeout=3.0)
            acked.append(f"f{i}")
            failover = time.monotonic() - killed_at
            break
        except MemberError as exc:  # a hang guard; how fast it fails over is bench/raft_failover.py's figure
            assert time.monotonic() - killed_at < 60, exc
    assert failover is not None
    survivors = [m for m in trio if m is not old]
    new = leader(survivors)
    assert new.call("status")["epoch"] > 1
    for m in survivors:
        assert set(acked) <= set(m.ids())
    old.start()  # same data dir: catches up
    deadline = time.monotonic() + 5
    while set(old.ids()) != set(new.ids()):
        assert time.monotonic() < deadline, "the restarted member did not catch up"
        time.sleep(0.05)
    assert set(acked) <= set(old.ids())


def test_a_minority_member_says_no_quorum_and_still_reads(trio: list[Member]) -> None:
    writer = next(m for m in trio if not m.call("status")["leading"])
    leader(trio)
    writer.write("before")
    for m in trio:
        if m is not writer:
            m.kill9()
    t0 = time.monotonic()
    with pytest.raises(MemberError) as err:
        writer.write("alone", timeout=30.0)
    elapsed = time.monotonic() - t0
    assert err.value.error == "NoQuorum" and err.value.answer["status"] == 503
    assert err.value.answer["message"].startswith("no quorum")
    assert elapsed < 15, f"NoQuorum took {elapsed:.2f}s: waited out the deadline instead of detecting it"
    assert "before" in writer.ids()  # reads still answer
    status = writer.call("status")
    assert not status["has_quorum"] and not any(status["peer_status"].values())


def test_state_survives_a_kill_9_of_every_member(trio: list[Member]) -> None:
    first = leader(trio)
    acked = [f"r{i}" for i in range(30)]
    for m, t in zip(itertools.cycle(trio), acked, strict=False):
        m.write(t)
    first.write(*[f"batch{i}" for i in range(100)])
    epoch = first.call("status")["epoch"]
    for m in trio:
        m.kill9()
    for m in trio:
        m.start()
    new = leader(trio)
    assert new.call("status")["epoch"] > epoch
    index = new.write("after-restart")
    for m in trio:
        deadline = time.monotonic() + 5
        while m.call("status")["applied_index"] < index:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        have = set(m.ids())
        assert set(acked) <= have and {f"batch{i}" for i in range(100)} <= have and "after-restart" in have
