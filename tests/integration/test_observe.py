"""Seeing the cluster (issue 16): `docker events` (the docker.io 20.10 CLI) and the docker SDK's
`events()` follow the seed tour's operations live; bad event queries are 400s; a client that goes
away leaves nothing; Prometheus metrics parse and hold no secret; the visualizer needs its token."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from prometheus_client.parser import text_string_to_metric_families

from integration.cluster_helpers import api, cli, form_cluster, wait_for, wipe_cluster
from shoal.cli.errors import APIError
from testbed.bed import METRICS_ADDR, UI_ADDR, Testbed

DOCKER = Path(__file__).resolve().parents[2] / ".state" / "docker-cli" / "usr" / "bin" / "docker"
SOCK = "unix:///run/shoal/shoal.sock"
SLEEPER = {"ContainerSpec": {"Image": "shoal/host", "Command": ["sleep", "3600"], "Init": True}}


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=1)
    yield bed
    wipe_cluster(bed, "test_observe")


def scrape(bed: Testbed, host: str) -> str:
    res = bed.run(host, ["curl", "-sS", "--max-time", "10", f"http://{METRICS_ADDR}/metrics"], timeout=20)
    assert res.returncode == 0, res.stderr
    return res.stdout


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams: dict[str, Any], name: str, sample: str | None = None, **labels: str) -> float:
    """The sum of a family's samples (of one sample name: a counter also has `_created`)."""
    fam = fams[name]
    return sum(
        s.value
        for s in fam.samples
        if (sample is None or s.name == sample) and all(s.labels.get(k) == v for k, v in labels.items())
    )


def tour(bed: Testbed, name: str) -> None:
    """The seed tour's operations, quickly: create, scale, drain/activate, a network, remove."""
    for argv in (
        ["network", "create", "--driver", "overlay", f"{name}-net"],
        ["service", "create", "--detach", "--name", name, "--replicas", "1", "--init", "shoal/host", "sleep", "3600"],
        ["service", "scale", "--detach", f"{name}=2"],
        ["node", "update", "--availability", "drain", "swarm02"],
        ["node", "update", "--availability", "active", "swarm02"],
    ):
        code, out, err = cli(bed, "swarm00", *argv)
        assert code == 0, (argv, out, err)
    wait_for(
        f"{name} running twice",
        lambda: (
            sum(
                t["Status"]["State"] == "running"
                for t in api(bed, "swarm00").get("/tasks", filters={"service": [name]})
            )
            == 2
        ),
        timeout=40,
    )
    for argv in (["service", "rm", name], ["network", "rm", f"{name}-net"]):
        code, out, err = cli(bed, "swarm00", *argv)
        assert code == 0, (argv, out, err)


