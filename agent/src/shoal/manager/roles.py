"""Role manager (leader only): makes Raft membership follow each node's desired role.

Promotion is finished by the promoted node itself (it asks for a manager certificate, starts its
Raft replica, then asks the leader to add it), because a new member must be running before the
leader adds it. Demotion is done here: remove the member from Raft, then drop its ManagerStatus.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

from shoal.manager.leaderloop import LeaderLoop
from shoal.model.ids import now_rfc3339
from shoal.store.changes import Change
from shoal.store.protocol import RaftStore

log = logging.getLogger("shoal.roles")


def pending_demotions(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [n for n in nodes if n["Spec"].get("Role") == "worker" and "ManagerStatus" in n]


class RoleManager(LeaderLoop):
    name = "role-manager"
    failure_level = logging.WARNING

    def __init__(self, store: RaftStore, self_id: str, period: float) -> None:
        super().__init__(store)
        self.store: RaftStore = store
        self.self_id = self_id
        self.period = period

    def pause(self) -> float:
        return self.period / 2

    async def round(self) -> None:
        await self.reconcile()

    async def reconcile(self) -> None:
        for node in pending_demotions(self.store.list_shared("node")):  # read-only; copied below to change
            if node["ID"] == self.self_id:
                # the leader cannot remove itself: hand leadership over, the next leader demotes us
                log.info("demoting the leader: transferring leadership first")
                await asyncio.to_thread(self.store.transfer_leadership)
                return
            raft_addr = node["ManagerStatus"].get("RaftAddr")
            if raft_addr and raft_addr in self.store.members():
                log.info("removing %s (%s) from Raft membership", node["Description"]["Hostname"], raft_addr)
                await asyncio.to_thread(self.store.remove_member, raft_addr)
            updated = copy.deepcopy(node)
            updated.pop("ManagerStatus", None)
            updated["UpdatedAt"] = now_rfc3339()
            await self.store.acommit(
                [
                    Change(
                        op="update",
                        kind="node",
                        obj=updated,
                        obj_id=node["ID"],
                        expected_version=node["Version"]["Index"],
                    )
                ],
                epoch=self.epoch,
            )
