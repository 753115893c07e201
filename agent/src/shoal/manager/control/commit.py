"""Committing what a control call planned, re-planning when a precondition no longer holds."""

from __future__ import annotations

from collections.abc import Callable

from shoal.errors import VersionConflict
from shoal.store.changes import Change
from shoal.store.protocol import Store

ATTEMPTS = 5


async def commit_retrying(store: Store, plan: Callable[[], list[Change]], attempts: int = ATTEMPTS) -> int:
    """Plan (read, check, build the changes) and commit; when the batch's preconditions failed
    because something changed meanwhile, plan again from what is there now (which then answers
    the conflict with its own message, or goes through). Returns the commit's index."""
    for attempt in range(attempts):
        changes = plan()
        try:
            return await store.acommit(changes)
        except VersionConflict:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")
