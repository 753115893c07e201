"""Raft membership changes and leadership transfer, on top of pysyncobj's calls.

pysyncobj takes one membership change at a time (REQUEST_DENIED otherwise, also until a new
leader's no-op committed), answers on the tick thread, and applies a change to the leader's view
when it is *proposed*. So: retry denials until the timeout, and when the view already shows the
change, commit an empty batch after it to know the change itself is committed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from pysyncobj import FAIL_REASON, SyncObj

from shoal.store.changes import Change
from shoal.store.config import check_addr
from shoal.store.errors import Denied, InvalidChange, NotLeader, Timeout


class RaftMember(Protocol):
    """What these calls need of the replica (`ReplicatedStore` provides it)."""

    addr: str

    @property
    def raft(self) -> SyncObj | None: ...

    def members(self) -> list[str]: ...

    def leader(self) -> str | None: ...

    def commit(self, changes: list[Change], timeout: float = 2.0) -> int: ...

    def run_proposal(self, propose: Callable[..., None], timeout: float, **kw: Any) -> Any: ...

    def on_tick_thread(self, job: Callable[[], None]) -> None: ...


def change_membership(store: RaftMember, addr: str, add: bool, timeout: float) -> None:
    check_addr(addr, "member address")
    if not add and addr == store.addr:
        raise InvalidChange("a manager cannot remove itself from Raft: transfer leadership, ask another manager")
    sync = store.raft
    assert sync is not None
    change = sync.addNodeToCluster if add else sync.removeNodeFromCluster
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if (addr in store.members()) == add:
            store.commit([], timeout=max(0.1, remaining))  # barrier: the change before it is committed
            return
        try:
            store.run_proposal(partial(_with_callback, change, addr), remaining, decode=_none)
            return
        except Denied:
            if time.monotonic() >= deadline:
                raise Timeout(f"membership change of {addr} was refused until the timeout") from None
            time.sleep(0.05)  # another change (or the new leader's no-op) is still committing


def transfer_leadership(store: RaftMember, target: str | None, timeout: float) -> str | None:
    sync = store.raft
    assert sync is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sync._isLeader():
            leader = store.leader()
            if leader is not None and leader != store.addr:
                return leader
            raise NotLeader("only the leader can transfer leadership")
        answer: list[int] = []
        done = threading.Event()

        def callback(_res: Any, err: int, answer: list[int] = answer, done: threading.Event = done) -> None:
            answer.append(err)
            done.set()

        # pysyncobj's transferLeadership sends on the transport: only safe on the tick thread
        store.on_tick_thread(lambda: sync.transferLeadership(node=target, callback=callback))
        done.wait(max(0.0, deadline - time.monotonic()))
        if answer and answer[0] == FAIL_REASON.SUCCESS:
            while time.monotonic() < deadline:
                leader = store.leader()
                if not sync._isLeader() and leader not in (None, store.addr):
                    return leader
                time.sleep(0.01)
            break
        time.sleep(0.05)  # denied: the target is not caught up yet
    raise Timeout("leadership transfer did not complete in time")


def _with_callback(fn: Any, arg: Any, callback: Any) -> None:
    fn(arg, callback=callback)


def _none(_result: Any) -> None:
    return None
