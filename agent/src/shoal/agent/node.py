"""The node (`Agent`): the init and join transitions on top of its parts (base.py), role changes
(roles.py) and leaving (leave.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
from typing import TYPE_CHECKING, Any

from shoal import hostinfo, tls
from shoal.agent import credentials
from shoal.agent.addresses import resolve_addresses
from shoal.agent.autolock import seal_password
from shoal.agent.base import ALREADY_IN_SWARM
from shoal.agent.join import parse_join_request, request_certificate
from shoal.agent.leave import Leaving
from shoal.agent.renewal import Renewal
from shoal.errors import InvalidArgument, Unavailable
from shoal.identity import Identity, wipe
from shoal.manager import tokens
from shoal.model.ids import new_id
from shoal.model.objects import DATA_PATH_PORT, DEFAULT_ADDR_POOL, DEFAULT_SUBNET_SIZE, default_swarm_spec
from shoal.model.validate import validate_swarm_spec
from shoal.store.atrest import keywrap

if TYPE_CHECKING:
    from shoal.manager.manager import ManagerRole

log = logging.getLogger("shoal.agent")


def initial_root(spec: dict[str, Any]) -> Any:
    """The first root CA: the operator's (SigningCACert + SigningCAKey at init, as SwarmKit allows) or
    a new one. The key leaves the spec here: it is kept in the store's `meta/ca`, never in the spec."""
    from shoal.manager import ca  # the first manager issues certificates: it needs cryptography

    cfg = spec["CAConfig"]
    cert, key = cfg.get("SigningCACert"), cfg.pop("SigningCAKey", None)
    if not cert and not key:
        return ca.RootCA.create()
    if not (cert and key):
        raise InvalidArgument("CAConfig: give both SigningCACert and SigningCAKey (shoal has no external CA)")
    root = ca.RootCA.load(cert, key)  # CertError: a 400 that says what is wrong
    cfg["SigningCACert"] = root.cert_pem
    return root


class Agent(Renewal, Leaving):
    # ---- init
    async def init_swarm(self, body: dict[str, Any]) -> str:
        async with self._lock:
            if self.identity is not None:
                raise Unavailable(ALREADY_IN_SWARM)
            addrs = await resolve_addresses(body, self.cfg)
            spec = validate_swarm_spec(body.get("Spec") or {}, self.init_defaults())
            # checked by validate_init_request; its defaults when the body comes from elsewhere
            pool = body.get("DefaultAddrPool") or list(DEFAULT_ADDR_POOL)
            subnet_size = int(body.get("SubnetSize") or DEFAULT_SUBNET_SIZE)
            data_path_port = int(body.get("DataPathPort") or DATA_PATH_PORT)
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

            # autolock: the keys are wrapped from their first write (the KEK is never on disk)
            kek = keywrap.new_unlock_key() if spec["EncryptionConfig"]["AutoLockManagers"] else None
            self.kek = kek
            ident.raft_password_wrapped = seal_password(ident.raft_password, kek)
            root = initial_root(spec)
            key_pem, csr_pem = await asyncio.to_thread(tls.new_key_and_csr)
            expiry = dt.timedelta(seconds=spec["CAConfig"]["NodeCertExpiry"] / 1e9 * self.cfg.cert_expiry_scale)
            cert_pem = root.issue(
                csr_pem, ident.node_id, "manager", ident.cluster_id, ips=[addrs.advertise_ip], validity=expiry
            )
            creds = credentials.save(self.cfg.data_dir, root.cert_pem, cert_pem, key_pem, kek=kek)
            self.identity = ident  # the cluster server needs it while the manager starts
            try:
                await self._use_credentials(creds)
                await self._start_manager(ident, peers=[])
                assert self.manager is not None
                # a lone replica stands for election after its (scaled) election timeout; a slow
                # guest with a 5 s minimum waits up to 12 s, then needs time to win. Imported here:
                # store.config loads pysyncobj, which a worker never does (test_tls_lean)
                from shoal.store.config import RaftConfig

                longest = RaftConfig.longest_election(self.cfg.election_timeout)
                await self._wait_leader(self.manager, max(10.0, 3 * longest))
                desc = await asyncio.to_thread(hostinfo.description)  # probes the kernel once (net/xfrm.py)
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
                    data_path_port=data_path_port,
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

    def init_defaults(self) -> dict[str, Any]:
        """Docker's defaults, except that the heartbeat period a new cluster starts with is this
        agent's `heartbeat_period` (slow hosts, VMs) unless the request names one."""
        base = default_swarm_spec()
        base["Dispatcher"]["HeartbeatPeriod"] = round(self.cfg.heartbeat_period * 1e9)
        return base

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
            creds = credentials.save(
                self.cfg.data_dir, grant.get("CACertificate") or ca_pem, grant["Certificate"], key_pem, kek=None
            )
            ident.save(self.cfg.data_dir)
            self.identity = ident
            await self._use_credentials(creds)
            if grant["Role"] == "manager":
                await self._become_manager(grant, key_pem)
            self._start_session(ident)
            log.info("joined cluster %s as a %s (node %s)", ident.cluster_id, grant["Role"], ident.node_id)
