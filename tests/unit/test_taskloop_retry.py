"""A node whose polls or reports reach no manager backs off, with jitter: a fixed 0.5 s brought a
whole fleet back in step, each try a new TLS handshake for managers already behind."""

from __future__ import annotations

import random

from shoal.worker.taskloop import RETRY_FIRST, RETRY_MAX, retry_after


def test_waits_double_up_to_the_cap_and_are_spread_below_each_ceiling() -> None:
    rng = random.Random(7)
    for failures in range(1, 12):
        ceiling = min(RETRY_MAX, RETRY_FIRST * 2 ** (failures - 1))
        waits = [retry_after(failures, rng) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert max(waits) - min(waits) > ceiling / 4  # spread, not in step
    assert retry_after(1, random.Random(1)) <= RETRY_FIRST
    assert retry_after(30, random.Random(1)) <= RETRY_MAX
