"""The node (`Agent`): the init and join transitions on top of its parts (base.py), role changes
(roles.py) and leaving (leave.py)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING, Any

from shoal import hostinfo, tls
from shoal.agent import credentials
from shoal.agent.addresses import resolve_addresses
from shoal.agent.base import ALREADY_IN_SWARM
from shoal.agent.join import parse_join_request, request_certificate
from shoal.agent.leave import Leaving
from shoal.agent.roles import RoleChanges
from shoal.errors import Unavailable
from shoal.identity import Identity, wipe
from shoal.manager import tokens
from shoal.model.ids import new_id
from shoal.model.objects import default_swarm_spec
from shoal.model.validate import validate_swarm_spec
from shoal.store.atrest import keywrap

if TYPE_CHECKING:
    from shoal.manager.manager import ManagerRole

log = logging.getLogger("shoal.agent")


class Agent(RoleChanges, Leaving):
    # ---- init
    async def init_swarm(self, body: dict[str, Any]) -> str:
        async with self._lock:
            if self.identity is not None:
                raise Unavailable(ALREADY_IN_SWARM)
            addrs = await resolve_addresses(body, self.cfg)
            spec = validate_swarm_spec(body.get("Spec") or {}, default_swarm_spec())
            pool = body.get("DefaultAddrPool") or ["10.0.0.0/8"]
            subnet_size = int(body.get("SubnetSize") or 24)
            ident = Identity(
                node_id=new_id(),
                cluster_id=new_id(),
                role="manager",
                advertise_ip=addrs.advertise_ip,
                cluster_port=addrs.cluster_port,
                raft_port=self.cfg.raft_port,
                listen_addr=addrs.listen_addr,
                managers=[f"{addrs.advertise_ip}:{addrs.cluster_port}"],
                raft_password=secrets.token_hex(32),
            )
            from shoal.manager import ca  # the first manager issues certificates: it needs cryptography

            # autolock: the keys are wrapped from their first write (the KEK is never on disk)
            kek = keywrap.new_unlock_key() if spec["EncryptionConfig"]["AutoLockManagers"] else None
            self.kek = kek
            root = ca.RootCA.create()
            key_pem, csr_pem = await asyncio.to_thread(tls.new_key_and_csr)
            cert_pem = root.issue(csr_pem, ident.node_id, "manager", ident.cluster_id, ips=[addrs.advertise_ip])
            creds = credentials.save(self.cfg.data_dir, root.cert_pem, cert_pem, key_pem, kek=kek)
            self.identity = ident  # the cluster server needs it while the manager starts
            try:
                await self._use_credentials(creds)
                await self._start_manager(ident, peers=[])
                assert self.manager is not None
                await self._wait_leader(self.manager, 10.0)
                desc = hostinfo.description()
                changes = type(self.manager).initial_objects(
                    cluster_id=ident.cluster_id,
                    node_id=ident.node_id,
                    hostname=desc["Hostname"],
                    advertise_ip=addrs.advertise_ip,
                    cluster_port=addrs.cluster_port,
                    raft_addr=ident.raft_addr,
                    root=root,
                    spec=spec,
                    default_addr_pool=pool,
                    subnet_size=subnet_size,
                    description=desc,
                    unlock_key=keywrap.format_unlock_key(kek) if kek else "",
                )
                await self.manager.store.acommit(changes, timeout=5.0)
            except BaseException:
                await self.stop()
                wipe(self.cfg.data_dir)
                self.identity = None
                self.kek = None
                raise
            ident.save(self.cfg.data_dir)
            self._start_session(ident)
            log.info("swarm initialized: node %s is the first manager of cluster %s", ident.node_id, ident.cluster_id)
            return ident.node_id

    @staticmethod
    async def _wait_leader(manager: ManagerRole, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not manager.store.is_leader():
            if loop.time() > deadline:
                raise Unavailable("the Raft replica did not become leader in time")
            await asyncio.sleep(0.02)

    # ---- join (the protocol itself is join.py)
    async def join_swarm(self, body: dict[str, Any]) -> None:
        async with self._lock:
            req = parse_join_request(body)
            if self.identity is not None:
                if tokens.ca_digest(credentials.read_ca(self.cfg.data_dir)) != req.ca_digest:
                    raise Unavailable(
                        f"{ALREADY_IN_SWARM} (this node is in cluster {self.identity.cluster_id}, and the token "
                        "belongs to a different cluster)"
                    )
                raise Unavailable(ALREADY_IN_SWARM)
            addrs = await resolve_addresses(body, self.cfg)
            ca_pem, key_pem, grant = await request_certificate(
                req, addrs.advertise_ip, addrs.cluster_port, self.cfg.raft_port
            )
            ident = Identity(
                node_id=grant["NodeID"],
                cluster_id=grant["ClusterID"],
                role="worker",
                advertise_ip=addrs.advertise_ip,
                cluster_port=addrs.cluster_port,
                raft_port=self.cfg.raft_port,
                listen_addr=addrs.listen_addr,
                managers=grant.get("Managers") or req.remotes,
            )
            creds = credentials.save(self.cfg.data_dir, ca_pem, grant["Certificate"], key_pem, kek=None)
            ident.save(self.cfg.data_dir)
            self.identity = ident
            await self._use_credentials(creds)
            if grant["Role"] == "manager":
                await self._become_manager(grant, key_pem)
            self._start_session(ident)
            log.info("joined cluster %s as a %s (node %s)", ident.cluster_id, grant["Role"], ident.node_id)
