"""A fake shoal agent on a unix socket and a runner for the collection's modules, in process.

The fake answers the Docker-shaped swarm subset from in-memory state and records every request,
so that tests assert on what a module sent (and, as important, on what it did not send).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import secrets
import socketserver
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / "playbooks" / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

from ansible.module_utils import basic  # noqa: E402
from ansible.module_utils.common import warnings as ansible_warnings  # noqa: E402

from shoal.errors import ShoalError  # noqa: E402
from shoal.manager import ca as shoal_ca  # noqa: E402
from shoal.manager.allocator.endpoints import resolve_network, resolve_targets  # noqa: E402
from shoal.manager.control.networks import refuse_encrypted  # noqa: E402
from shoal.manager.tokens import make_join_token  # noqa: E402
from shoal.model.ids import new_id, now_rfc3339  # noqa: E402
from shoal.model.network import (  # noqa: E402
    docker_view,
    free_vni,
    ingress_object,
    network_object,
    validate_create,
)
from shoal.model.service import (  # noqa: E402
    service_object,
    service_status,
    updated_service,
    validate_service_spec,
)
from shoal.model.task import task_dirty  # noqa: E402

_ROOT = shoal_ca.RootCA.create()
_OTHER_ROOT = shoal_ca.RootCA.create()
CA_PEM = _ROOT.cert_pem.decode() if isinstance(_ROOT.cert_pem, bytes) else _ROOT.cert_pem
OTHER_CA_PEM = _OTHER_ROOT.cert_pem.decode() if isinstance(_OTHER_ROOT.cert_pem, bytes) else _OTHER_ROOT.cert_pem
WORKER_TOKEN = make_join_token(_ROOT.digest())
MANAGER_TOKEN = make_join_token(_ROOT.digest())
FOREIGN_TOKEN = make_join_token(_OTHER_ROOT.digest())
CLUSTER_ID = "4d5ik0wbq5jxdc2ldrrqg5nq3"
SELF_ID = "9x0yq3ia6wsdt1d4y5uz2vcfd"
W1_ID = "1o5cmq6a1zryw3hv4h2dg0b6t"
W2_ID = "2o5cmq6a1zryw3hv4h2dg0b6u"


def default_spec() -> dict[str, Any]:
    return {
        "Name": "default",
        "Labels": {},
        "Orchestration": {"TaskHistoryRetentionLimit": 5},
        "Raft": {
            "SnapshotInterval": 10000,
            "KeepOldSnapshots": 0,
            "LogEntriesForSlowFollowers": 500,
            "ElectionTick": 10,
            "HeartbeatTick": 1,
        },
        "Dispatcher": {"HeartbeatPeriod": 1_000_000_000},
        "CAConfig": {"NodeCertExpiry": 7_776_000_000_000_000},
        "TaskDefaults": {},
        "EncryptionConfig": {"AutoLockManagers": False},
    }


def make_node(node_id: str, hostname: str, role: str, addr: str, ca_pem: str = CA_PEM) -> dict[str, Any]:
    node: dict[str, Any] = {
        "ID": node_id,
        "Version": {"Index": 10},
        "Spec": {"Labels": {}, "Role": role, "Availability": "active"},
        "Description": {"Hostname": hostname, "TLSInfo": {"TrustRoot": ca_pem}},
        "Status": {"State": "ready", "Addr": addr},
    }
    if role == "manager":
        node["ManagerStatus"] = {"Leader": True, "Reachability": "reachable", "Addr": f"{addr}:2377"}
    return node


class APIFailure(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class FakeAgent:
    """One node's agent: inactive, a worker or a manager, with a small cluster behind it."""

    def __init__(self, sock: str, hostname: str = "swarm00") -> None:
        self.sock = sock
        self.hostname = hostname
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.headers: list[tuple[str, str, dict[str, str]]] = []  # (method, path, headers) of every request
        self.fail: dict[tuple[str, str], tuple[int, str]] = {}
        self.fail_once: dict[tuple[str, str], tuple[int, str]] = {}  # as fail, for the next such request only
        self.state = "inactive"
        self.control = False
        self.node_id = ""
        self.ca_pem = CA_PEM
        self.index = 100
        self.cluster: dict[str, Any] = {}
        self.nodes: dict[str, dict[str, Any]] = {}
        self.tasks: list[dict[str, Any]] | None = None  # None: the agent has no /tasks yet (404)
        self.services: list[dict[str, Any]] | None = None
        self.conflicts = 0  # the next N writes lose a race (409) and the object moves on
        self.role_settles_after = 0  # reads of a node before its role change shows
        self.pending_roles: dict[str, list[int]] = {}
        self.task_reads_until_drained = 0
        self.services_visible_to_workers = False
        self.networks: list[dict[str, Any]] | None = None  # None: the agent has no /networks yet (404)
        self.scheduling = False  # with enable_workloads(): tasks follow the services' specs on each /tasks read
        self.task_reads_to_run = 0  # reads of /tasks during which new tasks stay pending
        self.task_error = ""  # when set, new tasks fail with this error instead of running
        self.update_status: dict[str, Any] | None = None  # the UpdateStatus a service update ends with (a rollback)
        self.unlock_key = ""  # the cluster's unlock key while autolock is on (SWMKEY-1-...)

    # ---- set-ups
    def make_manager(self) -> FakeAgent:
        self.state, self.control, self.node_id = "active", True, SELF_ID
        self.cluster = {
            "ID": CLUSTER_ID,
            "Version": {"Index": 50},
            "Spec": default_spec(),
            "TLSInfo": {"TrustRoot": self.ca_pem},
            "DefaultAddrPool": ["10.0.0.0/8"],
            "SubnetSize": 24,
            "DataPathPort": 4789,
            "JoinTokens": {"Worker": WORKER_TOKEN, "Manager": MANAGER_TOKEN},
        }
        self.nodes = {
            SELF_ID: make_node(SELF_ID, self.hostname, "manager", "10.213.0.10", self.ca_pem),
            W1_ID: make_node(W1_ID, "swarm01", "worker", "10.213.0.11", self.ca_pem),
            W2_ID: make_node(W2_ID, "swarm02", "worker", "10.213.0.12", self.ca_pem),
        }
        return self

    def make_locked(self, key: str) -> FakeAgent:
        """A manager restarted with autolock on: it answers /info and /swarm/unlock only."""
        self.make_manager()
        self.cluster["Spec"]["EncryptionConfig"] = {"AutoLockManagers": True}
        self.state, self.control, self.unlock_key = "locked", False, key
        return self

    def _settle_unlock_key(self, rotate: bool) -> None:
        on = bool((self.cluster["Spec"].get("EncryptionConfig") or {}).get("AutoLockManagers"))
        if not on:
            self.unlock_key = ""
        elif rotate or not self.unlock_key:
            self.unlock_key = f"SWMKEY-1-{secrets.token_hex(21)[:43]}"

    def make_worker(self) -> FakeAgent:
        self.make_manager()
        self.hostname = "swarm01"
        self.control, self.node_id = False, W1_ID
        return self

    def enable_workloads(self) -> FakeAgent:
        """A manager whose agent serves services, tasks and networks (the real spec validation and
        network allocation of shoal), with tasks that follow the specs."""
        self.make_manager()
        self.services, self.tasks = [], []
        self.networks = [ingress_object(new_id(), now_rfc3339())]
        self.scheduling = True
        return self

    # ---- helpers for tests
    def writes(self) -> list[tuple[str, str, dict[str, str], Any]]:
        return [r for r in self.requests if r[0] != "GET"]

    def bump(self) -> int:
        self.index += 1
        return self.index

    def resolve(self, ref: str) -> dict[str, Any]:
        if ref in self.nodes:
            return self.nodes[ref]
        named = [n for n in self.nodes.values() if n["Description"]["Hostname"] == ref]
        if len(named) == 1:
            return named[0]
        prefixed = [n for n in self.nodes.values() if n["ID"].startswith(ref)] if ref else []
        if len(prefixed) == 1:
            return prefixed[0]
        raise APIFailure(404, f"node {ref} not found")

    def read_node(self, ref: str) -> dict[str, Any]:
        node = self.resolve(ref)
        pending = self.pending_roles.get(node["ID"])
        if pending is not None:
            pending[0] -= 1
            if pending[0] <= 0:
                del self.pending_roles[node["ID"]]
                if node["Spec"]["Role"] == "manager":
                    node["ManagerStatus"] = {"Leader": False, "Reachability": "reachable", "Addr": "x:2377"}
                else:
                    node.pop("ManagerStatus", None)
        return copy.deepcopy(node)

    def require_swarm(self) -> None:
        if self.state != "active":
            raise APIFailure(503, 'This node is not part of a swarm. Use "shoal swarm init" first.')

    def require_manager(self) -> None:
        self.require_swarm()
        if not self.control:
            raise APIFailure(503, "This node is not a swarm manager.")

    def check_version(self, obj: dict[str, Any], query: dict[str, str], what: str) -> None:
        if "version" not in query:
            raise APIFailure(400, "missing query parameter version")
        if self.conflicts > 0:
            self.conflicts -= 1
            obj["Version"]["Index"] = self.bump()
        if int(query["version"]) != obj["Version"]["Index"]:
            raise APIFailure(
                409,
                f"update out of sequence: {what} is at version {obj['Version']['Index']}, "
                f"the update was for version {query['version']}",
            )

    # ---- the API
    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        self.requests.append((method, path, query, body))
        if (method, path) in self.fail:
            status, message = self.fail[(method, path)]
            raise APIFailure(status, message)
        if (method, path) in self.fail_once:
            status, message = self.fail_once.pop((method, path))
            raise APIFailure(status, message)
        if method == "GET" and path == "/_ping":
            return 200, "OK"
        if method == "GET" and path == "/info":
            swarm: dict[str, Any] = {
                "NodeID": self.node_id,
                "NodeAddr": "10.213.0.10" if self.node_id else "",
                "LocalNodeState": self.state,
                "ControlAvailable": self.control,
                "Error": "",
                "RemoteManagers": [{"NodeID": SELF_ID, "Addr": "10.213.0.10:2377"}] if self.node_id else None,
            }
            if self.control:
                swarm["Cluster"] = {k: v for k, v in self.cluster.items() if k != "JoinTokens"}
            return 200, {"ID": self.node_id, "Name": self.hostname, "ServerVersion": "0.1.0", "Swarm": swarm}
        if method == "GET" and path == "/swarm":
            self.require_manager()
            return 200, copy.deepcopy(self.cluster)
        if method == "POST" and path == "/swarm/init":
            if self.state != "inactive":
                raise APIFailure(503, "This node is already part of a swarm.")
            self.make_manager()
            for key, value in (body.get("Spec") or {}).items():
                if isinstance(value, dict) and key != "Labels":
                    self.cluster["Spec"][key] = {**self.cluster["Spec"].get(key, {}), **value}
                else:
                    self.cluster["Spec"][key] = value
            self.nodes = {SELF_ID: self.nodes[SELF_ID]}
            self._settle_unlock_key(False)
            return 200, SELF_ID
        if method == "POST" and path == "/swarm/join":
            if self.state != "inactive":
                raise APIFailure(503, "This node is already part of a swarm.")
            if not body.get("JoinToken"):
                raise APIFailure(400, "a join token is required (--token)")
            role = "manager" if body["JoinToken"] == MANAGER_TOKEN else "worker"
            if body["JoinToken"] not in (WORKER_TOKEN, MANAGER_TOKEN):
                raise APIFailure(403, "A valid join token is necessary to join this cluster")
            self.make_manager()
            self.hostname = "swarm01"
            self.control, self.node_id = role == "manager", W1_ID
            self.nodes[W1_ID]["Spec"]["Role"] = role
            return 200, None
        if method == "POST" and path == "/swarm/leave":
            self.require_swarm()
            if self.control and query.get("force") != "true":
                raise APIFailure(503, "You are attempting to leave the swarm on a node that is a manager.")
            self.state, self.control, self.node_id, self.cluster, self.nodes = "inactive", False, "", {}, {}
            return 200, None
        if method == "POST" and path == "/swarm/update":
            self.require_manager()
            self.check_version(self.cluster, query, "the swarm")
            self.cluster["Spec"] = body
            for role in ("Worker", "Manager"):
                if query.get(f"rotate{role}Token") == "true":
                    self.cluster["JoinTokens"][role] = make_join_token(_ROOT.digest())
            self._settle_unlock_key(query.get("rotateManagerUnlockKey") == "true")
            self.cluster["Version"]["Index"] = self.bump()
            return 200, None
        if method == "GET" and path == "/swarm/unlockkey":
            self.require_manager()
            return 200, {"UnlockKey": self.unlock_key}
        if method == "POST" and path == "/swarm/unlock":
            if self.state == "inactive":
                raise APIFailure(503, "This node is not part of a swarm")
            if self.state != "locked":
                raise APIFailure(409, "swarm is not locked")
            if not str(body.get("UnlockKey", "")).startswith("SWMKEY-1-"):
                raise APIFailure(400, "invalid key string")
            if body["UnlockKey"] != self.unlock_key:
                raise APIFailure(401, "swarm could not be unlocked: invalid key provided")
            self.state, self.control = "active", True
            return 200, None
        if method == "GET" and path == "/nodes":
            self.require_swarm()
            return 200, [self.read_node(n) for n in sorted(self.nodes)]
        match = re.fullmatch(r"/nodes/([^/]+)(/update)?", path)
        if match:
            ref = unquote(match.group(1))
            if method == "GET" and not match.group(2):
                self.require_swarm()
                return 200, self.read_node(ref)
            if method == "POST" and match.group(2):
                self.require_manager()
                node = self.resolve(ref)
                self.check_version(node, query, f"node {node['ID']}")
                if body.get("Availability") not in ("active", "pause", "drain"):
                    raise APIFailure(400, f"invalid Availability: {body.get('Availability')!r}")
                if node["Spec"]["Role"] == "manager" and body.get("Role") == "worker":
                    managers = [n for n in self.nodes.values() if n["Spec"]["Role"] == "manager"]
                    if len(managers) <= 1:
                        raise APIFailure(400, "attempting to demote the last manager of the swarm")
                if body.get("Role") != node["Spec"]["Role"]:
                    self.pending_roles[node["ID"]] = [self.role_settles_after]
                node["Spec"] = body
                node["Version"]["Index"] = self.bump()
                if self.role_settles_after == 0:
                    self.read_node(node["ID"])
                return 200, None
            if method == "DELETE" and not match.group(2):
                self.require_manager()
                node = self.resolve(ref)
                if node["Status"]["State"] == "ready" and query.get("force") != "true":
                    raise APIFailure(400, f"node {node['Description']['Hostname']} is not down and can't be removed")
                del self.nodes[node["ID"]]
                return 200, None
        answer = self.handle_workloads(method, path, query, body)
        if answer is not None:
            return answer
        if method == "GET" and path in ("/tasks", "/services"):
            items = self.tasks if path == "/tasks" else self.services
            if items is None:
                raise APIFailure(404, f"page not found: GET {path}")
            if not self.control and not (path == "/services" and self.services_visible_to_workers):
                self.require_manager()
            if path == "/tasks":
                if self.task_reads_until_drained > 0:
                    self.task_reads_until_drained -= 1
                    if self.task_reads_until_drained == 0:
                        for task in self.tasks or []:
                            task["Status"]["State"] = "shutdown"
                filters = json.loads(query.get("filters") or "{}")
                nodes = filters.get("node")
                if self.scheduling:
                    self.schedule()
                    items = self.tasks or []
                wanted = {self.find_service(ref)["ID"] for ref in filters.get("service") or []}
                states = set(filters.get("desired-state") or [])
                by_id = {s["ID"]: s for s in self.services or []}
                up_to_date = (filters.get("_up-to-date") or ["false"])[0] in ("1", "true")
                return 200, [
                    copy.deepcopy(t)
                    for t in items
                    if (not nodes or t["NodeID"] in nodes)
                    and (not wanted or t["ServiceID"] in wanted)
                    and (not states or t["DesiredState"] in states)
                    and (not up_to_date or (t["ServiceID"] in by_id and not task_dirty(by_id[t["ServiceID"]], t)))
                ]
            filters = json.loads(query.get("filters") or "{}")
            services = [s for s in items if not filters.get("id") or any(s["ID"].startswith(v) for v in filters["id"])]
            if query.get("status") == "true":  # the agent's own ServiceStatus
                services = [{**s, "ServiceStatus": service_status(s, self.tasks or [])} for s in services]
            return 200, copy.deepcopy(services)
        raise APIFailure(404, f"page not found: {method} {path}")

    # ---- services and networks (the agent's own validation, so that errors read as the agent's)
    def find_service(self, ref: str) -> dict[str, Any]:
        services = self.services or []
        for s in services:
            if ref in (s["ID"], s["Spec"]["Name"]):
                return s
        prefixed = [s for s in services if ref and s["ID"].startswith(ref)]
        if len(prefixed) == 1:
            return prefixed[0]
        raise APIFailure(404, f"service {ref} not found")

    def find_network(self, ref: str) -> dict[str, Any]:
        try:
            return resolve_network(self.networks or [], ref)
        except ShoalError as exc:
            raise APIFailure(exc.status, exc.message) from None

    def network_users(self, network: dict[str, Any]) -> list[str]:
        return sorted(
            s["Spec"]["Name"]
            for s in self.services or []
            if any(a["Target"] == network["ID"] for a in s["Spec"]["TaskTemplate"].get("Networks") or [])
        )

    def handle_workloads(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any] | None:
        if self.services is None and self.networks is None:
            return None
        try:
            return self._workloads(method, path, query, body)
        except ShoalError as exc:
            raise APIFailure(getattr(exc, "status", 400), exc.message) from None

    def _workloads(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any] | None:
        if path.startswith("/services") and self.services is not None:
            self.require_manager()
            if method == "POST" and path == "/services/create":
                spec = validate_service_spec(body)
                if any(s["Spec"]["Name"] == spec["Name"] for s in self.services):
                    raise APIFailure(409, f"service {spec['Name']} already exists")
                spec = resolve_targets(spec, self.networks or [])
                service = service_object(new_id(), spec, now_rfc3339())
                service["Version"]["Index"] = self.bump()
                self.services.append(service)
                return 201, {"ID": service["ID"], "Warnings": []}
            match = re.fullmatch(r"/services/([^/]+)(/update)?", path)
            if match:
                service = self.find_service(unquote(match.group(1)))
                if method == "GET" and not match.group(2):
                    return 200, copy.deepcopy(service)
                if method == "POST" and match.group(2):
                    self.check_version(service, query, f"service {service['Spec']['Name']}")
                    spec = resolve_targets(validate_service_spec(body, service["Spec"]), self.networks or [])
                    updated = updated_service(service, spec, now_rfc3339())
                    updated["Version"]["Index"] = self.bump()
                    if self.update_status is not None:
                        updated["UpdateStatus"] = copy.deepcopy(self.update_status)
                    self.services[self.services.index(service)] = updated
                    return 200, {"Warnings": []}
                if method == "DELETE" and not match.group(2):
                    self.services.remove(service)
                    for task in self.tasks or []:
                        if task["ServiceID"] == service["ID"]:
                            task["DesiredState"] = "remove"
                            task["Status"]["State"] = "shutdown"
                    return 200, None
            return None
        if path.startswith("/networks") and self.networks is not None:
            self.require_manager()
            if method == "GET" and path == "/networks":
                return 200, [docker_view(n, [], {}) for n in self.networks]
            if method == "POST" and path == "/networks/create":
                options = body.get("Options") if isinstance(body, dict) else None
                if isinstance(options, dict) and "encrypted" in options:  # as manager/control/networks.py
                    refuse_encrypted(list(self.nodes.values()), options["encrypted"])
                req = validate_create(body, self.networks)
                network = network_object(new_id(), req, free_vni(self.networks), now_rfc3339())
                network["Version"]["Index"] = self.bump()
                self.networks.append(network)
                return 201, {"Id": network["ID"], "Warning": ""}
            match = re.fullmatch(r"/networks/([^/]+)", path)
            if match:
                network = self.find_network(unquote(match.group(1)))
                if method == "GET":
                    return 200, docker_view(network, [], {})
                if method == "DELETE":
                    users = self.network_users(network)
                    if users:
                        raise APIFailure(
                            409, f"network {network['Spec']['Name']} is in use by service {', '.join(users)}"
                        )
                    if network["Spec"].get("Ingress"):
                        raise APIFailure(409, "the ingress network cannot be removed (the routing mesh needs it)")
                    self.networks.remove(network)
                    return 204, None
        return None

    def schedule(self) -> None:
        """Tasks follow the specs: out-of-date ones are shut down, missing ones made (pending for
        ``task_reads_to_run`` reads, then running, or failed with ``task_error``)."""
        tasks = self.tasks if self.tasks is not None else []
        for task in tasks:
            service = next((s for s in self.services or [] if s["ID"] == task["ServiceID"]), None)
            stale = service is None or task["Spec"] != service["Spec"]["TaskTemplate"]
            if task["DesiredState"] == "running" and stale:
                task["DesiredState"] = "shutdown"
                task["Status"]["State"] = "shutdown"
        for service in self.services or []:
            mode = service["Spec"]["Mode"]
            wanted = len(self.nodes) if "Global" in mode else mode["Replicated"]["Replicas"]
            mine = [t for t in tasks if t["ServiceID"] == service["ID"] and t["DesiredState"] == "running"]
            for extra in mine[wanted:]:
                extra["DesiredState"] = "shutdown"
                extra["Status"]["State"] = "shutdown"
            nodes = sorted(self.nodes)
            for slot in range(len(mine), wanted):
                tasks.append(
                    {
                        "ID": new_id(),
                        "ServiceID": service["ID"],
                        "Slot": slot + 1,
                        "NodeID": nodes[slot % len(nodes)],
                        "Spec": copy.deepcopy(service["Spec"]["TaskTemplate"]),
                        "DesiredState": "running",
                        "Status": {"State": "pending", "Timestamp": now_rfc3339(), "Err": ""},
                        "UpdatedAt": now_rfc3339(),
                    }
                )
        for task in tasks:
            if task["DesiredState"] == "running" and task["Status"]["State"] == "pending":
                if self.task_reads_to_run > 0:
                    continue
                if self.task_error:
                    task["Status"] = {"State": "failed", "Timestamp": now_rfc3339(), "Err": self.task_error}
                    task["DesiredState"] = "shutdown"
                else:
                    task["Status"]["State"] = "running"
        if self.task_reads_to_run > 0:
            self.task_reads_to_run -= 1
        self.tasks = tasks


