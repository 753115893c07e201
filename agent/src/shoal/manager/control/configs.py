"""Config control calls: the secret calls (`secrets.py`) bound to configs, whose Data is shown."""

from __future__ import annotations

from typing import Any

from shoal.manager.control import secrets as calls
from shoal.manager.control.filters import Filters
from shoal.model.secret import CONFIG
from shoal.store.changes import Change
from shoal.store.protocol import StoreReader

Obj = dict[str, Any]


def create(store: StoreReader, body: Any) -> tuple[Obj, list[Change]]:
    return calls.create(store, CONFIG, body)


def update(store: StoreReader, ref: str, version: int, body: Any) -> list[Change]:
    return calls.update(store, CONFIG, ref, version, body)


def remove(store: StoreReader, ref: str) -> list[Change]:
    return calls.remove(store, CONFIG, ref)


def inspect(store: StoreReader, ref: str) -> Obj:
    return calls.inspect(store, CONFIG, ref)


def list_objects(store: StoreReader, filters: Filters) -> list[Obj]:
    return calls.list_objects(store, CONFIG, filters)
