"""Role changes: promotion to manager and demotion to worker, driven by the managers' answers.

Part of `Agent` (node.py), on top of its parts (base.py): the node learns its desired role from
each session answer, renews its certificate for that role, and starts or stops its manager side.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from typing import Any

from shoal import tls
from shoal.agent import credentials
from shoal.agent.autolock import Autolock, seal_password
from shoal.errors import ShoalError
from shoal.identity import KEY_DIR, raft_dir
from shoal.store.atrest import keywrap

log = logging.getLogger("shoal.agent")


def role_action(desired: str | None, local_role: str, raft_member: bool | None) -> str | None:
    """What a session answer asks of this node: promote, demote, rejoin, or nothing.

    rejoin: the managers want this node as a manager and it runs as one, but its node object has no
    ManagerStatus (RaftMember false): the leader has not recorded the join (a join call that timed out
    under a slow guest while the leader was adding the member). The join is idempotent on the leader.
    """
    if desired == "manager" and local_role == "worker":
        return "promote"
    if desired == "worker" and local_role == "manager" and not raft_member:
        return "demote"
    if desired == "manager" and local_role == "manager" and raft_member is False:
        return "rejoin"
    return None


class RoleChanges(Autolock):
    async def _become_manager(self, grant: dict[str, Any], key_pem: str | bytes) -> None:
        ident = self.require_swarm()
        if grant.get("UnlockKey"):  # an autolocked swarm: this manager's keys are wrapped from the start
            self.kek = keywrap.parse_unlock_key(grant["UnlockKey"])
        creds = credentials.save(
            self.cfg.data_dir, credentials.read_ca(self.cfg.data_dir), grant["Certificate"], key_pem, kek=self.kek
        )
        await self._use_credentials(creds)
        ident.role = "manager"
        ident.raft_password = grant["RaftPassword"]
        ident.raft_password_wrapped = seal_password(ident.raft_password, self.kek)
        ident.managers = grant.get("Managers") or ident.managers
        ident.raft_members = grant["RaftMembers"]
        ident.save(self.cfg.data_dir)
        # a new member must be running before the leader adds it (notes/raft.md)
        await self._start_manager(ident, peers=grant["RaftMembers"])
        await self._join_raft(ident)
        log.info("this node is now a manager (Raft member %s)", ident.raft_addr)

    async def _join_raft(self, ident: Any) -> None:
        await self.client().call_any(
            ident.managers,
            "POST",
            "/shoal/raft/join",
            {"RaftAddr": ident.raft_addr, "Addr": ident.cluster_addr},
            timeout=10.0,
        )

    async def _become_worker(self, grant: dict[str, Any], key_pem: str | bytes) -> None:
        ident = self.require_swarm()
        if self.manager:
            await self.manager.stop()
            self.manager = None

        shutil.rmtree(raft_dir(self.cfg.data_dir), ignore_errors=True)
        shutil.rmtree(self.cfg.data_dir / KEY_DIR, ignore_errors=True)  # the data key goes with its data
        self.kek = None  # workers are never locked (as in SwarmKit): the new key is written in clear
        creds = credentials.save(
            self.cfg.data_dir, credentials.read_ca(self.cfg.data_dir), grant["Certificate"], key_pem, kek=None
        )
        await self._use_credentials(creds)
        ident.role = "worker"
        ident.raft_password = ""
        ident.raft_password_wrapped = None
        ident.save(self.cfg.data_dir)
        log.info("this node is now a worker")

    async def _on_session_answer(self, answer: dict[str, Any]) -> None:
        ident = self.identity
        if ident is None:
            return
        if answer.get("Managers") and answer["Managers"] != ident.managers:
            ident.managers = answer["Managers"]
            ident.save(self.cfg.data_dir)
        if self._role_change and not self._role_change.done():
            return
        action = role_action(answer.get("Role"), ident.role, answer.get("RaftMember"))
        if action == "promote":
            self._role_change = asyncio.get_running_loop().create_task(self._change_role("manager"))
        elif action == "demote":
            self._role_change = asyncio.get_running_loop().create_task(self._change_role("worker"))
        elif action == "rejoin" and self.manager is not None:
            self._role_change = asyncio.get_running_loop().create_task(self._rejoin_raft())

    async def _rejoin_raft(self) -> None:
        """Ask the leader again to record this manager's Raft membership (idempotent there)."""
        ident = self.require_swarm()
        try:
            await self._join_raft(ident)
        except ShoalError as exc:
            log.warning("Raft membership not recorded yet: %s", exc.message)

    async def _renew(self) -> tuple[str | bytes, dict[str, Any]]:
        key_pem, csr_pem = await asyncio.to_thread(tls.new_key_and_csr)
        body = {"CSR": credentials.text(csr_pem)}
        _, grant = await self.client().call_any(self.manager_addrs(), "POST", "/shoal/renew", body)
        return key_pem, grant

    async def _change_role(self, want: str) -> None:
        """Renew the certificate for role `want`; once the managers grant it, become that role."""
        try:
            key_pem, grant = await self._renew()
            if grant["Role"] != want:
                return  # the managers changed their mind meanwhile: the next answer says what to do
            async with self._lock:
                if want == "manager":
                    await self._become_manager(grant, key_pem)
                else:
                    await self._become_worker(grant, key_pem)
        except ShoalError as exc:
            log.warning("change to %s not finished yet: %s", want, exc.message)
