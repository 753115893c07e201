"""`network rm` against a concurrent `service create` that uses the network: whichever commits second
fails, so a network in use is never removed (control calls over the real state machine, no Raft)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

import pytest

from shoal.errors import Conflict, NotFound
from shoal.manager.control import networks, services
from shoal.manager.control.commit import commit_retrying
from shoal.store.changes import Change
from shoal.store.errors import BY_NAME, StoreError
from shoal.store.state import StoreState

WEB = {"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": "shoal/host"}, "Networks": [{"Target": "backend"}]}}


class StateStore:
    """The store's reads and batches over the replicated state machine, in one process.
    `meanwhile` runs once, just before the next commit: a write that lands between a read and a commit."""

    def __init__(self) -> None:
        self.state = StoreState()
        self.index = 1
        self.meanwhile: Callable[[], None] | None = None

    def get(self, kind: str, obj_id: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.state.objects[kind].get(obj_id))

    def list(self, kind: str) -> list[dict[str, Any]]:
        return copy.deepcopy(list(self.state.objects[kind].values()))

    def list_shared(self, kind: str) -> list[dict[str, Any]]:
        return list(self.state.objects[kind].values())

    def read_shared(self, kinds: tuple[str, ...]) -> tuple[int, dict[str, list[dict[str, Any]]]]:
        return self.index, {kind: self.list_shared(kind) for kind in kinds}

    def find_by_name(self, kind: str, name: str) -> dict[str, Any] | None:
        return next((o for o in self.list(kind) if o["Spec"].get("Name") == name), None)

    def commit(self, changes: list[Change], timeout: float = 2.0, **_: Any) -> int:
        if self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()
        self.index += 1
        outcome, _events = self.state.apply_batch(self.index, f"r{self.index}", [c.to_wire() for c in changes], None)
        if outcome[0] != "ok":
            raise BY_NAME.get(outcome[1], StoreError)(outcome[2])
        return self.index

    async def acommit(self, changes: list[Change], timeout: float = 2.0, **kw: Any) -> int:
        return self.commit(changes, timeout, **kw)


@pytest.fixture
def store() -> StateStore:
    s = StateStore()
    _, changes = networks.create(s, {"Name": "backend", "Driver": "overlay"})
    s.commit(changes)
    return s


def create_web(store: StateStore) -> None:
    _, changes = services.create(store, WEB)
    store.commit(changes)


def test_a_service_created_between_the_check_and_the_delete_keeps_its_network(store: StateStore) -> None:
    store.meanwhile = lambda: create_web(store)
    with pytest.raises(Conflict, match="network backend is in use by service web"):
        asyncio.run(commit_retrying(store, lambda: networks.remove(store, "backend")))
    assert [n["Spec"]["Name"] for n in store.list("network")] == ["backend"]
    assert [s["Spec"]["Name"] for s in store.list("service")] == ["web"]


def test_a_network_removed_between_resolve_and_create_fails_the_create(store: StateStore) -> None:
    _, changes = services.create(store, WEB)  # resolved "backend" to its ID
    asyncio.run(commit_retrying(store, lambda: networks.remove(store, "backend")))
    with pytest.raises(NotFound, match="not found"):
        store.commit(changes)
    assert store.list("service") == []


def test_an_unrelated_service_write_is_retried_through(store: StateStore) -> None:
    _, changes = services.create(store, {"Name": "other", "TaskTemplate": {"ContainerSpec": {"Image": "shoal/host"}}})
    store.meanwhile = lambda: store.commit(changes)  # makes the first remove's precondition fail
    asyncio.run(commit_retrying(store, lambda: networks.remove(store, "backend")))
    assert store.list("network") == []
