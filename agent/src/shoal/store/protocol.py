"""The store as its users see it (typed seams: control calls and loops take these, not the class)."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from shoal.store.changes import Change
from shoal.store.watch import Notice, Subscription


class StoreReader(Protocol):
    """Local reads (may be stale; deep copies, but for `list_shared`)."""

    def get(self, kind: str, obj_id: str) -> dict[str, Any] | None: ...

    def list(self, kind: str) -> list[dict[str, Any]]: ...

    def list_shared(self, kind: str) -> list[dict[str, Any]]:
        """The stored objects, read-only (no copy): never modify what it returns."""
        ...

    def read_shared(self, kinds: tuple[str, ...]) -> tuple[int, dict[str, list[dict[str, Any]]]]:
        """`list_shared` of several kinds and the log index they are as of, read at one instant."""
        ...

    def get_shared(self, kind: str, obj_id: str) -> dict[str, Any] | None:
        """The stored object, read-only (no copy): never modify what it returns."""
        ...

    def find_by_name(self, kind: str, name: str) -> dict[str, Any] | None: ...


class Store(StoreReader, Protocol):
    """Reads, watches and all-or-nothing batches (`ReplicatedStore` is the one implementation)."""

    @property
    def epoch(self) -> int: ...

    @property
    def applied_index(self) -> int: ...

    def subscribe(
        self, loop: asyncio.AbstractEventLoop | None = None, kinds: frozenset[str] | None = None
    ) -> Subscription: ...

    def notice(self, loop: asyncio.AbstractEventLoop) -> Notice: ...

    def commit(
        self,
        changes: list[Change],
        timeout: float | None = None,
        *,
        request_id: str | None = None,
        epoch: int | None = None,
    ) -> int: ...

    async def acommit(
        self,
        changes: list[Change],
        timeout: float | None = None,
        *,
        request_id: str | None = None,
        epoch: int | None = None,
    ) -> int: ...


class RaftStore(Store, Protocol):
    """A Store that is also a Raft member: what the role manager changes membership with."""

    def members(self) -> list[str]: ...

    def is_leader(self) -> bool: ...

    def remove_member(self, addr: str, timeout: float = 5.0) -> None: ...

    def transfer_leadership(self, target: str | None = None, timeout: float = 2.0) -> str | None: ...
