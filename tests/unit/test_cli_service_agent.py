"""`shoal service|ps|exec|kill|image` against a real (tiny, in-process) HTTP server on a unix socket.
No mocks: the fake agent keeps services and tasks in memory and records every request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.cli import service_progress
from shoal.manager.control.filters import filter_services
from shoal.model.ids import new_id, now_rfc3339
from unit.test_cli_agent import FakeAgent, filtered, run

WORKER = "ickjus9bta1julsad2ls3paum"
AGENT_SRC = str(Path(__file__).resolve().parents[2] / "agent" / "src")


def frame(stream: int, data: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


class FakeSwarm(FakeAgent):
    """FakeAgent plus services, tasks (running at once unless `stuck` is set), networks, local tasks
    and images, answering in Docker Engine API shapes."""

    def __init__(self, sock: str) -> None:
        super().__init__(sock)

        class Handler(self.server.RequestHandlerClass):  # type: ignore[name-defined,misc]
            def _send(self, status: int, raw: bytes) -> None:
                # as FakeAgent's, but an empty body is not written: writing b"" after the client
                # has read the headers and closed raises BrokenPipeError in the server thread
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                if raw:
                    self.wfile.write(raw)

        self.server.RequestHandlerClass = Handler
        self.services: dict[str, dict[str, Any]] = {}
        self.tasks: list[dict[str, Any]] = []
        self.stuck = ""  # a task error: new tasks stay pending with it
        self.status = True  # answer ServiceStatus for ?status=true
        self.strict = False  # refuse docker's `_up-to-date` task filter, as an older agent would
        self.networks = {"internal": {"Id": "netinternal00000000000000a", "Name": "internal"}}
        self.images = [
            {"Name": "shoal/host", "Tag": "latest", "ID": "sha256:" + "a" * 64, "Created": "2024-01-01T00:00:00Z"},
        ]
        self.local = [
            {
                "ID": "faapm76m2wgdubylakmjnkwge",
                "Name": "nodejs.1",
                "CreatedAt": now_rfc3339(),
                "Spec": {"ContainerSpec": {"Image": "shoal/hello", "Args": ["serve"]}},
                "Status": {"State": "running", "Timestamp": now_rfc3339()},
                "Pid": 4242,
            }
        ]

    # -- helpers
    def find(self, ref: str) -> dict[str, Any] | None:
        for match in (
            lambda s: s["ID"] == ref,
            lambda s: s["Spec"].get("Name") == ref,
            lambda s: s["ID"].startswith(ref),
        ):
            found = [s for s in self.services.values() if match(s)]
            if len(found) == 1:
                return found[0]
        return None

    def converge(self, svc: dict[str, Any]) -> None:
        """Shut down what is surplus or outdated, start what is missing (at once)."""
        template = svc["Spec"]["TaskTemplate"]
        mode = svc["Spec"]["Mode"]
        live = [t for t in self.tasks if t["ServiceID"] == svc["ID"] and t["DesiredState"] == "running"]
        if "Global" in mode:
            keys: list[tuple[int, str]] = [(0, n) for n in self.nodes]
        else:
            keys = [(i, WORKER) for i in range(1, mode["Replicated"].get("Replicas", 1) + 1)]
        for t in live:
            if (t["Slot"], t["NodeID"]) not in keys or t["Spec"] != template:
                t["DesiredState"] = "shutdown"
                t["Status"] = {"State": "shutdown", "Timestamp": now_rfc3339()}
        running = {(t["Slot"], t["NodeID"]) for t in live if t["DesiredState"] == "running"}
        for slot, node in keys:
            if (slot, node) in running:
                continue
            state = {"State": "pending", "Err": self.stuck} if self.stuck else {"State": "running"}
            self.tasks.append(
                {
                    "ID": new_id(),
                    "Version": {"Index": 1},
                    "CreatedAt": now_rfc3339(),
                    "ServiceID": svc["ID"],
                    "Slot": slot,
                    "NodeID": "" if self.stuck else node,
                    "Spec": json.loads(json.dumps(template)),
                    "DesiredState": "running",
                    "Status": {**state, "Timestamp": now_rfc3339()},
                }
            )

    def service_out(self, svc: dict[str, Any], status: bool) -> dict[str, Any]:
        out = {**svc, "Endpoint": {"Spec": svc["Spec"].get("EndpointSpec", {}), "Ports": []}}
        for p in svc["Spec"].get("EndpointSpec", {}).get("Ports", []):
            out["Endpoint"]["Ports"].append({**p, "PublishedPort": p["PublishedPort"] or 30000})
        if status and self.status:
            mine = [t for t in self.tasks if t["ServiceID"] == svc["ID"] and t["DesiredState"] == "running"]
            running = sum(t["Status"]["State"] == "running" for t in mine)
            out["ServiceStatus"] = {"RunningTasks": running, "DesiredTasks": len(mine)}
        return out

    # -- routes
    def route(self, method: str, path: str, q: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if (method, path) == ("POST", "/services/create"):
            if self.find(body.get("Name", "")):
                return 409, {"message": f"service {body['Name']} already exists"}
            svc = {"ID": new_id(), "Version": {"Index": 1}, "CreatedAt": now_rfc3339(), "Spec": body}
            self.services[svc["ID"]] = svc
            self.converge(svc)
            return 201, {"ID": svc["ID"], "Warnings": ["image shoal/host could not be accessed on a registry"]}
        if (method, path) == ("GET", "/services"):
            out = [self.service_out(s, q.get("status") == ["true"]) for s in self.services.values()]
            return filtered(q, lambda f: filter_services(out, f))
        if parts[0] == "services" and len(parts) >= 2:
            svc = self.find(parts[1])
            if svc is None:
                return 404, {"message": f"service {parts[1]} not found"}
            if method == "GET" and len(parts) == 2:
                return 200, self.service_out(svc, False)
            if method == "DELETE" and parts[1] == svc["ID"]:
                del self.services[svc["ID"]]
                return 200, None
            if method == "POST" and parts[2:] == ["update"] and parts[1] == svc["ID"]:
                if q["version"] != [str(svc["Version"]["Index"])]:
                    return 409, {"message": "update out of sequence"}
                if q.get("rollback") == ["previous"]:
                    body = svc["PreviousSpec"]
                svc["PreviousSpec"], svc["Spec"] = svc["Spec"], body
                svc["Version"]["Index"] += 1
                self.converge(svc)
                return 200, {"Warnings": []}
        if (method, path) == ("GET", "/tasks"):
            filters = json.loads(q.get("filters", ["{}"])[0])
            if self.strict and "_up-to-date" in filters:
                return 400, {"message": "invalid filter '_up-to-date'"}
            tasks = [t for t in self.tasks if t["ServiceID"] in filters.get("service", [t["ServiceID"]])]
            tasks = [t for t in tasks if t["DesiredState"] in filters.get("desired-state", [t["DesiredState"]])]
            return 200, tasks
        if parts[0] == "networks" and len(parts) == 2 and method == "GET":
            net = self.networks.get(parts[1])
            return (200, net) if net else (404, {"message": f"network {parts[1]} not found"})
        if (method, path) == ("GET", "/networks"):
            return 200, list(self.networks.values())
        if (method, path) == ("GET", "/shoal/local/tasks"):
            return 200, self.local
        if parts[:3] == ["shoal", "local", "tasks"] and len(parts) == 5:
            if parts[3] not in ("nodejs.1", "faapm76m2wgd"):
                return 404, {"message": f"No such task: {parts[3]}"}
            if parts[4] == "kill" and method == "POST":
                return 200, None
            if parts[4] == "exec" and method == "GET":
                cmd = json.loads(q["cmd"][0])
                env = {"PATH": os.environ["PATH"], "IN_TASK": "nodejs.1"}
                return 200, {"Argv": ["sh", "-c", 'echo "in $IN_TASK"; exec "$@"', "sh", *cmd], "Env": env}
        if (method, path) == ("GET", "/shoal/images"):
            return 200, self.images
        if (method, path) == ("POST", "/shoal/images/import"):
            return 200, {"ID": "sha256:" + "c" * 64, "Name": body["Name"], "Tag": body["Tag"]}
        return super().route(method, path, q, body)

    def bodies(self, method: str, path: str) -> list[Any]:
        return [b for m, p, _, b in self.requests if (m, p) == (method, path)]

    def queries(self, method: str, path: str) -> list[dict[str, list[str]]]:
        return [q for m, p, q, _ in self.requests if (m, p) == (method, path)]


@pytest.fixture
def swarm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSwarm]:
    monkeypatch.setattr(service_progress, "POLL_INTERVAL", 0.01)
    with tempfile.TemporaryDirectory(prefix="shoalsvc") as d:
        agent = FakeSwarm(os.path.join(d, "shoal.sock"))
        yield agent
        agent.close()


def create(swarm: FakeSwarm, capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, str, str]:
    return run(swarm, capsys, "service", "create", *flags)


# --- create --------------------------------------------------------------------------------------------


def test_create_detached_posts_the_spec_and_prints_the_id(swarm: FakeSwarm, capsys: pytest.CaptureFixture[str]):
    rc, out, err = create(
        swarm, capsys, "-d", "--name", "nodejs", "--replicas", "2", "-p", "80:8080", "--network", "internal",
        "--constraint", "node.role==worker", "shoal/hello",
    )  # fmt: skip
    assert rc == 0
    (svc,) = swarm.services.values()
    assert out == f"{svc['ID']}\n"
    assert "could not be accessed" in err  # the agent's warnings go to stderr
    (body,) = swarm.bodies("POST", "/services/create")
    assert body["Name"] == "nodejs" and body["Mode"] == {"Replicated": {"Replicas": 2}}
    assert body["TaskTemplate"]["Networks"] == [{"Target": "netinternal00000000000000a"}]  # resolved to the ID
    assert body["EndpointSpec"]["Ports"][0]["PublishedPort"] == 80
    assert swarm.calls() == ["GET /networks/internal", "POST /services/create"]


def test_create_waits_for_convergence_with_docker_progress(swarm: FakeSwarm, capsys: pytest.CaptureFixture[str]):
    rc, out, _ = create(swarm, capsys, "--name", "web", "--replicas", "2", "--update-monitor", "20ms", "shoal/host")
    assert rc == 0
    sid = next(iter(swarm.services))
    assert out.splitlines() == [
        sid,
        "overall progress: 2 out of 2 tasks",
        "1/2: running",
        "2/2: running",
        "verify: Waiting 1 seconds to verify that tasks are stable...",
        f"verify: Service {sid} converged",
    ]
    query = swarm.queries("GET", "/tasks")[0]
    assert json.loads(query["filters"][0]) == {"service": [sid], "_up-to-date": ["true"]}


def test_create_that_cannot_converge_fails_after_the_timeout(swarm: FakeSwarm, capsys: pytest.CaptureFixture[str]):
    swarm.stuck = "no suitable node (3 nodes did not satisfy constraints)"
    rc, out, err = create(
        swarm,
        capsys,
        "--name",
        "web",
        "--timeout",
        "100ms",
        "--update-monitor",
        "1ms",
        "--constraint",
        "node.id==x",
        "shoal/host",
    )
    assert rc == 1
    assert "1/1: no suitable node (3 nodes did not satisfy constraints)" in out
    assert "did not converge: 0 out of 1 tasks running" in err
    assert err.rstrip().endswith("no suitable node (3 nodes did not satisfy constraints)")


@pytest.mark.parametrize(
    "flags",
    [
        ("--replicas=-1", "shoal/host"),
        ("--limit-memory", "64X", "shoal/host"),
        ("--publish", "80:8080/icmp", "shoal/host"),
        ("--mode", "everywhere", "shoal/host"),
        ("--restart-delay", "soon", "shoal/host"),
    ],
)
def test_bad_input_never_reaches_the_agent(swarm: FakeSwarm, capsys: pytest.CaptureFixture[str], flags: tuple[str]):
    with pytest.raises(SystemExit) as e:
        create(swarm, capsys, *flags)
    assert e.value.code == 2
    assert swarm.requests == []


def test_create_errors_are_reported_without_half_applying(swarm: FakeSwarm, capsys: pytest.CaptureFixture[str]):
    rc, _, err = create(swarm, capsys, "--mode", "global", "--replicas", "2", "shoal/host")
    assert (rc, err) == (1, "replicas can only be used with replicated mode\n")
    rc, _, err = create(swarm, capsys, "--network", "nowhere", "shoal/host")
    assert (rc, err) == (1, "network nowhere not found\n")
    assert swarm.bodies("POST", "/services/create") == []
    swarm.fail[("POST", "/services/create")] = (400, b'{"message": "invalid memory limit: minimum is 4MiB"}')
    rc, _, err = create(swarm, capsys, "-d", "--limit-memory", "1M", "shoal/host")
    assert (rc, err) == (1, "Error response from daemon: invalid memory limit: minimum is 4MiB\n")


# --- update / rollback / scale / rm --------------------------------------------------------------------


def test_update_posts_the_merged_spec_with_its_version(swarm: FakeSwarm, capsys: pytest.CaptureFixture[str]):
    create(swarm, capsys, "-d", "--name", "web", "-e", "A=1", "shoal/host", "sleep", "60")
    rc, out, _ = run(swarm, capsys, "service", "update", "-d", "--env-add", "B=2", "--image", "shoal/hello", "web")
    assert (rc, out) == (0, "web\n")
    (svc,) = swarm.services.values()
    ((_, _, q, body),) = [r for r in swarm.requests if r[1].endswith("/update")]
    assert q == {"version": ["1"]}
    assert body["TaskTemplate"]["ContainerSpec"] == {
        "Image": "shoal/hello",
        "Args": ["sleep", "60"],
        "Env": ["A=1", "B=2"],
    }
    assert svc["Version"]["Index"] == 2


def test_update_without_detach_waits_for_the_new_tasks(swarm: FakeSwarm, capsys: pytest.CaptureFixture[str]):
    create(swarm, capsys, "-d", "--name", "web", "--replicas", "2", "shoal/host")
    rc, out, _ = run(swarm, capsys, "service", "update", "--force", "--update-monitor", "1ms", "web")
    assert rc == 0
    assert out.splitlines()[0] == "web" and out.splitlines()[-1].endswith("converged")
    assert sum(t["DesiredState"] == "shutdown" for t in swarm.tasks) == 2  # old ones replaced


def test_waiting_works_with_an_agent_that_refuses_the_up_to_date_filter(
    swarm: FakeSwarm, capsys: pytest.CaptureFixture[str]
):
    swarm.strict = True
    create(swarm, capsys, "-d", "--name", "web", "--update-monitor", "1ms", "shoal/host")
    rc, out, _ = run(swarm, capsys, "service", "update", "--image", "shoal/hello", "web")
    assert rc == 0 and out.splitlines()[-1].endswith("converged")
    sent = [json.loads(q["filters"][0]) for q in swarm.queries("GET", "/tasks")]
    assert "_up-to-date" in sent[0] and all("_up-to-date" not in f for f in sent[1:])


def test_update_conflict_and_rollback(swarm: FakeSwarm, capsys: pytest.CaptureFixture[str]):
    create(swarm, capsys, "-d", "--name", "web", "shoal/host")
    swarm.fail[("POST", f"/services/{next(iter(swarm.services))}/update")] = (
        409,
        b'{"message": "update out of sequence"}',
    )
    rc, _, err = run(swarm, capsys, "service", "update", "-d", "--replicas", "3", "web")
    assert (rc, err) == (1, "Error response from daemon: update out of sequence\n")
    swarm.fail.clear()
    run(swarm, capsys, "service", "update", "-d", "--replicas", "3", "web")
    rc, out, _ = run(swarm, capsys, "service", "rollback", "-d", "web")
    assert (rc, out) == (0, "web\n")
    assert swarm.queries("POST", f"/services/{next(iter(swarm.services))}/update")[-1] == {
        "version": ["2"],
        "rollback": ["previous"],
    }
    assert next(iter(swarm.services.values()))["Spec"]["Mode"] == {"Replicated": {"Replicas": 1}}
    rc, _, err = run(swarm, capsys, "service", "update", "-d", "--rollback", "--replicas", "2", "web")
    assert (rc, err) == (1, "other flags may not be combined with --rollback\n")


def test_scale_replicated_refuses_global_and_checks_every_spec_first(
    swarm: FakeSwarm, capsys: pytest.CaptureFixture[str]
):
    create(swarm, capsys, "-d", "--name", "web", "--update-monitor", "1ms", "shoal/host")
    create(swarm, capsys, "-d", "--name", "agent", "--mode", "global", "shoal/host")
    rc, _, err = run(swarm, capsys, "service", "scale", "web=2", "agent")
    assert rc == 1 and "invalid scale specifier 'agent'" in err
    assert swarm.calls("POST")[-1] == "POST /services/create"  # nothing scaled
    rc, out, err = run(swarm, capsys, "service", "scale", "-d", "web=3", "agent=2", "ghost=1")
    assert rc == 1
    assert out == "web scaled to 3\n"
    assert (
        err == "agent: scale can only be used with replicated or replicated-job mode\nghost: no such service: ghost\n"
    )
    rc, out, _ = run(swarm, capsys, "service", "scale", "--timeout", "5s", "web=1")
    assert rc == 0 and out.splitlines()[0] == "web scaled to 1" and out.splitlines()[-1].startswith("verify: ")


def test_rm_removes_what_it_can(swarm: FakeSwarm, capsys: pytest.CaptureFixture[str]):
    create(swarm, capsys, "-d", "--name", "web", "shoal/host")
    sid = next(iter(swarm.services))
    rc, out, err = run(swarm, capsys, "service", "rm", "web", "ghost")
    assert (rc, out, err) == (1, "web\n", "Error: no such service: ghost\n")
    assert f"DELETE /services/{sid}" in swarm.calls() and swarm.services == {}


# --- ls / ps / inspect ------------------------------------------------------------------------------------


def test_ls_uses_service_status_or_counts_tasks(swarm: FakeSwarm, capsys: pytest.CaptureFixture[str]):
    create(swarm, capsys, "-d", "--name", "nodejs", "--replicas", "2", "-p", "80:8080", "shoal/hello")
    create(swarm, capsys, "-d", "--name", "agent", "--mode", "global", "shoal/host")
    rc, out, _ = run(swarm, capsys, "service", "ls")
    lines = out.splitlines()
    assert rc == 0 and lines[0].split() == ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]
    assert lines[1].split()[1:] == ["agent", "global", "3/3", "shoal/host"]
    assert lines[2].split()[1:] == ["nodejs", "replicated", "2/2", "shoal/hello", "*:80->8080/tcp"]
    assert swarm.queries("GET", "/services")[-1] == {"status": ["true"]}
    swarm.status = False  # an agent without ServiceStatus: counted from the tasks, as older docker did
    _, again, _ = run(swarm, capsys, "service", "ls", "--filter", "mode=replicated")
    assert again.splitlines()[1:] == lines[2:]
    _, quiet, _ = run(swarm, capsys, "service", "ls", "-q", "-f", "name=nod")
    assert quiet.split() == [s["ID"] for s in swarm.services.values() if s["Spec"]["Name"] == "nodejs"]


def test_ps_shows_history_and_sends_filters(swarm: FakeSwarm, capsys: pytest.CaptureFixture[str]):
    create(swarm, capsys, "-d", "--name", "nodejs", "shoal/hello")
    first = swarm.tasks[0]
    first.update(DesiredState="shutdown")
    first["Status"].update(State="failed", Err="task: non-zero exit (137)")
    swarm.converge(next(iter(swarm.services.values())))
    rc, out, _ = run(swarm, capsys, "service", "ps", "nodejs")
    lines = out.splitlines()
    assert rc == 0 and len(lines) == 3
    assert lines[1].split()[1:4] == ["nodejs.1", "shoal/hello", "swarm01"]
    assert lines[2].split()[1:4] == ["\\_", "nodejs.1", "shoal/hello"]
    assert lines[2].rstrip().endswith('"task: non-zero exit (137)"')
    rc, out, err = run(swarm, capsys, "service", "ps", "-q", "--no-trunc", "-f", "desired-state=running",
                       "-f", "node=swarm01", "nodejs", "ghost")  # fmt: skip
    assert (rc, out.split(), err) == (1, [swarm.tasks[1]["ID"]], "no such service: ghost\n")
    sent = json.loads(swarm.queries("GET", "/tasks")[-1]["filters"][0])
    assert sent == {"desired-state": ["running"], "node": [WORKER], "service": [first["ServiceID"]]}


def test_inspect_json_and_pretty(swarm: FakeSwarm, capsys: pytest.CaptureFixture[str]):
    create(swarm, capsys, "-d", "--name", "nodejs", "-p", "80:8080", "--network", "internal", "shoal/hello")
    rc, out, _ = run(swarm, capsys, "service", "inspect", "nodejs")
    (doc,) = json.loads(out)
    assert rc == 0 and doc["Spec"]["Name"] == "nodejs"
    rc, out, err = run(swarm, capsys, "service", "inspect", "--pretty", "nodejs", "ghost")
    assert rc == 1 and err == "Error: no such service: ghost\n"
    assert "Name:           nodejs\n" in out and "Networks: internal\n" in out and " PublishedPort = 80\n" in out


# --- logs ----------------------------------------------------------------------------------------------------


def test_logs_are_demultiplexed_and_prefixed(swarm: FakeSwarm, capsys: pytest.CaptureFixture[str]):
    create(swarm, capsys, "-d", "--name", "nodejs", "shoal/hello")
    sid, task = next(iter(swarm.services)), swarm.tasks[0]
    details = (
        f"com.docker.swarm.node.id={WORKER},com.docker.swarm.service.id={sid},com.docker.swarm.task.id={task['ID']}"
    )
    stream = frame(1, f"{details} listening on 8080\n{details} GET /\n".encode()) + frame(
        2, f"{details} oops\n".encode()
    )
    swarm.fail[("GET", f"/services/{sid}/logs")] = (200, stream + frame(1, b"no context"))
    rc, out, err = run(swarm, capsys, "service", "logs", "--tail", "10", "nodejs")
    prefix = f"nodejs.1.{task['ID'][:12]}@swarm01    | "
    assert rc == 0
    assert out == f"{prefix}listening on 8080\n{prefix}GET /\nno context"
    assert err == f"{prefix}oops\n"
    q = swarm.queries("GET", f"/services/{sid}/logs")[-1]
    assert q == {
        "stdout": ["1"],
        "stderr": ["1"],
        "follow": ["0"],
        "timestamps": ["0"],
        "details": ["1"],
        "tail": ["10"],
    }
    run(swarm, capsys, "service", "logs", "-f", "--raw", "nodejs")
    assert swarm.queries("GET", f"/services/{sid}/logs")[-1]["follow"] == ["1"]
    assert capsys.readouterr().out == ""
    swarm.fail[("GET", f"/services/{sid}/logs")] = (404, b'{"message": "no such service"}')
    rc, _, err = run(swarm, capsys, "service", "logs", "nodejs")
    assert (rc, err) == (1, "Error response from daemon: no such service\n")


# --- local tasks and images -----------------------------------------------------------------------------


def test_local_ps_and_kill(swarm: FakeSwarm, capsys: pytest.CaptureFixture[str]):
    rc, out, _ = run(swarm, capsys, "ps")
    assert rc == 0 and out.splitlines()[0].split() == [
        "TASK",
        "ID",
        "NAME",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PID",
    ]
    assert out.splitlines()[1].split()[:4] == [
        "faapm76m2wgd",
        "nodejs.1.faapm76m2wgdubylakmjnkwge",
        "shoal/hello",
        '"serve"',
    ]
    rc, out, err = run(swarm, capsys, "kill", "nodejs.1", "web.9")
    assert (rc, out, err) == (1, "nodejs.1\n", "Error response from daemon: No such task: web.9\n")
    assert swarm.queries("POST", "/shoal/local/tasks/nodejs.1/kill") == [{"signal": ["KILL"]}]
    run(swarm, capsys, "kill", "-s", "term", "faapm76m2wgd")
    assert swarm.queries("POST", "/shoal/local/tasks/faapm76m2wgd/kill") == [{"signal": ["TERM"]}]


def _shoal(swarm: FakeSwarm, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": AGENT_SRC}
    cmd = [sys.executable, "-m", "shoal.cli.main", "-H", f"unix://{swarm.sock}", *argv]
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env, timeout=30, check=False)


def test_exec_replaces_the_cli_with_the_agents_command(swarm: FakeSwarm):
    # without -i stdin is /dev/null: cat ends at once even though the caller's stdin has data
    done = _shoal(swarm, "exec", "nodejs.1", "cat", stdin="ignored\n")
    assert (done.returncode, done.stdout, done.stderr) == (0, "in nodejs.1\n", "")
    done = _shoal(swarm, "exec", "-i", "nodejs.1", "sh", "-c", "cat; exit 3", stdin="typed\n")
    assert (done.returncode, done.stdout) == (3, "in nodejs.1\ntyped\n")
    assert json.loads(swarm.queries("GET", "/shoal/local/tasks/nodejs.1/exec")[-1]["cmd"][0]) == [
        "sh",
        "-c",
        "cat; exit 3",
    ]
    done = _shoal(swarm, "exec", "web.9", "true")
    assert (done.returncode, done.stderr) == (1, "Error response from daemon: No such task: web.9\n")
    done = _shoal(swarm, "exec", "-it", "nodejs.1", "sh")
    assert (done.returncode, done.stderr) == (1, "the input device is not a TTY\n")


def test_image_ls_and_import(swarm: FakeSwarm, capsys: pytest.CaptureFixture[str], tmp_path: Path):
    rc, out, _ = run(swarm, capsys, "image", "ls")
    assert rc == 0 and out.splitlines()[1].split()[:3] == ["shoal/host", "latest", "aaaaaaaaaaaa"]
    rc, out, _ = run(swarm, capsys, "image", "import", "--change", 'ENTRYPOINT ["/bin/app"]', str(tmp_path), "app:v1")
    assert (rc, out) == (0, "sha256:" + "c" * 64 + "\n")
    assert swarm.bodies("POST", "/shoal/images/import") == [
        {"Source": str(tmp_path), "Name": "app", "Tag": "v1", "Changes": ['ENTRYPOINT ["/bin/app"]']}
    ]
    rc, _, err = run(swarm, capsys, "image", "import", str(tmp_path / "nope.tar"), "app")
    assert rc == 1 and "no such file or directory" in err
