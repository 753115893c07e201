"""The managers' log of network versions (manager/assignments.NetLog): what changed since the
version a node holds, at the cost of what changed rather than of whole networks."""

from __future__ import annotations

import random

import pytest

from shoal.manager import assignments
from shoal.manager.assignments import NetLog


def diff(old: dict[str, str], new: dict[str, str]) -> set[str]:
    return {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}


def test_changes_since_any_kept_version_cover_exactly_what_differs() -> None:
    rng = random.Random(3)
    log, items, seen = NetLog(), {f"k{i}": "v0" for i in range(50)}, {}
    for step in range(200):
        items = dict(items)
        for _ in range(rng.randint(1, 4)):
            key = f"k{rng.randrange(60)}"
            if rng.random() < 0.2:
                items.pop(key, None)
            else:
                items[key] = f"v{step}"
        version = f"d{hash(tuple(sorted(items.items())))}"
        log.add(version, items)
        seen[version] = items
    for version, held in seen.items():
        changed = log.changed_since(version)
        if changed is None:
            continue
        # everything that differs is named; what is named and unchanged only costs a resend
        assert diff(held, items) <= changed
    assert log.changed_since(next(reversed(log.versions))) == set()
    assert log.changed_since("never-sent") is None


def test_many_versions_sent_keep_a_node_that_is_behind_on_increments() -> None:
    """300 nodes each sent their own version while tasks start: a node holding one from a few
    hundred versions back still gets the changes, not the whole network."""
    log, items = NetLog(), {f"ep{i}": "addr" for i in range(9000)}
    log.add("v0", items)
    for step in range(1, 400):
        items = {**items, f"ep{9000 + step}": "addr"}
        log.add(f"v{step}", items)
    assert log.changed_since("v0") == {f"ep{9000 + s}" for s in range(1, 400)}


def test_the_log_is_bounded_by_versions_and_by_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assignments, "NET_HISTORY", 5)
    log = NetLog()
    for step in range(20):
        log.add(f"v{step}", {"a": str(step)})
    assert list(log.versions) == [f"v{s}" for s in range(15, 20)]
    assert log.changed_since("v3") is None and log.changed_since("v15") == {"a"}
    monkeypatch.setattr(assignments, "NET_HISTORY", 1024)
    monkeypatch.setattr(assignments, "NET_LOG_MIN_KEYS", 10)
    big = NetLog()
    for step in range(40):  # each version changes 4 of 4 keys: past 2 x 4 (min 10) logged keys, the oldest go
        big.add(f"w{step}", {k: str(step) for k in "abcd"})
    assert big.logged <= 10 + 4 and len(big.versions) < 40


def test_content_seen_again_moves_to_the_end_and_keeps_the_chain() -> None:
    log = NetLog()
    log.add("A", {"x": "1"})
    log.add("D", {"x": "1", "y": "2"})
    log.add("B", {"x": "3", "y": "2"})
    log.add("D", {"x": "1", "y": "2"})  # back to D's content
    assert list(log.versions) == ["A", "B", "D"]
    assert log.changed_since("A") >= {"y"}  # A -> D: y added (carried from D's old entry into B's)
    assert log.changed_since("B") == {"x"}
    assert log.changed_since("D") == set()
