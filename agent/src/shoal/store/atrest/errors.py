"""The at-rest error, apart from the ciphers: the agent reads wrapped key files on every node,
and workers never load `cryptography` (tests/unit/test_tls_lean.py)."""

from __future__ import annotations

from shoal.errors import StoreError


class AtRestError(StoreError):
    """State on disk that this manager cannot read: wrong or missing key, tampered or foreign file.
    Never recovered from silently: a manager that started empty would rejoin as a blank voter."""
