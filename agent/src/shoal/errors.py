"""shoal's one error vocabulary, at the bottom of the import graph (SwarmKit's `errdefs` shape).

Every layer raises these; only the API maps them to HTTP (`api/errors.py`: status + `{"message": ...}`,
DESIGN §7). Each class carries the status the API answers with, so a remote manager's answer can
be turned back into the same error (`ShoalError(message, status)`).

Store errors are also the values a replicated batch returns (by class name, see `store/state.py`),
so a batch that fails validation fails the same way on every replica and is never half-applied.
"""

from __future__ import annotations


class ShoalError(Exception):
    status: int = 500

    def __init__(self, message: str, status: int | None = None, *, outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        # True when a write may or may not have been applied (a timeout or a lost leader after
        # proposing): retry with the same request id, which the store applies at most once.
        self.outcome_unknown = outcome_unknown


class InvalidArgument(ShoalError, ValueError):
    """Bad input from the caller: 400."""

    status = 400


class SpecError(InvalidArgument):
    """A user-supplied spec or value is invalid (raised by the pure model helpers)."""


class Unauthorized(ShoalError):
    """401: a credential the caller gave is wrong (a swarm unlock key that does not open the keys)."""

    status = 401


class PermissionDenied(ShoalError):
    status = 403


class NotFound(ShoalError):
    status = 404


class Conflict(ShoalError):
    status = 409


class Unavailable(ShoalError):
    """503: no quorum, not a manager, node not part of a swarm."""

    status = 503


class NotManager(Unavailable):
    """The call needs a manager and this node is a worker (or not in a swarm)."""


# ---- the replicated store's failures (StoreError marks "the write did not go through")
class StoreError(ShoalError):
    pass


class InvalidChange(StoreError, InvalidArgument):
    """A malformed change (unknown kind or op, missing ID): a bug in the caller, never retried."""


class VersionConflict(StoreError, Conflict):
    """The object changed since the caller read it (Docker's "update out of sequence")."""


class NameConflict(StoreError, Conflict):
    pass


class AlreadyExists(StoreError, Conflict):
    """A create whose ID is taken (IDs are random, so in practice a retried create)."""


class Denied(StoreError, Conflict):
    """pysyncobj refused a membership change (another one is in flight, or it is already done)."""


class NoQuorum(StoreError, Unavailable):
    """This manager has no leader, or its leader cannot reach a majority. Reads still answer."""


class NotLeader(StoreError, Unavailable):
    pass


class StaleEpoch(NotLeader):
    """A write fenced with an epoch that is no longer current: a deposed leader's loop wrote it."""


class Timeout(StoreError, Unavailable):
    """No answer in time: the outcome is unknown."""

    def __init__(self, message: str) -> None:
        super().__init__(message, outcome_unknown=True)


class WatchLost(StoreError, Unavailable):
    """A subscriber fell too far behind and its events were dropped: re-list and subscribe again."""