class _Handler(BaseHTTPRequestHandler):
    agent: FakeAgent

    def log_message(self, *_args: Any) -> None:
        pass

    def _body(self) -> bytes:
        """The whole request body, also when it comes chunked (a file the client streams): answering
        before reading it would close the socket under the client's writes (a broken pipe)."""
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after each chunk
        self.rfile.readline()  # the CRLF after the last (empty) chunk
        return b"".join(chunks)

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        raw = self._body()
        body = json.loads(raw) if raw else None
        self.server.agent.headers.append((self.command, parts.path, dict(self.headers)))  # type: ignore[attr-defined]
        try:
            status, payload = self.server.agent.handle(self.command, parts.path, query, body)  # type: ignore[attr-defined]
            data = b"" if payload is None else (payload.encode() if payload == "OK" else json.dumps(payload).encode())
            ctype = "text/plain" if payload == "OK" else "application/json"
        except APIFailure as exc:
            status, data, ctype = exc.status, json.dumps({"message": exc.message}).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _serve


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@contextlib.contextmanager
def serve_fake_agent(hostname: str = "swarm00") -> Iterator[FakeAgent]:
    with tempfile.TemporaryDirectory() as tmp:
        sock = os.path.join(tmp, "shoal.sock")
        agent = FakeAgent(sock, hostname)
        server = _Server(sock, _Handler)
        server.agent = agent  # type: ignore[attr-defined]
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        thread.start()
        try:
            yield agent
        finally:
            server.shutdown()
            server.server_close()


