"""Which unused images to remove (pure): Docker-like `image prune` plus a size/age policy.

An image is a candidate when no task uses it. Candidates unused for longer than `max_age` go
first; then, while the store is above `max_bytes`, the least recently used candidates go.
Images a task uses are never chosen, even when that leaves the store above `max_bytes`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    id: str
    size: int
    last_used: float  # epoch seconds of the last pull or task start
    in_use: bool = False
    builtin: bool = False


@dataclass(frozen=True)
class Policy:
    max_bytes: int | None = None  # keep the store at or below this size
    max_age: float | None = None  # seconds an unused image may stay

    @property
    def active(self) -> bool:
        return self.max_bytes is not None or self.max_age is not None


def choose(images: Iterable[Candidate], policy: Policy, now: float, *, all_unused: bool = False) -> list[str]:
    """IDs to remove, oldest use first. `all_unused` is `shoal image prune -a`: every unused image."""
    images = list(images)
    removable = sorted((i for i in images if not i.in_use and not i.builtin), key=lambda i: (i.last_used, i.id))
    if all_unused:
        return [i.id for i in removable]
    chosen: list[str] = []
    if policy.max_age is not None:
        chosen += [i.id for i in removable if now - i.last_used > policy.max_age]
    if policy.max_bytes is not None:
        total = sum(i.size for i in images if i.id not in chosen)
        for image in removable:
            if total <= policy.max_bytes:
                break
            if image.id not in chosen:
                chosen.append(image.id)
                total -= image.size
    return chosen
