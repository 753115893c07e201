"""Status reports of many nodes are committed together, each node answered once its own are in."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shoal.errors import NoQuorum, Unavailable, VersionConflict
from shoal.manager import reportbatch
from shoal.manager.reportbatch import ReportBatcher
from shoal.store.changes import Change


class Log:
    """acommit records each entry after `latency`; fails as told by `fail(entry)` (None: commits)."""

    def __init__(self, latency: float = 0.02, fail: Any = None) -> None:
        self.latency = latency
        self.fail = fail
        self.entries: list[list[str | None]] = []
        self.tried = 0

    async def acommit(self, changes: list[Change], **_: Any) -> int:
        self.tried += 1
        await asyncio.sleep(self.latency)
        exc = self.fail(changes) if self.fail else None
        if exc is not None:
            raise exc
        self.entries.append([c.obj_id for c in changes])
        return len(self.entries)


def changes_of(node_id: str, reports: list[dict[str, Any]]) -> list[Change]:
    return [Change(op="update", kind="task", obj={"ID": r["ID"], "Node": node_id}, obj_id=r["ID"]) for r in reports]


def run(store: Log, calls: list[tuple[str, list[dict[str, Any]]]]) -> list[Any]:
    async def main() -> list[Any]:
        b = ReportBatcher(store, changes_of, asyncio.get_running_loop())  # type: ignore[arg-type]
        return await asyncio.gather(*(b.submit(n, r) for n, r in calls), return_exceptions=True)

    return asyncio.run(main())


def test_reports_of_many_nodes_arriving_together_are_one_entry() -> None:
    store = Log()
    calls = [(f"n{i}", [{"ID": f"t{i}a"}, {"ID": f"t{i}b"}]) for i in range(50)]
    assert run(store, calls) == [2] * 50
    assert len(store.entries) == 1
    assert sorted(store.entries[0]) == sorted(f"t{i}{x}" for i in range(50) for x in "ab")


def test_an_entry_holds_at_most_its_share_and_the_rest_follow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reportbatch, "CHANGES_PER_ENTRY", 10)
    store = Log()
    assert run(store, [(f"n{i}", [{"ID": f"t{i}"}]) for i in range(35)]) == [1] * 35
    assert [len(e) for e in store.entries] == [10, 10, 10, 5]


def test_two_reports_of_one_task_never_share_an_entry() -> None:
    store = Log()
    assert run(store, [("n1", [{"ID": "t1"}]), ("n1", [{"ID": "t1"}, {"ID": "t2"}])]) == [1, 2]
    assert store.entries == [["t1"], ["t1", "t2"]]


def test_a_lost_entry_fails_every_report_in_it_with_its_error() -> None:
    store = Log(fail=lambda changes: NoQuorum("no leader with a majority"))
    results = run(store, [("n1", [{"ID": "t1"}]), ("n2", [{"ID": "t2"}])])
    assert all(isinstance(r, NoQuorum) for r in results)
    assert store.entries == []


def test_a_conflict_reads_the_reports_again_and_one_that_keeps_conflicting_is_a_503() -> None:
    conflicts = {"t1": 1, "t2": 99}  # t1's task changed once meanwhile; t2's keeps changing

    def fail(changes: list[Change]) -> Exception | None:
        for c in changes:
            if conflicts.get(str(c.obj_id), 0) > 0:
                conflicts[str(c.obj_id)] -= 1
                return VersionConflict(f"{c.obj_id} changed")
        return None

    store = Log(fail=fail)
    results = run(store, [("n1", [{"ID": "t1"}]), ("n2", [{"ID": "t2"}])])
    assert isinstance(results[1], Unavailable) and "kept changing" in str(results[1])
    assert results[0] == 1
    assert ["t1"] in store.entries or any("t1" in e for e in store.entries)
    assert not any("t2" in e for e in store.entries)


def test_a_report_that_changes_nothing_is_answered_without_an_entry() -> None:
    store = Log()

    def nothing(node_id: str, reports: list[dict[str, Any]]) -> list[Change]:
        return []

    async def main() -> int:
        return await ReportBatcher(store, nothing, asyncio.get_running_loop()).submit("n1", [{"ID": "t1"}])  # type: ignore[arg-type]

    assert asyncio.run(main()) == 0
    assert store.tried == 0
