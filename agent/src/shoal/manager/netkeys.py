"""The leader's network key manager (SwarmKit's manager/keymanager): keeps the ring of keys that
encrypted overlays use, and rotates it every period (`model/netkeys.py` has the schedule).

The ring lives in the `meta` object NETWORK_KEYS_ID of the Raft store (sealed at rest with the rest
of the store; never in GET /swarm, /info or any inspect output). Nodes get it with their assignments
(`manager/assignments.py`). Logs name keys by their Lamport time only.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from shoal.manager.leaderloop import LeaderLoop
from shoal.model import netkeys
from shoal.model.ids import now_rfc3339
from shoal.store.changes import Change
from shoal.store.protocol import Store, StoreReader

log = logging.getLogger("shoal.netkeys")

NETWORK_KEYS_ID = "network-keys"
CHECK_PERIOD = 1.0  # seconds between looks at the ring's age


def ring_of(store: StoreReader) -> list[dict[str, Any]]:
    meta = store.get("meta", NETWORK_KEYS_ID)
    return list((meta or {}).get("Keys") or [])


def key_change(meta: dict[str, Any] | None, now: float, period: float) -> Change | None:
    """The commit that creates or rotates the ring when it is due (pure apart from new keys)."""
    if meta is not None and not netkeys.due(meta.get("RotatedAt"), now, period):
        return None
    stamp = now_rfc3339()
    if meta is None:
        obj = {"ID": NETWORK_KEYS_ID, "Version": {"Index": 0}, "CreatedAt": stamp, "UpdatedAt": stamp}
        obj.update(Keys=netkeys.initial_ring(), RotatedAt=now)
        return Change(op="create", kind="meta", obj=obj)
    obj = {**meta, "UpdatedAt": stamp, "Keys": netkeys.rotated(meta.get("Keys") or []), "RotatedAt": now}
    return Change(op="update", kind="meta", obj=obj, obj_id=NETWORK_KEYS_ID, expected_version=meta["Version"]["Index"])


class NetworkKeyManager(LeaderLoop):
    name = "network-keys"

    def __init__(self, store: Store, period: float = netkeys.DEFAULT_ROTATION) -> None:
        super().__init__(store)
        self.period = period

    def pause(self) -> float:
        return min(CHECK_PERIOD, self.period / 4)

    async def round(self) -> bool:
        change = key_change(self.store.get("meta", NETWORK_KEYS_ID), time.time(), self.period)
        if change is None:
            return False
        await self.store.acommit([change], epoch=self.epoch)
        log.info("network encryption keys rotated: ring is now %s", netkeys.tags(change.obj["Keys"]))
        return True
