"""The node's parts and their wiring: driver, executor, network, task loop, session, manager side;
start and stop. The transitions extend it: init and join (node.py), roles.py, leave.py.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shoal.agent import credentials
from shoal.agent.credentials import Credentials
from shoal.agent.events import EventHub, follow_cluster, task_listener
from shoal.clusterclient import ClientPool, ClusterClient
from shoal.config import Config, ConfigError
from shoal.errors import NotManager, Unavailable
from shoal.identity import Identity, raft_dir
from shoal.runtime.base import Driver
from shoal.runtime.images import ImageStore, RegistryOptions
from shoal.runtime.images.prune import Policy
from shoal.runtime.volumes import VolumeStore
from shoal.worker.executor import Executor
from shoal.worker.hooks import NetworkSlot
from shoal.worker.session import Session
from shoal.worker.taskloop import TaskLoop

if TYPE_CHECKING:  # the manager side (Raft, orchestrator, CA) is imported when the node becomes one
    from shoal.manager.manager import ManagerRole
    from shoal.store.atrest.keyfile import DataKeyFile
    from shoal.worker.netagent import NetAgent

log = logging.getLogger("shoal.agent")

NOT_IN_SWARM = 'This node is not part of a swarm. Use "shoal swarm init" or "shoal swarm join" first.'
ALREADY_IN_SWARM = (
    'This node is already part of a swarm. Use "shoal swarm leave" to leave this swarm and join another one.'
)
NOT_A_MANAGER = (
    "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. "
    "Please run this command on a manager node or promote the current node to a manager."
)


def default_images(cfg: Config, in_use: Callable[[str], bool] | None = None) -> ImageStore:
    return ImageStore(
        cfg.data_dir / "images",
        RegistryOptions(insecure=tuple(cfg.insecure_registries)),
        Policy(cfg.image_prune_max_bytes, cfg.image_prune_max_age),
        in_use,
    )


def default_driver(cfg: Config, images: ImageStore | None = None) -> Driver:
    """The task driver the configuration names (`task_driver`; config.TASK_DRIVERS lists them)."""
    images = images or default_images(cfg)
    if cfg.task_driver == "oci":
        from shoal.runtime.oci.driver import OCIDriver

        return OCIDriver(state_dir=cfg.data_dir / "tasks", images=images, run_dir=cfg.run_dir, runtime=cfg.oci_runtime)
    if cfg.task_driver == "sim":
        from shoal.runtime.sim import SimDriver

        return SimDriver()
    raise ConfigError(f"unknown task_driver {cfg.task_driver!r}")


class AgentCore:
    def __init__(self, cfg: Config, driver: Driver | None = None, images: ImageStore | None = None) -> None:
        self.cfg = cfg
        credentials.recover_key_set(cfg.data_dir)  # before node.json or a key is read
        self.identity: Identity | None = Identity.load(cfg.data_dir)
        self.manager: ManagerRole | None = None
        self.session: Session | None = None
        self.server_ctx: ssl.SSLContext | None = None
        self.client_ctx: ssl.SSLContext | None = None
        self.cluster_server: Any = None  # set by the daemon: starts/stops the TLS cluster API
        self._lock = asyncio.Lock()
        self._role_change: asyncio.Task[None] | None = None
        # this node's images ask the tasks assigned here what is in use (prune and rmi keep those);
        # the driver pulls and unpacks into the same store
        self.images: ImageStore = images or default_images(cfg, in_use=self.image_in_use)
        self.driver: Driver = driver or default_driver(cfg, self.images)
        # this node's `local` volumes: the oci driver's (it knows which tasks use one), else a store of their own
        self.volumes: VolumeStore = getattr(self.driver, "volumes", None) or VolumeStore(cfg.data_dir / "volumes")
        self.network = NetworkSlot()  # the NetAgent is attached once the node has an underlay address
        self.executor = Executor(self.driver, hooks=self.network)
        self.tasks: TaskLoop | None = None
        self.error: str | None = None
        # autolock (autolock.py): the unlock key this manager's key files are wrapped with, held in
        # memory only; `locked` while a restarted manager waits for `swarm unlock`
        self.kek: bytes | None = None
        ident = self.identity  # locked from the first request, not only once start() has run
        self.locked = ident is not None and ident.role == "manager" and self._keys_wrapped()
        self.events = EventHub()  # GET /events: this manager's cluster events and this node's containers
        self.executor.listeners.append(task_listener(self.events, self.executor))
        self._events_feed: asyncio.Task[None] | None = None
        self._pool = ClientPool()  # kept connections to the managers

    def image_in_use(self, image_id: str) -> bool:
        """An image a task assigned to this node names (prune and rmi leave it alone)."""
        for task in list(self.executor.assigned.values()):
            ref = str(((task.get("Spec") or {}).get("ContainerSpec") or {}).get("Image") or "")
            try:
                if ref and self.images.get(ref).id == image_id:
                    return True
            except Exception:  # an unknown or bad name uses no stored image
                continue
        return False

    # ---- state
    @property
    def state(self) -> str:
        if self.identity is None:
            return "inactive"
        if self.locked:
            return "locked"
        return "error" if self.error else "active"

    @property
    def netagent(self) -> NetAgent | None:
        return self.network.current  # type: ignore[return-value]

    def require_swarm(self) -> Identity:
        if self.identity is None:
            raise Unavailable(NOT_IN_SWARM)
        return self.identity

    def require_manager(self) -> ManagerRole:
        self.require_swarm()
        if self.manager is None:
            raise NotManager(NOT_A_MANAGER)
        return self.manager

    def client(self) -> ClusterClient:
        if self.client_ctx is None:
            raise Unavailable(NOT_IN_SWARM)
        return self._pool.client(self.client_ctx)

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
                self.executor,
                self.client,
                self.manager_addrs,
                lambda: self.session.leader if self.session else None,
                network=self.network,
            )
            self.tasks.start()

    def _start_networking(self) -> None:
        """Overlays, load balancing, the routing mesh and DNS need this node's underlay address."""
        ident = self.identity
        if self.network.current is not None or ident is None:
            return
        if self.cfg.task_driver == "sim":
            return  # simulated tasks have no namespace to wire: the network hooks stay no-ops
        from shoal.worker.netagent import NetAgent

        try:
            from shoal.net.dataplane import Dataplane
            from shoal.net.dns import EmbeddedDNS

            dns = EmbeddedDNS(upstreams=list(self.cfg.upstream_dns))
            dataplane = Dataplane(ident.advertise_ip, lb_backend=self.cfg.lb_backend)
            self.network.attach(NetAgent(dataplane, dns, self.driver))
        except Exception as exc:  # tasks still run (loopback only), and the node says why
            log.error("networking is unavailable on this node: %s", exc)
            self.error = f"networking unavailable: {exc}"

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
        self._events_feed = asyncio.get_running_loop().create_task(follow_cluster(self.events, lambda: self.manager))
        await self.executor.adopt()  # tasks that ran before a restart keep running
        if self.identity is not None:
            await self._activate()

    async def stop(self) -> None:
        if self._events_feed is not None:
            self._events_feed.cancel()
            self._events_feed = None
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
        await self._pool.close()

    async def _activate(self) -> None:
        ident = self.require_swarm()
        if ident.role == "manager" and self.kek is None and self._keys_wrapped():
            # autolock: no TLS key, no data key, so no cluster port, no Raft replica (pysyncobj
            # would replay the journal) and no session, until `swarm unlock` gives the key
            self.locked = True
            log.warning("this manager is locked (autolock): run `shoal swarm unlock` to start it")
            return
        await self._use_credentials(credentials.load(self.cfg.data_dir, self.kek))
        if ident.role == "manager":
            await self._start_manager(ident, peers=ident.raft_members)
        self._start_session(ident)

    def _keys_wrapped(self) -> bool:
        return False  # Autolock (autolock.py) says whether the key files are wrapped

    def _on_unlock_key(self, wanted: bytes | None) -> None:
        """The cluster's unlock key as the manager's store now says (Autolock re-wraps)."""

    def _data_key_source(self) -> DataKeyFile:
        from shoal.store.atrest.keyfile import DataKeyFile, default_key_path  # managers only: cryptography

        return DataKeyFile(default_key_path(raft_dir(self.cfg.data_dir)), kek=self.kek)

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
            election_timeout=self.cfg.election_timeout,
            snapshot_entries=self.cfg.raft_snapshot_entries,
            cert_expiry_scale=self.cfg.cert_expiry_scale,
            network_key_rotation=self.cfg.network_key_rotation,
            on_members_changed=self._save_members,
            key_source=self._data_key_source(),
            on_unlock_key=self._on_unlock_key,
        )
        await self.manager.start()

    async def _use_credentials(self, creds: Credentials, *, restart_listener: bool = True) -> None:
        """TLS contexts from the node's certificate; the cluster port (every node serves it: managers the
        cluster API, every node its own task logs) restarts with the new certificate, unless it is a
        renewal: then its listener hands new connections the new context and keeps the open ones."""
        self.server_ctx = creds.server_context()
        self.client_ctx = creds.client_context()
        if self.cluster_server and restart_listener:
            await self.cluster_server.stop()
            await self.cluster_server.start()

    def _save_members(self, members: list[str]) -> None:
        # a restarted manager needs its last known peers (pysyncobj does not keep them): save at once
        ident = self.identity
        if ident is not None and ident.role == "manager" and members and members != ident.raft_members:
            ident.raft_members = members
            ident.save(self.cfg.data_dir)
