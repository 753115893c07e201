"""The manager role of a node: its Raft replica, the CA, and the leader-only loops."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shoal.aio import BackgroundLoop
from shoal.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable
from shoal.manager import ca
from shoal.manager.careconciler import CAReconciler
from shoal.manager.control import ca_rotation
from shoal.manager.control.commit import commit_retrying
from shoal.manager.control.swarm import UNLOCK_META_ID
from shoal.manager.dispatcher import Dispatcher
from shoal.manager.netkeys import NetworkKeyManager
from shoal.manager.orchestrator import Orchestrator
from shoal.manager.raftview import RaftView
from shoal.manager.roles import RoleManager
from shoal.model.ids import new_id, now_rfc3339
from shoal.model.netkeys import DEFAULT_ROTATION
from shoal.model.network import ingress_object
from shoal.model.objects import DEFAULT_NODE_CERT_EXPIRY, manager_status, new_node
from shoal.model.tlsinfo import tls_info
from shoal.store.atrest import keywrap
from shoal.store.atrest.keyfile import DataKeySource
from shoal.store.changes import Change
from shoal.store.replicated import RaftConfig, ReplicatedStore

log = logging.getLogger("shoal.manager")

CA_META_ID = ca_rotation.CA_META_ID
# Entries a follower's replica may lag the leader's commit index and still answer assignments: a
# burst of status reports is a few dozen entries applied within milliseconds; a follower stuck
# behind is thousands.
REPLICA_MAX_LAG = 256
UNLOCK_KEY_POLL = 0.2  # how often a manager compares the cluster's unlock key with its own wrapping


class ManagerRole:
    def __init__(
        self,
        *,
        node_id: str,
        cluster_id: str,
        raft_addr: str,
        peers: list[str],
        raft_dir: Path,
        raft_password: str,
        heartbeat_period: float,
        on_members_changed: Callable[[list[str]], None],
        election_timeout: float = 0.25,
        snapshot_entries: int = 5000,
        cert_expiry_scale: float = 1.0,
        network_key_rotation: float = DEFAULT_ROTATION,
        key_source: DataKeySource | None = None,
        on_unlock_key: Callable[[bytes | None], None] | None = None,
    ) -> None:
        self.node_id = node_id
        self.cluster_id = cluster_id
        self.raft_addr = raft_addr
        self.raft_password = raft_password
        raft_dir.mkdir(parents=True, exist_ok=True)
        self.store = ReplicatedStore(
            RaftConfig.scaled(
                election_timeout,
                self_addr=raft_addr,
                peers=[p for p in peers if p != raft_addr],
                data_dir=raft_dir,
                password=raft_password,
                log_compaction_min_entries=snapshot_entries,
                key_source=key_source,
            )
        )
        # the period is the cluster spec's; the agent's own setting only until the cluster object exists
        self.dispatcher = Dispatcher(self.store, node_id, heartbeat_period, cluster_id=cluster_id)
        self.roles = RoleManager(self.store, node_id, heartbeat_period)
        self.orchestrator = Orchestrator(self.store)
        self.ca_reconciler = CAReconciler(self.store, cluster_id)
        self.network_keys = NetworkKeyManager(self.store, network_key_rotation)
        self.cert_expiry_scale = cert_expiry_scale  # test-only: shortens NodeCertExpiry (config.py)
        self.on_members_changed = on_members_changed
        self._members: list[str] = []
        self._members_watch = BackgroundLoop("raft-members", self._watch_members)
        self.on_unlock_key = on_unlock_key
        self._unlock_watch = BackgroundLoop("autolock", self._watch_unlock_key)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._leading = False
        self._transition: asyncio.Task[None] | None = None  # the last start or stop of the leader loops
        self._managers: tuple[int, list[dict[str, Any]]] = (-1, [])  # (applied index, ManagerStatus list)

    # ---- lifecycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.store.on_leader_change(self._leader_changed)
        self._members_watch.start()
        if self.on_unlock_key is not None:
            self._unlock_watch.start()

    async def _watch_members(self) -> None:
        while True:
            members = self.store.members()
            if members != self._members:
                self._members = members
                self.on_members_changed(members)
            await asyncio.sleep(0.1)

    async def _watch_unlock_key(self) -> None:
        """Hand the node the cluster's unlock key whenever it changes (it re-wraps its keys): a
        rotation or autolock turned on or off reaches every running manager without a restart."""
        assert self.on_unlock_key is not None
        seen: int | None = None
        while True:
            meta = self.store.get("meta", UNLOCK_META_ID)
            version = meta["Version"]["Index"] if meta else None
            # None: not replicated here yet (a manager that just joined), or a swarm from before
            # autolock (off): either way nothing to re-wrap, and never unwrap on a missing object
            if version is not None and version != seen:
                try:
                    self.on_unlock_key(self.unlock_kek())
                    seen = version
                except Exception:  # tried again on the next round; the files are replaced atomically
                    log.exception("autolock: could not re-wrap this manager's keys")
            await asyncio.sleep(UNLOCK_KEY_POLL)

    def unlock_key(self) -> str:
        """The cluster's unlock key as Docker prints it, "" when autolock is off."""
        meta = self.store.get("meta", UNLOCK_META_ID)
        return str((meta or {}).get("UnlockKey") or "")

    def unlock_kek(self) -> bytes | None:
        text = self.unlock_key()
        return keywrap.parse_unlock_key(text) if text else None

    def unlock_meta(self) -> dict[str, Any] | None:
        return self.store.get("meta", UNLOCK_META_ID)

    def _leader_changed(self, *_args: Any) -> None:
        # called from the Raft thread once the new epoch is committed
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._sync_leader_loops)

    def _sync_leader_loops(self) -> None:
        """Start or stop the leader loops, one change after the other. A stop is asynchronous: when
        leadership came back before it ran (elections flapping on a loaded leader), starting found
        the old loops still running and did nothing, then the stop ended them, leaving a leader
        without orchestrator or dispatcher (tasks never created, nodes never marked Down)."""
        leading = self.store.leading
        if leading == self._leading:
            return
        self._leading = leading
        previous = self._transition
        self._transition = asyncio.get_running_loop().create_task(self._switch(leading, previous))

    async def _switch(self, leading: bool, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await previous
        if leading:
            log.info("this node is the leader (epoch %s): starting leader loops", self.store.epoch)
            self.dispatcher.start()
            self.roles.start()
            self.orchestrator.start()
            self.ca_reconciler.start()
            self.network_keys.start()
        else:
            log.info("this node is no longer the leader: stopping leader loops")
            await self._stop_loops()

    async def _stop_loops(self) -> None:
        await self.dispatcher.stop()
        await self.roles.stop()
        await self.orchestrator.stop()
        await self.ca_reconciler.stop()
        await self.network_keys.stop()

    async def stop(self) -> None:
        await self._members_watch.stop()
        await self._unlock_watch.stop()
        if self._transition is not None:  # a start still pending must not outlive the stop
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._transition
        await self._stop_loops()
        await asyncio.to_thread(self.store.close)

    # ---- views
    def raft_view(self) -> RaftView:
        return RaftView(self_addr=self.raft_addr, leader=self.store.leader(), connected=self.store.peer_status())

    def is_leader(self) -> bool:
        return self.store.is_leader()

    def cluster(self) -> dict[str, Any]:
        cluster = self.store.get("cluster", self.cluster_id)
        if cluster is None:
            raise Unavailable("the cluster object is not replicated to this manager yet")
        return cluster

    def root_ca(self) -> ca.RootCA:
        meta = self.store.get("meta", CA_META_ID)
        if meta is None:
            raise Unavailable("the cluster CA is not replicated to this manager yet")
        return ca.RootCA.load(meta["cert"], meta["key"])

    def ca_meta(self) -> dict[str, Any]:
        meta = self.store.get("meta", CA_META_ID)
        if meta is None:
            raise Unavailable("the cluster CA is not replicated to this manager yet")
        return meta

    def trust_digest(self) -> str:
        """The digest of the roots nodes must trust now; a node whose own differs renews (heartbeat)."""
        return ca_rotation.trust_digest(ca_rotation.trust_bundle(self.ca_meta()))

    def node_cert_expiry(self) -> dt.timedelta:
        """The cluster's NodeCertExpiry, times the test-only `cert_expiry_scale` of this manager."""
        spec = self.cluster()["Spec"].get("CAConfig") or {}
        ns = int(spec.get("NodeCertExpiry") or DEFAULT_NODE_CERT_EXPIRY)
        return dt.timedelta(seconds=ns / 1e9 * self.cert_expiry_scale)

    def _issue(self, csr_pem: str, node_id: str, role: str, ip: str) -> tuple[str, str, dict[str, str]]:
        """(certificate chain, trust bundle, the node's TLSInfo) from the root that signs now."""
        meta = self.ca_meta()
        signer = ca_rotation.signing_root(meta)
        cert = signer.issue(csr_pem, node_id, role, self.cluster_id, ips=[ip], validity=self.node_cert_expiry())
        bundle = ca_rotation.trust_bundle(meta)
        return cert + ca_rotation.chain_suffix(meta), bundle, ca_rotation.node_tls_info(bundle, signer.cert_pem)

    def _manager_statuses(self) -> list[dict[str, Any]]:
        """The managers' ManagerStatus, read once per applied index. Every heartbeat answer names
        the leader and the managers: copying all node objects for each beat made a beat cost
        O(nodes), so O(nodes^2) per heartbeat period on the leader."""
        index = self.store.applied_index
        if self._managers[0] != index:
            statuses = [dict(n["ManagerStatus"]) for n in self.store.list_shared("node") if n.get("ManagerStatus")]
            self._managers = (index, statuses)
        return self._managers[1]

    def check_replica_current(self) -> None:
        """Assignments are answered from this manager's replica: not when it lags the leader, nor
        before it is known current (nodes then ask the next manager; an older answer would make
        them stop newer tasks: a restarted node stopped its newest task, missing from a restarted
        manager's replica, and started it again once the leader's commit brought it back)."""
        lag = self.store.replica_lag()
        if lag is None:
            raise Unavailable("this manager's replica is not known to be current yet (it is starting or taking over)")
        if lag > REPLICA_MAX_LAG:
            raise Unavailable(f"this manager's replica is {lag} entries behind the leader's commits")

    def leader_cluster_addr(self) -> str | None:
        leader = self.store.leader()
        for status in self._manager_statuses():
            if status.get("RaftAddr") == leader:
                return status.get("Addr")
        return None

    def manager_addrs(self) -> list[str]:
        return [status["Addr"] for status in self._manager_statuses()]

    # ---- the first manager
    @staticmethod
    def initial_objects(
        *,
        cluster_id: str,
        node_id: str,
        hostname: str,
        advertise_ip: str,
        cluster_port: int,
        raft_addr: str,
        root: ca.RootCA,
        spec: dict[str, Any],
        default_addr_pool: list[str],
        subnet_size: int,
        description: dict[str, Any],
        data_path_port: int = 0,
        unlock_key: str = "",
    ) -> list[Change]:
        from shoal.model.objects import new_cluster

        now = now_rfc3339()
        digest = root.digest()
        tokens = {"Worker": ca.make_join_token(digest), "Manager": ca.make_join_token(digest)}
        cluster = new_cluster(
            cluster_id,
            spec,
            root.cert_pem,
            tokens,
            now,
            default_addr_pool=default_addr_pool,
            subnet_size=subnet_size,
            data_path_port=data_path_port,
        )
        node = node_object(
            node_id, hostname, "manager", advertise_ip, cluster_port, raft_addr, description, root.cert_pem, now
        )
        meta = {
            "ID": CA_META_ID,
            "Version": {"Index": 0},
            "CreatedAt": now,
            "UpdatedAt": now,
            "cert": _text(root.cert_pem),
            "key": _text(root.key_pem),
        }
        unlock = {"ID": UNLOCK_META_ID, "Version": {"Index": 0}, "CreatedAt": now, "UpdatedAt": now}
        unlock["UnlockKey"] = unlock_key
        return [
            Change(op="create", kind="network", obj=ingress_object(new_id(), now)),
            Change(op="create", kind="meta", obj=meta),
            Change(op="create", kind="meta", obj=unlock),
            Change(op="create", kind="cluster", obj=cluster),
            Change(op="create", kind="node", obj=node),
        ]

    # ---- certificates and membership (cluster API handlers call these)
    async def join(
        self,
        token: str,
        csr_pem: str,
        hostname: str,
        advertise_ip: str,
        cluster_port: int,
        raft_port: int,
        description: dict[str, Any],
    ) -> dict[str, Any]:
        cluster = self.cluster()
        tokens = cluster["JoinTokens"]
        if ca.token_matches(token, tokens["Manager"]):
            role = "manager"
        elif ca.token_matches(token, tokens["Worker"]):
            role = "worker"
        else:
            raise PermissionDenied(
                "A valid join token is necessary to join this cluster (the token is wrong or was rotated)"
            )
        node_id = new_id()
        cert, bundle, tls = self._issue(csr_pem, node_id, role, advertise_ip)
        now = now_rfc3339()
        node = node_object(node_id, hostname, role, advertise_ip, cluster_port, None, description, bundle, now)
        node["Description"]["TLSInfo"] = tls
        await self.store.acommit([Change(op="create", kind="node", obj=node)])
        log.info("node %s (%s) joined as a %s", hostname, node_id, role)
        return self._grant(node_id, role, cert, bundle)

    def _grant(self, node_id: str, role: str, cert: bytes | str, ca_pem: str) -> dict[str, Any]:
        grant: dict[str, Any] = {
            "NodeID": node_id,
            "ClusterID": self.cluster_id,
            "Role": role,
            "Certificate": _text(cert),
            "CACertificate": ca_pem,
            "Managers": self.manager_addrs(),
        }
        if role == "manager":
            grant["RaftPassword"] = self.raft_password
            grant["RaftMembers"] = sorted(set(self.store.members()) | {self.raft_addr})
            grant["UnlockKey"] = self.unlock_key()  # over mTLS: a new manager wraps its keys at once
        return grant

    async def renew(self, node_id: str, csr_pem: str) -> dict[str, Any]:
        """A certificate for the node's desired role (after promote/demote, before expiry, and during a
        root rotation: then from the new root). The node's TLSInfo records who issued it, which is how
        the CA reconciler knows the node converted."""
        node = self.store.get("node", node_id)
        if node is None:
            raise NotFound(f"node {node_id} not found")
        role = node["Spec"]["Role"]
        cert, bundle, tls = self._issue(csr_pem, node_id, role, node["Status"].get("Addr") or "127.0.0.1")
        if (node.get("Description") or {}).get("TLSInfo") == tls:
            # the same issuer as recorded (a demotion or promotion under the same root): writing it
            # again would only bump the node's version, and a second demote.yml run would see a change
            return self._grant(node_id, role, cert, bundle)

        def record() -> list[Change]:
            fresh = self.store.get("node", node_id)
            if fresh is None:
                raise NotFound(f"node {node_id} not found")
            updated = copy.deepcopy(fresh)
            updated.setdefault("Description", {})["TLSInfo"] = tls
            return [
                Change(
                    op="update", kind="node", obj=updated, obj_id=node_id, expected_version=fresh["Version"]["Index"]
                )
            ]

        await commit_retrying(self.store, record)
        return self._grant(node_id, role, cert, bundle)

    async def add_raft_member(self, node_id: str, raft_addr: str, cluster_addr: str) -> dict[str, Any]:
        if not self.is_leader():
            raise Unavailable("not the leader")
        node = self.store.get("node", node_id)
        if node is None or node["Spec"].get("Role") != "manager":
            raise PermissionDenied(f"node {node_id} is not a manager")
        if raft_addr not in self.store.members() and raft_addr != self.raft_addr:
            await asyncio.to_thread(self.store.add_member, raft_addr)
        fresh = self.store.get("node", node_id) or node
        updated = copy.deepcopy(fresh)
        status = manager_status(cluster_addr)
        status["RaftAddr"] = raft_addr
        updated["ManagerStatus"] = status
        updated["UpdatedAt"] = now_rfc3339()
        await self.store.acommit(
            [Change(op="update", kind="node", obj=updated, obj_id=node_id, expected_version=fresh["Version"]["Index"])]
        )
        return {"Members": self.store.members()}

    def check_member(self, node_id: str, cluster_id: str, role: str | None = None) -> dict[str, Any]:
        """The caller's certificate must name a current node of this cluster (and role)."""
        if cluster_id != self.cluster_id:
            raise PermissionDenied("certificate from another cluster")
        # the stored object, not a copy: every heartbeat, poll and report of every node comes here,
        # and the callers only read it (a deep copy per call was per-call work at 1,000 nodes)
        node = self.store.get_shared("node", node_id)
        if node is None:
            raise PermissionDenied(f"node {node_id} has been removed from the swarm or is unknown")
        if role == "manager" and node["Spec"].get("Role") != "manager":
            raise PermissionDenied("this call needs a manager node")
        return node


def node_object(
    node_id: str,
    hostname: str,
    role: str,
    advertise_ip: str,
    cluster_port: int,
    raft_addr: str | None,
    description: dict[str, Any],
    ca_pem: bytes | str,
    now: str,
) -> dict[str, Any]:
    node = new_node(
        node_id,
        hostname,
        "worker" if raft_addr is None else role,
        advertise_ip,
        now,
        platform=description.get("Platform"),
        resources=description.get("Resources"),
        engine_labels=(description.get("Engine") or {}).get("Labels"),
        tls=tls_info(ca_pem),
    )
    node["Spec"]["Role"] = role  # desired role; ManagerStatus appears once it is a Raft member
    dataplane = dataplane_description(description.get("Dataplane"))
    if dataplane is not None:
        node["Description"]["Dataplane"] = dataplane
    if raft_addr is not None:
        node["ManagerStatus"] = manager_status(f"{advertise_ip}:{cluster_port}", leader=True)
        node["ManagerStatus"]["RaftAddr"] = raft_addr
    return node


def dataplane_description(given: Any) -> dict[str, Any] | None:
    """What a node reports of its kernel's dataplane (shoal's own field of Description): whether it
    can encrypt overlays (IPsec ESP with AES-GCM) and, when not, the kernel's reason; checked for shape."""
    if not isinstance(given, dict) or not isinstance(given.get("EncryptedOverlay"), bool):
        return None
    reason = given.get("Reason") if isinstance(given.get("Reason"), str) else ""
    return {"EncryptedOverlay": given["EncryptedOverlay"], "Reason": reason[:300]}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def bad(msg: str) -> InvalidArgument:
    return InvalidArgument(msg)