@pytest.fixture
def agent() -> Iterator[FakeAgent]:
    with serve_fake_agent() as fake:
        yield fake


def run_module(
    module: ModuleType, args: dict[str, Any], *, check: bool = False, diff: bool = False
) -> tuple[bool, dict[str, Any]]:
    """Run ``module.main()`` with ``args``; (failed, result)."""
    full = {**args, "_ansible_check_mode": check, "_ansible_diff": diff}
    basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": full}).encode()
    basic._ANSIBLE_PROFILE = "legacy"
    # warnings are process-global in AnsibleModule: start each in-process run without the last one's
    for registry in ("_global_warnings", "_global_deprecations"):
        getattr(ansible_warnings, registry, {}).clear()
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        module.main()
    result = json.loads(out.getvalue())
    return bool(result.get("failed")), result


def module_runner(module: ModuleType, agent: FakeAgent) -> Callable[..., tuple[bool, dict[str, Any]]]:
    def run(check: bool = False, diff: bool = False, **args: Any) -> tuple[bool, dict[str, Any]]:
        return run_module(module, {"socket_path": agent.sock, **args}, check=check, diff=diff)

    return run


def test_fake_agent_answers_like_the_agent(agent: FakeAgent) -> None:
    from ansible_collections.shoal.swarm.plugins.module_utils._shoal_api import ShoalAPIError, ShoalClient

    api = ShoalClient(agent.sock, 5)
    assert api.ping() is True
    assert api.info()["Swarm"]["LocalNodeState"] == "inactive"
    with pytest.raises(ShoalAPIError) as exc:
        api.swarm()
    assert exc.value.status == 503 and "not part of a swarm" in exc.value.message
    agent.make_manager()
    assert api.node("swarm01")["ID"] == W1_ID
    assert api.node("nosuch") is None
