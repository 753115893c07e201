"""The node: inactive, worker or manager; init, join, leave, promote and demote transitions."""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoal import hostinfo, tls
from shoal.api.errors import APIError, BadRequest, Unavailable
from shoal.clusterclient import ClusterClient
from shoal.config import Config
from shoal.identity import Identity, cert_dir, raft_dir, wipe
from shoal.manager import tokens
from shoal.model.ids import new_id
from shoal.model.objects import default_swarm_spec, split_addr
from shoal.model.validate import validate_swarm_spec
from shoal.runtime.images import ImageStore
from shoal.worker.executor import Executor
from shoal.worker.session import Session
from shoal.worker.taskloop import TaskLoop

if TYPE_CHECKING:  # the manager side (Raft, orchestrator, CA) is imported when the node becomes one
    from shoal.manager.manager import ManagerRole

log = logging.getLogger("shoal.agent")

NOT_IN_SWARM = 'This node is not part of a swarm. Use "shoal swarm init" or "shoal swarm join" first.'
ALREADY_IN_SWARM = (
    'This node is already part of a swarm. Use "shoal swarm leave" to leave this swarm and join another one.'
)
NOT_A_MANAGER = (
    "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. "
    "Please run this command on a manager node or promote the current node to a manager."
)


class Agent:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.identity: Identity | None = Identity.load(cfg.data_dir)
        self.manager: ManagerRole | None = None
        self.session: Session | None = None
        self.server_ctx: ssl.SSLContext | None = None
        self.client_ctx: ssl.SSLContext | None = None
        self.cluster_server: Any = None  # set by the daemon: starts/stops the TLS cluster API
        self._lock = asyncio.Lock()
        self._role_change: asyncio.Task[None] | None = None
        self.driver = make_driver(cfg)
        self.executor = Executor(self.driver)
        self.tasks: TaskLoop | None = None
        self.netagent: Any = None
        self.error: str | None = None

    # ---- state
    @property
    def state(self) -> str:
        if self.identity is None:
            return "inactive"
        return "error" if self.error else "active"

    def require_swarm(self) -> Identity:
        if self.identity is None:
            raise Unavailable(NOT_IN_SWARM)
        return self.identity

    def require_manager(self) -> ManagerRole:
        self.require_swarm()
        if self.manager is None:
            raise Unavailable(NOT_A_MANAGER)
        return self.manager

    def client(self) -> ClusterClient:
        if self.client_ctx is None:
            raise Unavailable(NOT_IN_SWARM)
        return ClusterClient(self.client_ctx)

    def manager_addrs(self) -> list[str]:
        if self.manager is not None:
            addrs = self.manager.manager_addrs()
            if addrs:
                return addrs
        return list(self.identity.managers) if self.identity else []

    def _is_leader(self) -> bool:
        return self.manager is not None and self.manager.store.is_leader()

    def _start_tasks(self) -> None:
        if self.tasks is None:
            self._start_networking()
            self.tasks = TaskLoop(
                self.executor, self.client, self.manager_addrs, lambda: self.session.leader if self.session else None
            )
            self.tasks.netagent = self.netagent
            self.tasks.start()

    def _start_networking(self) -> None:
        """Overlays, load balancing, the routing mesh and DNS need this node's underlay address."""
        ident = self.identity
        if self.netagent is not None or ident is None:
            return
        from shoal.worker.netagent import NetAgent

        try:
            from shoal.net.dataplane import Dataplane
            from shoal.net.dns import EmbeddedDNS

            dns = EmbeddedDNS(upstreams=list(self.cfg.upstream_dns))
            self.netagent = NetAgent(Dataplane(ident.advertise_ip), dns, self.driver)
        except Exception as exc:  # tasks still run (loopback only), and the node says why
            log.error("networking is unavailable on this node: %s", exc)
            self.error = f"networking unavailable: {exc}"
            return
        self.executor.hooks = self.netagent

    def _start_session(self, ident: Identity) -> None:
        self._start_tasks()
        self.session = Session(
            self.client,
            self.manager_addrs,
            ident.cluster_addr,
            self.cfg.heartbeat_period,
            self._on_session_answer,
            self._is_leader,
        )
        self.session.start()

    # ---- start / stop
    async def start(self) -> None:
        await self.executor.adopt()  # tasks that ran before a restart keep running
        if self.identity is not None:
            await self._activate()

    async def stop(self) -> None:
        if self.session:
            await self.session.stop()
            self.session = None
        if self.tasks:
            await self.tasks.stop()
            self.tasks = None
        if self.manager:
            await self.manager.stop()
            self.manager = None
        if self.cluster_server:
            await self.cluster_server.stop()

    async def _activate(self) -> None:
        ident = self.require_swarm()
        certs = cert_dir(self.cfg.data_dir)
        ca_pem = (certs / tls.CA_CERT_FILE).read_bytes()
        cert_pem = (certs / tls.NODE_CERT_FILE).read_bytes()
        key_pem = (certs / tls.NODE_KEY_FILE).read_bytes()
        await self._use_credentials(ca_pem, cert_pem, key_pem)
        if ident.role == "manager":
            await self._start_manager(ident, peers=ident.raft_members)
        self._start_session(ident)

    async def _start_manager(self, ident: Identity, peers: list[str]) -> None:
        from shoal.manager.manager import ManagerRole

        # after a restart the journal replays later membership changes on top of these peers
        self.manager = ManagerRole(
            node_id=ident.node_id,
            cluster_id=ident.cluster_id,
            raft_addr=ident.raft_addr,
            peers=peers,
            raft_dir=raft_dir(self.cfg.data_dir),
            raft_password=ident.raft_password,
            heartbeat_period=self.cfg.heartbeat_period,
            on_members_changed=self._save_members,
        )
        await self.manager.start()

    async def _use_credentials(self, ca_pem: str | bytes, cert_pem: str | bytes, key_pem: str | bytes) -> None:
        """TLS contexts from the node's certificate; the cluster port (every node serves it: managers the
        cluster API, every node its own task logs) restarts with the new certificate."""
        self.server_ctx = tls.server_context(cert_pem, key_pem, ca_pem)
        self.client_ctx = tls.client_context(ca_pem, cert_pem, key_pem)
        if self.cluster_server:
            await self.cluster_server.stop()
            await self.cluster_server.start()

    def _save_members(self, members: list[str]) -> None:
        # a restarted manager needs its last known peers (pysyncobj does not keep them): save at once
        ident = self.identity
        if ident is not None and ident.role == "manager" and members and members != ident.raft_members:
            ident.raft_members = members
            ident.save(self.cfg.data_dir)

    # ---- init
    async def init_swarm(self, body: dict[str, Any]) -> str:
        async with self._lock:
            if self.identity is not None:
                raise Unavailable(ALREADY_IN_SWARM)
            advertise_ip = await asyncio.to_thread(
                hostinfo.resolve_advertise, body.get("AdvertiseAddr") or self.cfg.advertise_addr
            )
            listen_addr = body.get("ListenAddr") or self.cfg.listen_addr
            _, listen_port = split_addr(listen_addr)
            cluster_port = listen_port or self.cfg.cluster_port
            spec = validate_swarm_spec(body.get("Spec") or {}, default_swarm_spec())
            pool = body.get("DefaultAddrPool") or ["10.0.0.0/8"]
            subnet_size = int(body.get("SubnetSize") or 24)
            ident = Identity(
                node_id=new_id(),
                cluster_id=new_id(),
                role="manager",
                advertise_ip=advertise_ip,
                cluster_port=cluster_port,
                raft_port=self.cfg.raft_port,
                listen_addr=listen_addr,
                managers=[f"{advertise_ip}:{cluster_port}"],
                raft_password=secrets.token_hex(32),
            )
            from shoal.manager import ca  # the first manager issues certificates: it needs cryptography

            root = ca.RootCA.create()
            key_pem, csr_pem = await asyncio.to_thread(tls.new_key_and_csr)
            cert_pem = root.issue(csr_pem, ident.node_id, "manager", ident.cluster_id, ips=[advertise_ip])
            tls.write_node_files(cert_dir(self.cfg.data_dir), root.cert_pem, cert_pem, key_pem)
            self.identity = ident  # the cluster server needs it while the manager starts
            try:
                await self._use_credentials(root.cert_pem, cert_pem, key_pem)
                await self._start_manager(ident, peers=[])
                assert self.manager is not None
                await self._wait_leader(self.manager, 10.0)
                desc = hostinfo.description()
                changes = type(self.manager).initial_objects(
                    cluster_id=ident.cluster_id,
                    node_id=ident.node_id,
                    hostname=desc["Hostname"],
                    advertise_ip=advertise_ip,
                    cluster_port=cluster_port,
                    raft_addr=ident.raft_addr,
                    root=root,
                    spec=spec,
                    default_addr_pool=pool,
                    subnet_size=subnet_size,
                    description=desc,
                )
                await self.manager.store.acommit(changes, timeout=5.0)
            except BaseException:
                await self.stop()
                wipe(self.cfg.data_dir)
                self.identity = None
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

    # ---- join
    async def join_swarm(self, body: dict[str, Any]) -> None:
        async with self._lock:
            token = body.get("JoinToken")
            remotes = body.get("RemoteAddrs")
            if not isinstance(token, str) or not token:
                raise BadRequest("a join token is required (--token)")
            if not isinstance(remotes, list) or not remotes or not all(isinstance(r, str) for r in remotes):
                raise BadRequest("at least one remote manager address is required (HOST:PORT)")
            try:
                digest, _ = tokens.parse_join_token(token)
            except tokens.TokenError as exc:
                raise BadRequest(str(exc)) from exc
            if self.identity is not None:
                root_pem = (cert_dir(self.cfg.data_dir) / tls.CA_CERT_FILE).read_bytes()
                if tokens.ca_digest(root_pem) != digest:
                    raise Unavailable(
                        f"{ALREADY_IN_SWARM} (this node is in cluster {self.identity.cluster_id}, and the token "
                        "belongs to a different cluster)"
                    )
                raise Unavailable(ALREADY_IN_SWARM)
            remotes = [r if ":" in r else f"{r}:2377" for r in remotes]
            advertise_ip = await asyncio.to_thread(
                hostinfo.resolve_advertise, body.get("AdvertiseAddr") or self.cfg.advertise_addr
            )
            listen_addr = body.get("ListenAddr") or self.cfg.listen_addr
            _, listen_port = split_addr(listen_addr)
            cluster_port = listen_port or self.cfg.cluster_port
            # 1. fetch the CA over an unauthenticated channel and pin it against the token's digest
            _, answer = await ClusterClient(tls.bootstrap_client_context()).call_any(remotes, "GET", "/shoal/ca")
            ca_pem = answer["CACertificate"].encode()
            try:
                tokens.verify_ca_digest(ca_pem, token)
            except tokens.TokenError as exc:
                raise BadRequest(str(exc)) from exc
            # 2. certificate request, authenticated by the token, over TLS verified against the pinned CA
            key_pem, csr_pem = await asyncio.to_thread(tls.new_key_and_csr)
            desc = hostinfo.description()
            pinned = ClusterClient(tls.client_context(ca_pem))
            _, grant = await pinned.call_any(
                remotes,
                "POST",
                "/shoal/join",
                {
                    "Token": token,
                    "CSR": _text(csr_pem),
                    "Hostname": desc["Hostname"],
                    "AdvertiseIP": advertise_ip,
                    "ClusterPort": cluster_port,
                    "RaftPort": self.cfg.raft_port,
                    "Description": desc,
                },
                timeout=10.0,
            )
            ident = Identity(
                node_id=grant["NodeID"],
                cluster_id=grant["ClusterID"],
                role="worker",
                advertise_ip=advertise_ip,
                cluster_port=cluster_port,
                raft_port=self.cfg.raft_port,
                listen_addr=listen_addr,
                managers=grant.get("Managers") or remotes,
            )
            tls.write_node_files(cert_dir(self.cfg.data_dir), ca_pem, grant["Certificate"].encode(), key_pem)
            ident.save(self.cfg.data_dir)
            self.identity = ident
            await self._use_credentials(ca_pem, grant["Certificate"].encode(), key_pem)
            if grant["Role"] == "manager":
                await self._become_manager(grant, key_pem)
            self._start_session(ident)
            log.info("joined cluster %s as a %s (node %s)", ident.cluster_id, grant["Role"], ident.node_id)

    # ---- role changes
    async def _become_manager(self, grant: dict[str, Any], key_pem: str | bytes) -> None:
        ident = self.require_swarm()
        certs = cert_dir(self.cfg.data_dir)
        ca_pem = (certs / tls.CA_CERT_FILE).read_bytes()
        cert_pem = grant["Certificate"].encode()
        tls.write_node_files(certs, ca_pem, cert_pem, key_pem)
        await self._use_credentials(ca_pem, cert_pem, key_pem)
        ident.role = "manager"
        ident.raft_password = grant["RaftPassword"]
        ident.managers = grant.get("Managers") or ident.managers
        ident.raft_members = grant["RaftMembers"]
        ident.save(self.cfg.data_dir)
        # a new member must be running before the leader adds it (notes/raft.md)
        await self._start_manager(ident, peers=grant["RaftMembers"])
        await self.client().call_any(
            ident.managers,
            "POST",
            "/shoal/raft/join",
            {"RaftAddr": ident.raft_addr, "Addr": ident.cluster_addr},
            timeout=10.0,
        )
        log.info("this node is now a manager (Raft member %s)", ident.raft_addr)

    async def _become_worker(self, key_pem: str | bytes, grant: dict[str, Any]) -> None:
        ident = self.require_swarm()
        if self.manager:
            await self.manager.stop()
            self.manager = None

        shutil.rmtree(raft_dir(self.cfg.data_dir), ignore_errors=True)
        certs = cert_dir(self.cfg.data_dir)
        ca_pem = (certs / tls.CA_CERT_FILE).read_bytes()
        tls.write_node_files(certs, ca_pem, grant["Certificate"].encode(), key_pem)
        await self._use_credentials(ca_pem, grant["Certificate"].encode(), key_pem)
        ident.role = "worker"
        ident.raft_password = ""
        ident.save(self.cfg.data_dir)
        log.info("this node is now a worker")

    async def _on_session_answer(self, answer: dict[str, Any]) -> None:
        ident = self.identity
        if ident is None:
            return
        if answer.get("Managers") and answer["Managers"] != ident.managers:
            ident.managers = answer["Managers"]
            ident.save(self.cfg.data_dir)
        desired = answer.get("Role")
        member = answer.get("RaftMember", False)
        if self._role_change and not self._role_change.done():
            return
        if desired == "manager" and ident.role == "worker":
            self._role_change = asyncio.get_running_loop().create_task(self._promote())
        elif desired == "worker" and ident.role == "manager" and not member:
            self._role_change = asyncio.get_running_loop().create_task(self._demote())

    async def _renew(self) -> tuple[bytes, dict[str, Any]]:
        key_pem, csr_pem = await asyncio.to_thread(tls.new_key_and_csr)
        _, grant = await self.client().call_any(self.manager_addrs(), "POST", "/shoal/renew", {"CSR": _text(csr_pem)})
        return key_pem, grant

    async def _promote(self) -> None:
        try:
            key_pem, grant = await self._renew()
            if grant["Role"] == "manager":
                async with self._lock:
                    await self._become_manager(grant, key_pem)
        except APIError as exc:
            log.warning("promotion not finished yet: %s", exc.message)

    async def _demote(self) -> None:
        try:
            key_pem, grant = await self._renew()
            if grant["Role"] == "worker":
                async with self._lock:
                    await self._become_worker(key_pem, grant)
        except APIError as exc:
            log.warning("demotion not finished yet: %s", exc.message)

    async def _remove_all_tasks(self) -> None:
        """`swarm leave` ends the node's tasks, as Docker removes a leaving node's containers."""
        for task_id in sorted(set(self.executor.state) | set(self.driver.task_ids())):
            try:
                await asyncio.to_thread(self.driver.stop, task_id, None)
                await asyncio.to_thread(self.driver.remove, task_id)
            except Exception as exc:
                log.warning("removing task %s on leave: %s", task_id, exc)
        self.executor.state.clear()

    # ---- leave
    async def leave(self, force: bool) -> None:
        async with self._lock:
            ident = self.require_swarm()
            if ident.role == "manager" and not force:
                raise Unavailable(
                    "You are attempting to leave the swarm on a node that is participating as a manager. "
                    "Removing this node leaves the remaining managers without it; demote it first "
                    "(shoal node demote), or use --force to ignore this message."
                )
            await self.stop()
            await self._remove_all_tasks()
            if self.netagent is not None:
                await self.netagent.cleanup()
                self.netagent = None
                self.executor.hooks = None
            wipe(self.cfg.data_dir)
            self.identity = None
            self.client_ctx = self.server_ctx = None
            log.info("left the swarm")


def make_driver(cfg: Config) -> Any:
    """The task driver the configuration names (`task_driver`)."""
    images = ImageStore(cfg.data_dir / "images")
    if cfg.task_driver == "oci":
        from shoal.runtime.oci.driver import OCIDriver

        return OCIDriver(state_dir=cfg.data_dir / "tasks", images=images, run_dir=cfg.run_dir, runtime=cfg.oci_runtime)
    from shoal.runtime.process import ProcessDriver

    return ProcessDriver(state_dir=cfg.data_dir / "tasks", images=images)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def data_path(cfg: Config) -> Path:
    return cfg.data_dir
