"""The garbage collector's pauses timed, and the freeze / thaw schedule (shoal/gcpauses.py)."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from shoal import gcpauses
from shoal.metrics import REGISTRY


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # never leave this test process with a frozen heap


def cycle() -> list[Any]:
    a: list[Any] = []
    b = [a]
    a.append(b)
    return a


def test_a_collection_is_timed_by_generation_and_recorded() -> None:
    watch = gcpauses.PauseWatch()
    gc.callbacks.append(watch)
    try:
        gc.collect(2)
        gc.collect(0)
    finally:
        gc.callbacks.remove(watch)
    done = watch.drain()
    assert [g for g, _, _ in done][-2:] == [2, 0]
    assert all(seconds >= 0 for _, seconds, _ in done)
    assert watch.drain() == []  # drained once

    def count() -> float:
        return REGISTRY.get_sample_value("shoal_gc_pause_seconds_count", {"generation": "2"}) or 0.0

    before = count()
    watch.done.append((2, 0.01, 3))
    gcpauses.record(watch)
    assert count() == before + 1


def test_a_long_collection_is_said(caplog: pytest.LogCaptureFixture) -> None:
    watch = gcpauses.PauseWatch()
    watch.done.extend([(2, gcpauses.LONG_PAUSE + 0.1, 7), (0, 0.001, 0)])
    caplog.set_level(logging.WARNING, logger="shoal.gc")
    gcpauses.record(watch)
    said = [r.getMessage() for r in caplog.records if r.name == "shoal.gc"]
    assert len(said) == 1 and "generation 2" in said[0] and "7 objects freed" in said[0], said


def test_a_freeze_keeps_live_objects_out_and_frees_what_died_young(unfrozen: None) -> None:
    freezer = gcpauses.Freezer(thaw_period=3600)
    cycle()  # garbage before the freeze: collected by it, not frozen
    kept = [cycle() for _ in range(100)]
    assert freezer.tick() == "freeze"
    frozen = gc.get_freeze_count()
    assert frozen >= 300  # the 100 cycles and the list holding them, at least
    assert gc.collect() == 0  # nothing of the above is walked again, and nothing died
    del kept[:50]  # 50 frozen cycles die: reference counting cannot free a cycle
    assert gc.collect() == 0  # frozen: out of the collector's reach until the thaw
    assert freezer.tick() == "freeze"


def test_a_thaw_frees_the_cycles_that_died_frozen(unfrozen: None) -> None:
    freezer = gcpauses.Freezer(thaw_period=3600)
    kept = [cycle() for _ in range(100)]
    freezer.tick()
    del kept
    freezer.last_thaw -= 3600  # the thaw period has passed
    freed: list[int] = []

    def count_freed(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop":
            freed.append(info["collected"])

    gc.callbacks.append(count_freed)
    try:
        assert freezer.tick() == "thaw"
    finally:
        gc.callbacks.remove(count_freed)
    assert sum(freed) >= 200  # the 100 dead cycles, two lists each
    assert freezer.frozen_after_thaw > 0  # the live heap, frozen again


def test_growth_brings_the_thaw_forward(unfrozen: None) -> None:
    freezer = gcpauses.Freezer(thaw_period=3600, growth=1.0)
    freezer.frozen_after_thaw = 1
    gcpauses_floor = gcpauses.THAW_FLOOR
    kept = [[[i]] for i in range(gcpauses_floor)]  # lists are tracked: a heap past the floor
    assert freezer.tick() == "freeze"  # (nothing was frozen before it)
    assert freezer.tick() == "thaw"
    del kept
