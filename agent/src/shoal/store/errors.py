"""Store errors. Each carries the HTTP status the API answers with (DESIGN §7) and a `.message`.

Errors are also the values a replicated batch returns (by class name, see `state.py`), so a batch
that fails validation fails the same way on every replica and is never half-applied.
"""

from __future__ import annotations


class StoreError(Exception):
    status: int = 500

    def __init__(self, message: str, *, outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.message = message
        # True when the write may or may not have been applied (a timeout or a lost leader after
        # proposing): retry with the same request id, which the store applies at most once.
        self.outcome_unknown = outcome_unknown


class InvalidChange(StoreError):
    """A malformed change (unknown kind or op, missing ID): a bug in the caller, never retried."""

    status = 400


class NotFound(StoreError):
    status = 404


class VersionConflict(StoreError):
    """The object changed since the caller read it (Docker's "update out of sequence")."""

    status = 409


class NameConflict(StoreError):
    status = 409


class AlreadyExists(StoreError):
    """A create whose ID is taken (IDs are random, so in practice a retried create)."""

    status = 409


class NoQuorum(StoreError):
    """This manager has no leader, or its leader cannot reach a majority. Reads still answer."""

    status = 503


class NotLeader(StoreError):
    status = 503


class StaleEpoch(NotLeader):
    """A write fenced with an epoch that is no longer current: a deposed leader's loop wrote it."""


class Timeout(StoreError):
    """No answer in time: the outcome is unknown."""

    status = 503

    def __init__(self, message: str) -> None:
        super().__init__(message, outcome_unknown=True)


class WatchLost(StoreError):
    """A subscriber fell too far behind and its events were dropped: re-list and subscribe again."""

    status = 503


# Name -> class, to turn the outcome a replicated batch returns back into an exception.
BY_NAME: dict[str, type[StoreError]] = {
    cls.__name__: cls
    for cls in (
        StoreError,
        InvalidChange,
        NotFound,
        VersionConflict,
        NameConflict,
        AlreadyExists,
        NoQuorum,
        NotLeader,
        StaleEpoch,
    )
}
