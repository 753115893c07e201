"""Waits before trying again, doubling and spread (jitter), for every node-to-manager retry."""

from __future__ import annotations

import random


def backoff(failures: int, first: float, ceiling: float, rng: random.Random | None = None) -> float:
    """Seconds before the next try after `failures` (at least 1) tries in a row failed: `first`,
    doubling, at most `ceiling`, each wait drawn between half and all of that. Without the spread a
    fleet that failed at one instant (its leader killed) comes back in step, every node at once at
    each doubling, and the managers meet it in bursts (SwarmKit's agent draws its session backoff
    at random too)."""
    top = min(ceiling, first * 2 ** (max(1, failures) - 1))
    return top * (0.5 + 0.5 * (rng or random).random())
