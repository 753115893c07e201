"""One simulated node: a real worker's session and task loop over its own TLS identity, with the
`sim` driver and no networking. Many of them share one process and one event loop.

The wire is the real one (worker/session.py, worker/taskloop.py, agent/join.py): join with the
token over TLS on 2377, heartbeats, the assignments long poll, status reports. What is simulated
is only below the executor: the driver records tasks, and the network hooks do nothing.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.agent import credentials
from shoal.agent.credentials import Credentials
from shoal.agent.join import JoinRequest, request_certificate
from shoal.clusterclient import ClientPool, ClusterClient
from shoal.identity import Identity
from shoal.model.netdelta import Held
from shoal.runtime.sim import SimDriver
from shoal.worker.executor import Executor
from shoal.worker.hooks import NetworkSlot
from shoal.worker.session import Session
from shoal.worker.taskloop import TaskLoop

log = logging.getLogger("shoal.sim")


@dataclass(frozen=True)
class NodeShape:
    """What every simulated node says about itself, and how its simulated tasks behave."""

    advertise_ip: str
    nano_cpus: int = 2_000_000_000
    memory_bytes: int = 4 << 30
    period: float = 5.0  # until the leader's first answer names its own
    start_delay: float = 0.0
    fail_rate: float = 0.0
    exit_poll: float = 5.0  # simulated tasks end only when told to, or by label: a slow poll does

    def description(self, hostname: str) -> dict[str, Any]:
        return {
            "Hostname": hostname,
            "Platform": {"Architecture": "x86_64", "OS": "linux"},
            "Resources": {"NanoCPUs": self.nano_cpus, "MemoryBytes": self.memory_bytes},
            "Engine": {"EngineVersion": "shoal-sim", "Labels": {"shoal.sim": "true"}},
        }


class SimNode:
    def __init__(self, index: int, port: int, shape: NodeShape, state_dir: Path | None = None) -> None:
        self.index = index
        self.hostname = f"sim-{index:05d}"
        self.port = port  # a port of its own: the session skips managers at its own address
        self.shape = shape
        self.state_dir = state_dir
        self.identity: Identity | None = None
        self.ctx: ssl.SSLContext | None = None
        self.managers: list[str] = []
        self.pool = ClientPool()
        self.driver = SimDriver(shape.start_delay, shape.fail_rate)
        self.network = NetworkSlot()  # nothing attached: every hook is a no-op
        self.executor = Executor(self.driver, hooks=self.network)
        self.session: Session | None = None
        self.tasks: TaskLoop | None = None

    @property
    def addr(self) -> str:
        return f"{self.shape.advertise_ip}:{self.port}"

    @property
    def node_id(self) -> str:
        return self.identity.node_id if self.identity else ""

    def client(self) -> ClusterClient:
        assert self.ctx is not None
        return self.pool.client(self.ctx)

    def load(self) -> bool:
        """The identity saved by an earlier run (`--state-dir`): the node rejoins nothing."""
        if self.state_dir is None:
            return False
        ident = Identity.load(self.state_dir)
        if ident is None:
            return False
        self.identity = ident
        self.managers = list(ident.managers)
        self.ctx = credentials.load(self.state_dir, None).client_context()
        return True

    async def join(self, req: JoinRequest) -> None:
        ca_pem, key_pem, grant = await request_certificate(
            req, self.shape.advertise_ip, self.port, 2378, self.shape.description(self.hostname)
        )
        self.identity = Identity(
            node_id=grant["NodeID"],
            cluster_id=grant["ClusterID"],
            role="worker",
            advertise_ip=self.shape.advertise_ip,
            cluster_port=self.port,
            managers=grant.get("Managers") or req.remotes,
        )
        self.managers = list(self.identity.managers)
        as_bytes = credentials.as_bytes
        creds = Credentials(as_bytes(ca_pem), as_bytes(grant["Certificate"]), as_bytes(key_pem))
        if self.state_dir is not None:
            await asyncio.to_thread(self._save, creds)
        self.ctx = creds.client_context()

    def _save(self, creds: Credentials) -> None:
        assert self.state_dir is not None and self.identity is not None
        credentials.save(self.state_dir, creds.ca_pem, creds.cert_pem, creds.key_pem, kek=None)
        self.identity.save(self.state_dir)

    def start(self) -> None:
        self.tasks = TaskLoop(
            self.executor,
            self.client,
            lambda: self.managers,
            lambda: self.session.leader if self.session else None,
            network=self.network,
            exit_poll=self.shape.exit_poll,
            held=Held(versions_only=True),  # it programs nothing: the versions, not every endpoint
            on_delivered=self.driver.delivered,
        )
        self.session = Session(self.client, lambda: self.managers, self.addr, self.shape.period, self._on_answer)
        self.tasks.start()
        self.session.start()

    async def _on_answer(self, answer: dict[str, Any]) -> None:
        if answer.get("Managers"):
            self.managers = list(answer["Managers"])

    async def stop(self) -> None:
        """Gone at once, as a node whose power was cut: no goodbye, its connections just close."""
        if self.session is not None:
            await self.session.stop()
        if self.tasks is not None:
            await self.tasks.stop()
        self.session = self.tasks = None
        await self.pool.close()

    @property
    def running(self) -> bool:
        return self.session is not None
