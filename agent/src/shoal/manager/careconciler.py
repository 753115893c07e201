"""The leader's CA reconciler (SwarmKit ca/reconciler.go): retires the old root once every node that
is not Down holds a certificate of the new one. The decision is `ca_rotation.pending_nodes`."""

from __future__ import annotations

import logging

from shoal.manager.control import ca_rotation
from shoal.manager.leaderloop import LeaderLoop
from shoal.model.ids import now_rfc3339
from shoal.store.protocol import Store

log = logging.getLogger("shoal.ca")

PERIOD = 1.0  # seconds between looks at the nodes while a rotation lasts


class CAReconciler(LeaderLoop):
    name = "ca-reconciler"

    def __init__(self, store: Store, cluster_id: str) -> None:
        super().__init__(store)
        self.cluster_id = cluster_id

    def pause(self) -> float:
        return PERIOD

    async def round(self) -> bool:
        """Finish the rotation if it is time; True when it was finished now."""
        meta = self.store.get("meta", ca_rotation.CA_META_ID)
        cluster = self.store.get("cluster", self.cluster_id)
        if meta is None or cluster is None or not meta.get("rotation"):
            return False
        pending = ca_rotation.pending_nodes(meta, self.store.list_shared("node"))
        if pending:
            return False
        await self.store.acommit(ca_rotation.finish(meta, cluster, now_rfc3339()), epoch=self.epoch)
        log.info("root CA rotation finished: every node holds a certificate of the new root; the old root is retired")
        return True