def test_docker_cli_events_follow_the_tour_live(cluster: Testbed) -> None:
    assert DOCKER.exists(), "make setup unpacks the docker CLI into .state/docker-cli"
    proc = subprocess.Popen(
        cluster.exec_argv("swarm00", [str(DOCKER), "-H", SOCK, "events", "--format", "{{json .}}"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[dict[str, Any]] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(json.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        time.sleep(1.0)  # the CLI is connected (it streams from now on: no --since)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        tour(cluster, "evweb")

        def seen(type_: str, action: str, **attrs: str) -> bool:
            return any(
                m["Type"] == type_
                and m["Action"] == action
                and all(m["Actor"]["Attributes"].get(k) == v for k, v in attrs.items())
                for m in lines
            )

        wait_for("the network's remove event", lambda: seen("network", "remove", name="evweb-net"), timeout=20)
    finally:
        proc.terminate()
        proc.wait(10)
    assert seen("network", "create", name="evweb-net")
    assert seen("service", "create", name="evweb")
    assert seen("service", "update", name="evweb", **{"replicas.old": "1", "replicas.new": "2"})
    assert seen("node", "update", name="swarm02", **{"availability.old": "active", "availability.new": "drain"})
    assert seen("node", "update", name="swarm02", **{"availability.old": "drain", "availability.new": "active"})
    assert seen("service", "remove", name="evweb")
    assert all(m["scope"] == "swarm" for m in lines if m["Type"] in ("service", "node", "network"))
    assert all(isinstance(m["timeNano"], int) and m["time"] == m["timeNano"] // 10**9 for m in lines)


def test_sdk_events_replay_since_until_and_filter(cluster: Testbed) -> None:
    client = docker.DockerClient(base_url=f"unix://{cluster.host('swarm00').socket_path}", timeout=60)
    since = time.time()
    tour(cluster, "sdkweb")

    def stopped_everywhere() -> bool:  # `service rm` answers before the nodes have stopped the tasks
        return not any(api(cluster, h).get("/shoal/local/tasks") for h in ("swarm00", "swarm01", "swarm02"))

    wait_for("sdkweb's tasks stopped on every node", stopped_everywhere, timeout=30)
    until = time.time() + 0.5
    time.sleep(0.6)
    got = list(client.events(since=since, until=until, decode=True, filters={"type": "service"}))
    actions = [(m["Action"], m["Actor"]["Attributes"].get("name")) for m in got]
    assert ("create", "sdkweb") in actions and ("remove", "sdkweb") in actions, actions
    assert {m["Type"] for m in got} == {"service"}
    # each node's own stream has its task containers (scope local), as each dockerd logs its own
    local = []
    for host in ("swarm00", "swarm01", "swarm02"):
        node = docker.DockerClient(base_url=f"unix://{cluster.host(host).socket_path}", timeout=60)
        mine = list(node.events(since=since, until=until, decode=True, filters={"type": "container"}))
        assert all(m["scope"] == "local" for m in mine)
        local += mine
    ours = [m for m in local if m["Actor"]["Attributes"]["com.docker.swarm.service.name"] == "sdkweb"]
    starts = {m["Actor"]["ID"] for m in ours if m["Action"] == "start"}
    dies = {m["Actor"]["ID"] for m in ours if m["Action"] == "die"}
    assert len(starts) >= 2 and starts == dies, (starts, dies)  # every task started and ended (drain, rm)
    assert all(m["Actor"]["Attributes"]["image"] == "shoal/host" for m in ours)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"filters": "{not json"}, "invalid filters"),
        ({"filters": json.dumps({"colour": ["red"]})}, "invalid filter 'colour'"),
        ({"since": "200", "until": "100"}, "since time must be before until time"),
        ({"since": "yesterday"}, "invalid time"),
    ],
)
def test_bad_event_queries_are_400(cluster: Testbed, query: dict[str, str], message: str) -> None:
    with pytest.raises(APIError) as err:
        api(cluster, "swarm00").get("/events", **query)
    assert err.value.status == 400 and message in str(err.value)


def _subscribers(bed: Testbed) -> float:
    return value(families(scrape(bed, "swarm00")), "shoal_events_subscribers")


def test_a_client_that_goes_away_leaves_nothing(cluster: Testbed) -> None:
    path = str(cluster.host("swarm00").socket_path)
    socks = []
    for _ in range(3):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        s.sendall(b"GET /v1.41/events HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(12).startswith(b"HTTP/1.1 200")
        socks.append(s)
    assert wait_for("three subscribers", lambda: _subscribers(cluster) == 3, timeout=10)
    for s in socks:
        s.close()
    assert wait_for("no subscriber left", lambda: _subscribers(cluster) == 0 or None, timeout=10) is not None


def test_metrics_parse_and_cover_the_cluster(cluster: Testbed) -> None:
    code, _, err = cli(
        cluster,
        "swarm00",
        "service",
        "create",
        "--name",
        "metweb",
        "--replicas",
        "3",
        "--init",
        "shoal/host",
        "sleep",
        "3600",
    )
    assert code == 0, err
    try:
        fams = families(scrape(cluster, "swarm00"))
        assert value(fams, "shoal_nodes") == 3
        assert value(fams, "shoal_nodes", role="manager") == 1
        assert value(fams, "shoal_nodes", state="ready", availability="active") == 3
        assert value(fams, "shoal_tasks", state="running") >= 3
        assert value(fams, "shoal_services", mode="replicated") >= 1
        assert value(fams, "shoal_raft_leader") == 1 and value(fams, "shoal_raft_term") >= 1
        assert value(fams, "shoal_raft_applied_index") > 0 and value(fams, "shoal_raft_commit_index") > 0
        assert value(fams, "shoal_raft_commit_duration_seconds", "shoal_raft_commit_duration_seconds_count") > 0
        assert "shoal_raft_snapshot_size_bytes" in fams
        assert (
            value(fams, "shoal_orchestrator_pass_duration_seconds", "shoal_orchestrator_pass_duration_seconds_count")
            > 0
        )
        assert value(fams, "shoal_scheduler_pass_duration_seconds", "shoal_scheduler_pass_duration_seconds_count") > 0
        assert value(fams, "shoal_dispatcher_heartbeats", "shoal_dispatcher_heartbeats_total") > 0
        assert value(fams, "shoal_dispatcher_sessions") == 2  # the workers (the leader's own node heartbeats locally)
        assert value(fams, "shoal_api_requests", "shoal_api_requests_total", route="/services/create", code="201") >= 1
        assert value(fams, "process_resident_memory_bytes") > 0
        worker = families(scrape(cluster, "swarm01"))
        assert value(worker, "shoal_task_starts", "shoal_task_starts_total") >= 1
        assert (
            value(worker, "shoal_dataplane_program_duration_seconds", "shoal_dataplane_program_duration_seconds_count")
            > 0
        )
        assert "shoal_nodes" not in worker or not worker["shoal_nodes"].samples  # cluster counts come from managers
    finally:
        cli(cluster, "swarm00", "service", "rm", "metweb")


def test_metrics_hold_no_secret(cluster: Testbed) -> None:
    swarm = api(cluster, "swarm00").get("/swarm")
    secrets = [swarm["JoinTokens"]["Worker"], swarm["JoinTokens"]["Manager"]]
    secrets += [t.rsplit("-", 1)[1] for t in secrets]  # the secret part alone
    secrets.append(cluster.run("swarm00", ["cat", "/var/lib/shoal/ui.token"]).stdout.strip())
    identity = json.loads(cluster.run("swarm00", ["sh", "-c", "cat /var/lib/shoal/node.json"]).stdout)
    if identity.get("raft_password"):
        secrets.append(identity["raft_password"])
    assert all(len(s) >= 16 for s in secrets)
    for host in ("swarm00", "swarm01", "swarm02"):
        text = scrape(cluster, host)
        assert "SWMTKN" not in text and "PRIVATE KEY" not in text
        for secret in secrets:
            assert secret not in text, f"a secret appears in {host}'s metrics"


def test_visualizer_needs_its_token(cluster: Testbed) -> None:
    code, out, err = cli(cluster, "swarm00", "visualizer", "--print-url")
    assert code == 0, err
    url = out.strip()
    assert url.startswith(f"http://{UI_ADDR}/?token=")
    token = url.split("token=", 1)[1]

    def status(path: str) -> str:
        argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", f"http://{UI_ADDR}{path}"]
        return cluster.run("swarm00", argv, timeout=20).stdout

    assert status("/") == "401"
    assert status("/api/state") == "401"
    assert status("/api/state?token=wrong") == "401"
    assert status(f"/api/state?token={token}") == "200"
    assert status(f"/?token={token}") == "200"
    mode = cluster.run("swarm00", ["stat", "-c", "%a %U", "/var/lib/shoal/ui.token"]).stdout.split()
    assert mode == ["600", "root"]


def test_shoal_events_prints_docker_lines(cluster: Testbed) -> None:
    since = f"{time.time():.3f}"
    code, _, err = cli(cluster, "swarm00", "network", "create", "--driver", "overlay", "clinet")
    assert code == 0, err
    assert cli(cluster, "swarm00", "network", "rm", "clinet")[0] == 0
    until = f"{time.time() + 0.3:.3f}"
    time.sleep(0.4)
    code, out, err = cli(cluster, "swarm00", "events", "--since", since, "--until", until, "--filter", "type=network")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2, out
    assert " network create " in lines[0] and lines[0].endswith("(name=clinet)")
    assert " network remove " in lines[1]
    code, out, _ = cli(
        cluster,
        "swarm00",
        "events",
        "--since",
        since,
        "--until",
        until,
        "-f",
        "type=network",
        "--format",
        "{{.Action}}",
    )
    assert code == 0 and out.split() == ["create", "remove"]
    code, _, err = cli(cluster, "swarm00", "events", "--filter", "colour=red", "--until", until)
    assert code == 1 and "invalid filter 'colour'" in err
