"""shoal.cli against a real (tiny, in-process) HTTP server on a unix socket: the client's wire
behaviour and every command's requests and output. No mocks: the server records what it got."""

from __future__ import annotations

import json
import os
import socket
import socketserver
import tempfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from shoal.cli.client import Client
from shoal.cli.errors import AgentUnreachable, APIError
from shoal.cli.main import main
from shoal.errors import ShoalError
from shoal.manager.control.filters import filter_nodes
from shoal.model.objects import new_node

NOW = "2026-11-27T23:13:48.123456789Z"
TOKENS = {"Worker": "SWMTKN-1-digest-workersecret", "Manager": "SWMTKN-1-digest-managersecret"}
LEADER = "tkxuxun03da7y2bozka50mpxi"


def filtered(q: dict[str, list[str]], apply: Callable[[dict[str, list[str]]], list[Any]]) -> tuple[int, Any]:
    """A list answered through the agent's own filters (the CLI sends `filters=`, never filters)."""
    filters = json.loads(q.get("filters", ["{}"])[0])
    try:
        return 200, apply(filters)
    except ShoalError as exc:
        return exc.status, {"message": exc.message}


class FakeAgent:
    """Answers the swarm subset from in-memory state, like the agent would on a manager."""

    def __init__(self, sock: str) -> None:
        self.sock = sock
        self.requests: list[tuple[str, str, dict[str, list[str]], Any]] = []
        self.headers: list[dict[str, str]] = []  # each request's headers, in the order of `requests`
        self.fail: dict[tuple[str, str], tuple[int, bytes]] = {}  # (method, path) -> canned error
        self.control = True
        self.nodes: dict[str, dict[str, Any]] = {
            n["ID"]: n
            for n in (
                new_node(LEADER, "swarm00", "manager", "10.213.0.10", NOW, leader=True),
                new_node("ickjus9bta1julsad2ls3paum", "swarm01", "worker", "10.213.0.11", NOW),
                new_node("ryc6zlbxrhvblc7lk8pl3jsva", "swarm02", "manager", "10.213.0.12", NOW),
            )
        }
        self.swarm: dict[str, Any] = {
            "ID": "n8v9vjxk1bqwqy6afoy7ap2tv",
            "Version": {"Index": 7},
            "Spec": {"Orchestration": {"TaskHistoryRetentionLimit": 5}, "Dispatcher": {"HeartbeatPeriod": 10**9}},
            "JoinTokens": dict(TOKENS),
        }
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet; and client_address is "" on AF_UNIX
                pass

            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                agent.requests.append((self.command, url.path, parse_qs(url.query), body))
                agent.headers.append(dict(self.headers))
                if (self.command, url.path) in agent.fail:
                    status, raw = agent.fail[(self.command, url.path)]
                    return self._send(status, raw)
                status, doc = agent.route(self.command, url.path, parse_qs(url.query), body)
                self._send(status, b"" if doc is None else json.dumps(doc).encode())

            def _send(self, status: int, raw: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                if raw:  # an empty write after the client closed raises BrokenPipeError in this thread
                    self.wfile.write(raw)

            do_GET = do_POST = do_DELETE = _serve

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self.server = Server(sock, Handler)
        # a short poll so that shutdown() at teardown does not wait the default half second
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def info(self) -> dict[str, Any]:
        managers = [n for n in self.nodes.values() if n.get("ManagerStatus")]
        return {
            "ServerVersion": "0.1.0",
            "Name": "swarm00",
            "Shoal": {"LoadBalancerBackend": "nftables"},
            "Swarm": {
                "LocalNodeState": "active",
                "NodeID": LEADER,
                "NodeAddr": "10.213.0.10",
                "ControlAvailable": self.control,
                "Managers": len(managers),
                "Nodes": len(self.nodes),
                "RemoteManagers": [{"NodeID": n["ID"], "Addr": n["ManagerStatus"]["Addr"]} for n in managers],
                "Cluster": {k: v for k, v in self.swarm.items() if k != "JoinTokens"},
            },
        }

    def route(self, method: str, path: str, q: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if (method, path) == ("GET", "/info"):
            return 200, self.info()
        if (method, path) == ("GET", "/version"):
            return 200, {"Version": "0.1.0", "ApiVersion": "1.56", "Os": "linux", "Arch": "amd64"}
        if (method, path) == ("GET", "/swarm"):
            return 200, self.swarm
        if (method, path) == ("POST", "/swarm/init"):
            return 200, LEADER
        if method == "POST" and path in ("/swarm/join", "/swarm/leave"):
            return 200, None
        if (method, path) == ("POST", "/swarm/update"):
            if q["version"] != [str(self.swarm["Version"]["Index"])]:
                return 409, {"message": "update out of sequence"}
            self.swarm["Spec"] = body
            self.swarm["Version"]["Index"] += 1
            for role in ("Worker", "Manager"):
                if q.get(f"rotate{role}Token") == ["true"]:
                    self.swarm["JoinTokens"][role] += "-rotated"
            return 200, None
        if (method, path) == ("GET", "/nodes"):
            return filtered(q, lambda f: filter_nodes(list(self.nodes.values()), f))
        if parts[0] == "nodes" and len(parts) >= 2:
            n = self.nodes.get(parts[1])
            if n is None:
                return 404, {"message": f"node {parts[1]} not found"}
            if method == "GET":
                return 200, n
            if method == "DELETE":
                if n["Status"]["State"] != "down" and q.get("force") != ["true"]:
                    return 400, {"message": f"node {n['ID']} is not down and can't be removed"}
                del self.nodes[n["ID"]]
                return 200, None
            if method == "POST" and parts[2:] == ["update"]:
                if q["version"] != [str(n["Version"]["Index"])]:
                    return 409, {"message": "update out of sequence"}
                n["Spec"] = body
                n["Version"]["Index"] += 1
                return 200, None
        return 404, {"message": f"page not found: {method} {path}"}

    def calls(self, method: str | None = None) -> list[str]:
        return [f"{m} {p}" for m, p, _, _ in self.requests if method in (None, m)]


@pytest.fixture
def sockdir() -> Iterator[str]:
    # a short path: AF_UNIX paths are limited to 107 bytes, pytest's tmp_path can be longer
    with tempfile.TemporaryDirectory(prefix="shoalcli") as d:
        yield d


@pytest.fixture
def agent(sockdir: str) -> Iterator[FakeAgent]:
    a = FakeAgent(os.path.join(sockdir, "shoal.sock"))
    yield a
    a.close()


def run(agent: FakeAgent, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["-H", f"unix://{agent.sock}", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


# --- the client ------------------------------------------------------------------------------------


def test_client_json_round_trip_and_query_encoding(agent: FakeAgent) -> None:
    c = Client(f"unix://{agent.sock}")
    assert c.get("/swarm")["ID"] == "n8v9vjxk1bqwqy6afoy7ap2tv"
    c.post("/swarm/leave", force=True)
    c.get("/nodes", filters={"role": ["manager"]})
    assert agent.requests[1][2] == {"force": ["true"]}
    assert json.loads(agent.requests[2][2]["filters"][0]) == {"role": ["manager"]}


def test_client_raises_api_error_with_the_agents_message(agent: FakeAgent) -> None:
    with pytest.raises(APIError) as e:
        Client(f"unix://{agent.sock}").get("/nodes/nope")
    assert (e.value.status, e.value.message) == (404, "node nope not found")


def test_non_json_error_bodies_are_reported_as_text(agent: FakeAgent) -> None:
    agent.fail[("GET", "/swarm")] = (502, b"upstream exploded")
    with pytest.raises(APIError, match="upstream exploded"):
        Client(f"unix://{agent.sock}").get("/swarm")
    agent.fail[("GET", "/swarm")] = (500, b"")
    with pytest.raises(APIError) as e:
        Client(f"unix://{agent.sock}").get("/swarm")
    assert e.value.message == "500 Internal Server Error"


def test_api_error_is_printed_docker_style_and_exits_1(agent: FakeAgent, capsys: pytest.CaptureFixture[str]) -> None:
    agent.fail[("GET", "/nodes")] = (503, b'{"message": "This node is not a swarm manager."}')
    rc, out, err = run(agent, capsys, "node", "ls")
    assert (rc, out, err) == (1, "", "Error response from daemon: This node is not a swarm manager.\n")


def test_missing_socket(sockdir: str, capsys: pytest.CaptureFixture[str]) -> None:
    host = f"unix://{sockdir}/absent.sock"
    rc = main(["-H", host, "node", "ls"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err == f"Cannot connect to the shoal agent at {host}. Is shoald running?\n"
    assert "Traceback" not in err


def test_stale_socket_file_is_cannot_connect(sockdir: str) -> None:
    path = os.path.join(sockdir, "stale.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()  # the file stays, nobody listens: ECONNREFUSED
    with pytest.raises(AgentUnreachable, match="Is shoald running"):
        Client(f"unix://{path}").get("/_ping")


def test_host_from_environment_and_default(
    agent: FakeAgent, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert Client().host == "unix:///run/shoal/shoal.sock"
    monkeypatch.setenv("SHOAL_HOST", f"unix://{agent.sock}")
    assert main(["swarm", "inspect"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["ID"] == "n8v9vjxk1bqwqy6afoy7ap2tv"
    assert main(["-H", "tcp://10.213.0.10:2375", "swarm", "inspect"]) == 1
    assert "unsupported host" in capsys.readouterr().err


def test_debug_prints_the_traceback(sockdir: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-D", "-H", f"unix://{sockdir}/absent.sock", "info"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("Is shoald running?\n")


# --- swarm -------------------------------------------------------------------------------------------


def test_swarm_init(agent: FakeAgent, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(agent, capsys, "swarm", "init", "--advertise-addr", "ens33", "--task-history-limit", "2")
    assert rc == 0
    assert agent.requests[0] == (
        "POST",
        "/swarm/init",
        {},
        {
            "ListenAddr": "0.0.0.0:2377",
            "AdvertiseAddr": "ens33",
            "Spec": {"Orchestration": {"TaskHistoryRetentionLimit": 2}},
        },
    )
    assert out == (
        f"Swarm initialized: current node ({LEADER}) is now a manager.\n\n"
        "To add a worker to this swarm, run the following command:\n\n"
        "    shoal swarm join --token SWMTKN-1-digest-workersecret 10.213.0.10:2377\n\n"
        "To add a manager to this swarm, run 'shoal swarm join-token manager' and follow the instructions.\n\n"
    )


def test_swarm_init_error(agent: FakeAgent, capsys: pytest.CaptureFixture[str]) -> None:
    msg = 'This node is already part of a swarm. Use "shoal swarm leave" to leave this swarm and join another one.'
    agent.fail[("POST", "/swarm/init")] = (503, json.dumps({"message": msg}).encode())
    assert run(agent, capsys, "swarm", "init") == (1, "", f"Error response from daemon: {msg}\n")


@pytest.mark.parametrize(("control", "role"), [(False, "worker"), (True, "manager")])
def test_swarm_join(agent: FakeAgent, capsys: pytest.CaptureFixture[str], control: bool, role: str) -> None:
    agent.control = control
    rc, out, _ = run(agent, capsys, "swarm", "join", "--token", TOKENS["Worker"], "10.213.0.10:2377")
    assert (rc, out) == (0, f"This node joined a swarm as a {role}.\n")
    assert agent.requests[0][3] == {
        "RemoteAddrs": ["10.213.0.10:2377"],
        "JoinToken": TOKENS["Worker"],
        "ListenAddr": "0.0.0.0:2377",
        "AdvertiseAddr": "",
    }


def test_join_token(agent: FakeAgent, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(agent, capsys, "swarm", "join-token", "manager") == (
        0,
        "To add a manager to this swarm, run the following command:\n\n"
        "    shoal swarm join --token SWMTKN-1-digest-managersecret 10.213.0.10:2377\n\n",
        "",
    )
    assert run(agent, capsys, "swarm", "join-token", "-q", "worker") == (0, "SWMTKN-1-digest-workersecret\n", "")
    assert agent.calls("POST") == []


def test_join_token_rotate(agent: FakeAgent, capsys: pytest.CaptureFixture[str]) -> None:
    spec = agent.swarm["Spec"]
    rc, out, _ = run(agent, capsys, "swarm", "join-token", "--rotate", "worker")
    assert rc == 0
    assert out.startswith("Successfully rotated worker join token.\n\nTo add a worker")
    assert "--token SWMTKN-1-digest-workersecret-rotated 10.213.0.10:2377" in out
    (update,) = [r for r in agent.requests if r[0] == "POST"]
    assert update == ("POST", "/swarm/update", {"version": ["7"], "rotateWorkerToken": ["true"]}, spec)
    assert run(agent, capsys, "swarm", "join-token", "--rotate", "-q", "manager") == (
        0,
        "SWMTKN-1-digest-managersecret-rotated\n",
        "",
    )


def test_swarm_update_sends_the_spec_with_its_version(agent: FakeAgent, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(agent, capsys, "swarm", "update", "--dispatcher-heartbeat", "5s")
    assert (rc, out) == (0, "Swarm updated.\n")
    (update,) = [r for r in agent.requests if r[0] == "POST"]
    assert update[2] == {"version": ["7"]}
    assert update[3] == {
        "Orchestration": {"TaskHistoryRetentionLimit": 5},
        "Dispatcher": {"HeartbeatPeriod": 5 * 10**9},
    }


def test_swarm_leave(agent: FakeAgent, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(agent, capsys, "swarm", "leave", "--force") == (0, "Node left the swarm.\n", "")
    assert agent.requests[0][:3] == ("POST", "/swarm/leave", {"force": ["true"]})


# --- node ---------------------------------------------------------------------------------------------


def test_node_ls(agent: FakeAgent, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(agent, capsys, "node", "ls")
    assert rc == 0
    assert out == (
        "ID                            HOSTNAME   STATUS    AVAILABILITY   MANAGER STATUS   ENGINE VERSION\n"
        "tkxuxun03da7y2bozka50mpxi *   swarm00    Ready     Active         Leader           0.1.0\n"
        "ickjus9bta1julsad2ls3paum     swarm01    Ready     Active                          0.1.0\n"
        "ryc6zlbxrhvblc7lk8pl3jsva     swarm02    Ready     Active         Reachable        0.1.0\n"
    )


def test_node_ls_filters(agent: FakeAgent, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(agent, capsys, "node", "ls", "-q", "--filter", "role=manager")
    assert (rc, out.split()) == (0, [LEADER, "ryc6zlbxrhvblc7lk8pl3jsva"])
    rc, out, _ = run(agent, capsys, "node", "ls", "--format", "{{.Hostname}}", "-f", "name=swarm0", "-f", "role=worker")
    assert (rc, out) == (0, "swarm01\n")


def test_node_ls_bad_filter_is_the_agents_400(agent: FakeAgent, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(agent, capsys, "node", "ls", "--filter", "role=boss")
    assert (rc, out) == (1, "") and "invalid filter 'role=boss'" in err
    assert [(m, p, json.loads(q["filters"][0])) for m, p, q, _ in agent.requests] == [
        ("GET", "/nodes", {"role": ["boss"]})
    ]


def test_node_inspect_json_and_partial_failure(agent: FakeAgent, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(agent, capsys, "node", "inspect", "self", "swarm01", "nope")
    assert rc == 1
    assert [n["ID"] for n in json.loads(out)] == [LEADER, "ickjus9bta1julsad2ls3paum"]
    assert out.startswith('[\n    {\n        "ID": ')  # docker's 4-space indent
    assert err == "Error: No such node: nope\n"


def test_node_inspect_pretty(agent: FakeAgent, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(agent, capsys, "node", "inspect", "--pretty", "ryc6")
    assert rc == 0
    assert out.startswith("ID:                     ryc6zlbxrhvblc7lk8pl3jsva\nHostname:               swarm02\n")
    assert " Raft Status:           Reachable\n Leader:                No\n" in out


def test_promote_and_demote(agent: FakeAgent, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(agent, capsys, "node", "promote", "swarm01", "swarm02")
    assert rc == 0
    assert out == (
        "Node swarm01 promoted to a manager in the swarm.\nNode ryc6zlbxrhvblc7lk8pl3jsva is already a manager.\n"
    )
    (update,) = [r for r in agent.requests if r[0] == "POST"]
    assert update[:3] == ("POST", "/nodes/ickjus9bta1julsad2ls3paum/update", {"version": ["0"]})
    assert update[3] == {"Labels": {}, "Role": "manager", "Availability": "active"}
    assert run(agent, capsys, "node", "demote", "swarm01") == (0, "Manager swarm01 demoted in the swarm.\n", "")
    assert agent.requests[-1][2] == {"version": ["1"]}  # the version it read, not a stale one


def test_node_update(agent: FakeAgent, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["node", "update", "--availability", "Drain", "--label-add", "zone=a", "swarm00"]
    assert run(agent, capsys, *argv) == (0, "swarm00\n", "")
    assert agent.nodes[LEADER]["Spec"] == {"Labels": {"zone": "a"}, "Role": "manager", "Availability": "drain"}
    rc, _, err = run(agent, capsys, "node", "update", "--label-rm", "nope", "swarm00")
    assert (rc, err) == (1, "key nope doesn't exist in node's labels\n")


def test_node_update_bad_availability_calls_nothing(agent: FakeAgent, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(agent, capsys, "node", "update", "--availability", "sleep", "swarm00")
    assert (rc, out) == (1, "")
    assert err == "invalid availability 'sleep': use active, pause or drain\n"
    assert agent.requests == []


def test_node_update_version_conflict(agent: FakeAgent, capsys: pytest.CaptureFixture[str]) -> None:
    agent.fail[("POST", f"/nodes/{LEADER}/update")] = (409, b'{"message": "update out of sequence"}')
    rc, _, err = run(agent, capsys, "node", "update", "--availability", "pause", "swarm00")
    assert (rc, err) == (1, "Error response from daemon: update out of sequence\n")


def test_node_rm_removes_what_it_can(agent: FakeAgent, capsys: pytest.CaptureFixture[str]) -> None:
    agent.nodes["ryc6zlbxrhvblc7lk8pl3jsva"]["Status"]["State"] = "down"
    rc, out, err = run(agent, capsys, "node", "rm", "swarm01", "swarm02", "ghost")
    assert (rc, out) == (1, "swarm02\n")
    assert err == (
        "Error response from daemon: node ickjus9bta1julsad2ls3paum is not down and can't be removed\n"
        "Error: No such node: ghost\n"
    )
    assert run(agent, capsys, "node", "rm", "--force", "swarm01") == (0, "swarm01\n", "")
    assert agent.requests[-1][:3] == ("DELETE", "/nodes/ickjus9bta1julsad2ls3paum", {"force": ["true"]})
    assert sorted(agent.nodes) == [LEADER]


# --- system ---------------------------------------------------------------------------------------------


def test_info(agent: FakeAgent, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(agent, capsys, "info")
    assert rc == 0
    assert out.startswith(f"Client:\n Version:    0.1.0\n Host:       unix://{agent.sock}\n")
    assert "\nServer:\n Server Version: 0.1.0\n Swarm: active\n" in out
    assert "  Is Manager: true\n  ClusterID: n8v9vjxk1bqwqy6afoy7ap2tv\n  Managers: 2\n  Nodes: 3\n" in out
    assert " Load balancer backend: nftables\n" in out


def test_version_prints_the_client_part_when_the_agent_is_down(
    sockdir: str, agent: FakeAgent, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = run(agent, capsys, "version")
    assert rc == 0 and "\nServer:\n Engine:\n  Version:          0.1.0\n" in out
    assert main(["-H", f"unix://{Path(sockdir) / 'gone.sock'}", "version"]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("Client:\n") and "Server" not in out
    assert "Is shoald running?" in err


def test_group_without_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["node"]) == 0
    assert "promote" in capsys.readouterr().out
