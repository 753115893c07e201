"""The garbage collector's pauses timed, and the freeze / thaw schedule (shoal/gcpauses.py)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal import config, daemon, gcpauses
from shoal.metrics import REGISTRY


@pytest.fixture
def full() -> Iterator[gcpauses.FullCollections]:
    full = gcpauses.FullCollections(period=3600)
    full.take_over()
    yield full
    full.give_back()  # never leave this test process without its automatic full collections


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


def test_automatic_collections_stop_at_generation_1_and_come_back(full: gcpauses.FullCollections) -> None:
    assert gc.get_threshold()[2] == gcpauses.NEVER
    watch = gcpauses.PauseWatch()
    gc.callbacks.append(watch)
    try:
        for _ in range(20):  # enough young garbage for hundreds of young collections
            [cycle() for _ in range(20_000)]
    finally:
        gc.callbacks.remove(watch)
    generations = [g for g, _, _ in watch.drain()]
    assert 1 in generations and 2 not in generations, generations
    full.give_back()
    assert gc.get_threshold() == full.thresholds


def test_a_small_heap_keeps_cpythons_full_collections(
    full: gcpauses.FullCollections, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gcpauses, "FULL_FLOOR", sys.getallocatedblocks() * 10)
    full.last_full -= 3600  # due, were the heap big
    assert full.check() is False
    assert gc.get_threshold() == full.thresholds
    monkeypatch.setattr(gcpauses, "FULL_FLOOR", 1)
    full.check()
    assert gc.get_threshold()[2] == gcpauses.NEVER  # a big heap: the full ones are made here


def test_a_floor_of_0_takes_the_full_collections_over_whatever_the_heap(
    full: gcpauses.FullCollections, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The simulated fleet's choice: its heap is mostly big buffers, few allocator blocks."""
    monkeypatch.setattr(gcpauses, "FULL_FLOOR", sys.getallocatedblocks() * 10)
    full.floor = 0
    assert full.check() is True  # nothing made yet: the heap has grown from nothing
    assert gc.get_threshold()[2] == gcpauses.NEVER
    assert full.check() is False  # a period, or a step of growth, away


def test_a_full_collection_is_made_when_due_and_frees_old_cycles(
    full: gcpauses.FullCollections, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gcpauses, "FULL_FLOOR", 1)  # whatever this test process's heap
    kept = [cycle() for _ in range(1000)]
    gc.collect(1)
    gc.collect(1)  # the cycles are in the old generation now
    full.heap_after_full = sys.getallocatedblocks()  # (this test process's heap, whatever ran before)
    full.heap_after_thorough = full.heap_after_full
    assert full.check() is False  # neither the period nor the growth yet
    del kept  # 1,000 old cycles die: only a full collection can free them
    freed: list[int] = []

    def count_freed(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2:
            freed.append(info["collected"])

    full.last_full -= 3600  # the period has passed
    gc.callbacks.append(count_freed)
    try:
        assert full.check() is True
    finally:
        gc.callbacks.remove(count_freed)
    assert sum(freed) >= 2000  # two lists a cycle
    assert full.heap_after_full > 0
    assert full.check() is False  # and the next is a period away


def test_heap_growth_brings_the_full_collection_forward(full: gcpauses.FullCollections) -> None:
    kept = [[i] for i in range(gcpauses.FULL_FLOOR)]  # a heap past the floor
    assert full.check() is True  # the first one at once: it walks everything made until then
    assert full.check() is False  # the next one a step of growth (or a period) away
    more = [object() for _ in range(full.step // 2)]  # one allocator block each
    assert full.check() is False  # half a step
    more += [object() for _ in range(full.step)]
    assert full.check() is True  # past a step: brought forward
    assert full.check() is False
    del kept, more


def test_the_agent_setting_takes_0_or_a_sane_period(tmp_path: Path) -> None:
    path = tmp_path / "shoald.yml"
    assert config.load(None).gc_full_period == gcpauses.FULL_PERIOD
    for given, taken in (("0", 0.0), ("120", 120.0)):
        path.write_text(f"gc_full_period: {given}\n")
        assert config.load(path).gc_full_period == taken
    for bad in ("5", "-1", "soon"):
        path.write_text(f"gc_full_period: {bad}\n")
        with pytest.raises(config.ConfigError, match="gc_full_period"):
            config.load(path)
    args = daemon.build_parser().parse_args(["--gc-full-period", "0"])
    assert config.from_args(args).gc_full_period == 0.0


def test_period_0_leaves_full_collections_to_cpython(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gcpauses, "FULL_FLOOR", 1)  # a heap big enough to take them over
    thresholds = gc.get_threshold()

    async def briefly(full_period: float) -> tuple[int, int, int]:
        task = asyncio.get_running_loop().create_task(gcpauses.keep_pauses_short(full_period, period=0.01))
        await asyncio.sleep(0.05)
        during = gc.get_threshold()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return during

    assert asyncio.run(briefly(0)) == thresholds
    assert asyncio.run(briefly(600))[2] == gcpauses.NEVER
    assert gc.get_threshold() == thresholds and gcpauses.WATCH not in gc.callbacks


def test_what_survives_a_full_collection_is_frozen_and_its_cycles_wait_for_a_thorough_one(
    full: gcpauses.FullCollections, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A leader of 30,000 tasks was held 2.5 s by one full collection walking the whole store: the
    next one walks only what was made since; a cycle that dies among the frozen waits for growth."""
    monkeypatch.setattr(gcpauses, "FULL_FLOOR", 1)
    freed: list[int] = []

    def count_freed(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2:
            freed.append(info["collected"])

    kept = [cycle() for _ in range(1000)]
    full.last_full -= 3600
    assert full.check() is True
    assert gc.get_freeze_count() >= 2000  # the kept cycles are frozen
    assert len(gc.get_objects(generation=2)) < 2000  # and no collection walks them
    del kept  # dead cycles among frozen objects
    gc.callbacks.append(count_freed)
    try:
        full.last_full -= 3600
        assert full.check() is True and not full.thorough
        assert sum(freed) < 2000  # a full collection does not see them
        full.heap_after_thorough = 1  # the heap "grew" THOROUGH_GROWTH times: a thorough one
        full.last_full -= 3600
        assert full.check() is True and full.thorough
        assert sum(freed) >= 2000
    finally:
        gc.callbacks.remove(count_freed)
    assert gc.get_freeze_count() > 0
    full.give_back()
    assert gc.get_freeze_count() == 0  # CPython's own schedule walks everything again
