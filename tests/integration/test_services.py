"""Services on the testbed: deploy, scale, failover, drain/pause, global, rolling update, restarts,
managers down (seed §3, §4, §6, §10). Tasks are real processes in their own namespaces."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.cluster_helpers import HOSTS, api, cli, form_cluster, start_agent, wait_for, wipe_cluster
from shoal.cli.errors import APIError
from testbed import registry
from testbed.bed import Testbed

SLEEPER = {
    "ContainerSpec": {"Image": "shoal/host", "Command": ["sleep", "3600"], "Init": True},
    "RestartPolicy": {"Condition": "any", "Delay": 0},
}


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=1)
    yield bed
    wipe_cluster(bed, "test_services")


def create(bed: Testbed, name: str, replicas: int | None = 1, template: dict | None = None, **spec: Any) -> str:
    mode = {"Global": {}} if replicas is None else {"Replicated": {"Replicas": replicas}}
    body = {"Name": name, "TaskTemplate": template or SLEEPER, "Mode": mode, **spec}
    return api(bed, "swarm00").post("/services/create", body)["ID"]


def running(bed: Testbed, service: str) -> list[dict]:
    tasks = api(bed, "swarm00").get("/tasks", filters={"service": [service], "desired-state": ["running"]})
    return [t for t in tasks if t["Status"]["State"] == "running"]


def converged(bed: Testbed, service: str, n: int, timeout: float = 20) -> list[dict]:
    seen: list[tuple] = []

    def check() -> list[dict] | None:
        tasks = api(bed, "swarm00").get("/tasks", filters={"service": [service]})
        live = [t for t in tasks if t["DesiredState"] == "running"]
        seen[:] = [(t.get("Slot"), t.get("NodeID", "")[:6], t["Status"]["State"], t["Status"].get("Err")) for t in live]
        ok = len(live) == n and all(t["Status"]["State"] == "running" for t in live)
        return live if ok else None

    try:
        return wait_for(f"{service} to run {n} tasks", check, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; live tasks: {seen}") from None


def node_names(bed: Testbed) -> dict[str, str]:
    return {n["ID"]: n["Description"]["Hostname"] for n in api(bed, "swarm00").get("/nodes")}


def remove(bed: Testbed, name: str) -> None:
    service_id = api(bed, "swarm00").get(f"/services/{name}")["ID"]
    api(bed, "swarm00").delete(f"/services/{name}")
    wait_for(
        f"{name} tasks gone",
        lambda: not [t for t in api(bed, "swarm00").get("/tasks") if t["ServiceID"] == service_id],
        timeout=20,
    )
    for host in HOSTS:  # and really stopped on the nodes
        assert not [t for t in api(bed, host).get("/shoal/local/tasks") if t["ServiceID"] == service_id]


def test_deploy_three_replicas_spread_over_nodes(cluster: Testbed) -> None:
    create(cluster, "web", 3)
    tasks = converged(cluster, "web", 3)
    assert len({t["NodeID"] for t in tasks}) == 3
    rc, out, err = cli(cluster, "swarm00", "service", "ls")
    assert rc == 0, err
    assert "web" in out and "3/3" in out and "replicated" in out
    rc, out, err = cli(cluster, "swarm00", "service", "ps", "web")
    assert rc == 0 and "web.1" in out and "Running" in out


def test_scale_up_and_down_runs_exactly_n(cluster: Testbed) -> None:
    rc, _, err = cli(cluster, "swarm00", "service", "scale", "web=5", "--detach")
    assert rc == 0, err
    converged(cluster, "web", 5)
    rc, _, err = cli(cluster, "swarm00", "service", "scale", "web=2", "--detach")
    assert rc == 0, err
    tasks = converged(cluster, "web", 2)
    assert sorted(t["Slot"] for t in tasks) == [1, 2]
    wait_for("scaled-down tasks stopped", lambda: len(running(cluster, "web")) == 2)


def test_killed_task_is_replaced_and_history_shows_137(cluster: Testbed) -> None:
    victim = running(cluster, "web")[0]
    host = node_names(cluster)[victim["NodeID"]]
    rc, _, err = cli(cluster, host, "kill", victim["ID"][:12])
    assert rc == 0, err

    def replaced() -> bool:
        tasks = api(cluster, "swarm00").get("/tasks", filters={"service": ["web"]})
        old = next(t for t in tasks if t["ID"] == victim["ID"])
        return (
            old["Status"]["State"] == "failed"
            and len([t for t in tasks if t["DesiredState"] == "running" and t["Status"]["State"] == "running"]) == 2
        )

    wait_for("a replacement", replaced, timeout=15)
    rc, out, _ = cli(cluster, "swarm00", "service", "ps", "web")
    assert "task: non-zero exit (137)" in out and "\\_ web." in out


def test_drain_moves_tasks_pause_places_nothing_active_again(cluster: Testbed) -> None:
    names = {v: k for k, v in node_names(cluster).items()}
    rc, _, err = cli(cluster, "swarm00", "node", "update", "--availability", "drain", "swarm01")
    assert rc == 0, err
    wait_for(
        "nothing on swarm01",
        lambda: (
            all(t["NodeID"] != names["swarm01"] for t in running(cluster, "web")) and len(running(cluster, "web")) == 2
        ),
        timeout=15,
    )
    rc, _, _ = cli(cluster, "swarm00", "node", "update", "--availability", "pause", "swarm01")
    create(cluster, "paused", 3)
    tasks = converged(cluster, "paused", 3)
    assert names["swarm01"] not in {t["NodeID"] for t in tasks}
    rc, _, _ = cli(cluster, "swarm00", "node", "update", "--availability", "active", "swarm01")
    remove(cluster, "paused")


def test_global_service_one_task_per_node(cluster: Testbed) -> None:
    create(cluster, "everywhere", None)
    tasks = converged(cluster, "everywhere", 3)
    assert len({t["NodeID"] for t in tasks}) == 3
    remove(cluster, "everywhere")


def test_agent_restart_keeps_tasks_running(cluster: Testbed) -> None:
    """The very same processes run on after their agents restart, and the agents adopt them: each
    node's own list of running tasks names the same pids, and each pid is still the process that
    was started then (same start time in /proc, so not a new task that got a recycled pid)."""
    before = live_processes(cluster)
    assert len(before) == 2, before
    for host in ("swarm01", "swarm02"):
        cluster.stop_agent(host)
        start_agent(cluster, host)
    wait_for("the restarted agents adopted their tasks", lambda: set(live_processes(cluster)) == set(before))
    assert live_processes(cluster) == before


def test_managers_down_tasks_keep_running(cluster: Testbed) -> None:
    """Seed §10: with the only manager gone, workers keep their tasks; nothing can be changed."""
    workers = {_node_id(cluster, "swarm01"), _node_id(cluster, "swarm02")}
    on_workers = {t["ID"] for t in running(cluster, "web") if t["NodeID"] in workers}
    processes = {k: v for k, v in live_processes(cluster).items() if k in on_workers}
    assert processes and all(started for _, started in processes.values()), processes
    cluster.stop_agent("swarm00")
    try:
        time.sleep(3)  # three heartbeat periods without a manager
        for pid, started in processes.values():
            assert start_time(pid) == started, f"process {pid} of a task on a worker ended"
        with pytest.raises(APIError):
            api(cluster, "swarm01").get("/services")
    finally:
        start_agent(cluster, "swarm00")
    converged(cluster, "web", 2)


def test_worker_lost_tasks_move_and_exactly_n_after_return(cluster: Testbed) -> None:
    names = node_names(cluster)
    on_02 = [t for t in running(cluster, "web") if names[t["NodeID"]] == "swarm02"]
    if not on_02:
        api(cluster, "swarm00").post(
            "/services/web/update", _spec(cluster, "web", replicas=3), version=_version(cluster, "web")
        )
        converged(cluster, "web", 3)
    cluster.stop_agent("swarm02")
    try:
        wait_for(
            "tasks rescheduled off swarm02",
            lambda: (
                len([t for t in running(cluster, "web") if names[t["NodeID"]] != "swarm02"])
                == len(running(cluster, "web"))
                and len(running(cluster, "web")) >= 2
            ),
            timeout=20,
        )
    finally:
        start_agent(cluster, "swarm02")
    replicas = _spec(cluster, "web")["Mode"]["Replicated"]["Replicas"]
    wait_for(
        "exactly N running after the node is back", lambda: len(_local_running(cluster)) == replicas + 0, timeout=20
    )


def test_rolling_update_with_failing_image_pauses(cluster: Testbed) -> None:
    spec = _spec(cluster, "web", replicas=3)
    api(cluster, "swarm00").post("/services/web/update", spec, version=_version(cluster, "web"))
    converged(cluster, "web", 3)
    spec = _spec(cluster, "web")
    # an image the testbed registry (the only one tests may ask) does not give out: no credentials
    missing = registry.ref("testbed/no-such-image:1")
    spec["TaskTemplate"]["ContainerSpec"]["Image"] = missing
    spec["UpdateConfig"] = {"Parallelism": 1, "FailureAction": "pause", "Monitor": 2_000_000_000}
    api(cluster, "swarm00").post("/services/web/update", spec, version=_version(cluster, "web"))
    status = wait_for(
        "update paused",
        lambda: (
            (s := api(cluster, "swarm00").get("/services/web").get("UpdateStatus") or {}).get("State") == "paused" and s
        ),
        timeout=30,
    )
    assert "paused" in status["Message"]
    rejected = [
        t
        for t in api(cluster, "swarm00").get("/tasks", filters={"service": ["web"]})
        if t["Status"]["State"] == "rejected"
    ]
    err = rejected[0]["Status"]["Err"] if rejected else ""
    assert err.startswith(f"pull {missing}: ") and "unauthorized" in err, rejected
    # only one task was tried: at least two old ones still run
    assert len(running(cluster, "web")) >= 2
    # rollback brings the old image back everywhere
    rc, _, err = cli(cluster, "swarm00", "service", "rollback", "--detach", "web")
    assert rc == 0, err
    wait_for(
        "rolled back",
        lambda: len([t for t in running(cluster, "web") if t["Spec"]["ContainerSpec"]["Image"] == "shoal/host"]) == 3,
        timeout=30,
    )


def test_bad_specs_are_refused_and_change_nothing(cluster: Testbed) -> None:
    before = api(cluster, "swarm00").get("/services")
    bad = [
        {"Name": "neg", "TaskTemplate": SLEEPER, "Mode": {"Replicated": {"Replicas": -5}}},
        {"Name": "cons", "TaskTemplate": {**SLEEPER, "Placement": {"Constraints": ["node.colour==red"]}}},
        {"Name": "dur", "TaskTemplate": {**SLEEPER, "RestartPolicy": {"Delay": "soon"}}},
        {"Name": "mem", "TaskTemplate": {**SLEEPER, "Resources": {"Limits": {"MemoryBytes": 1 << 20}}}},
        {"Name": "web", "TaskTemplate": SLEEPER},
        {"Name": "bad.name", "TaskTemplate": SLEEPER},
    ]
    for body in bad:
        with pytest.raises(APIError) as exc:
            api(cluster, "swarm00").post("/services/create", body)
        assert exc.value.status in (400, 409), body
        assert exc.value.message
    with pytest.raises(APIError) as exc:
        api(cluster, "swarm00").get("/services/nosuch")
    assert exc.value.status == 404
    assert api(cluster, "swarm00").get("/services") == before


def test_logs_and_rm(cluster: Testbed) -> None:
    template = {
        "ContainerSpec": {
            "Image": "shoal/host",
            "Command": ["sh", "-c", "echo hello from $HOSTNAME; sleep 3600"],
            "Init": True,
        }
    }
    create(cluster, "talker", 2, template)
    converged(cluster, "talker", 2)
    out = wait_for(
        "logs", lambda: (r := cli(cluster, "swarm00", "service", "logs", "talker"))[1].count("hello from") == 2 and r[1]
    )
    assert "talker.1." in out and "@swarm0" in out
    # filters as Docker reads them: values of one key are ORed, keys ANDed; `name` is a prefix of the
    # task's name (service.slot), `service` a service name or ID
    talker = api(cluster, "swarm00").get("/services/talker")["ID"]
    one = api(cluster, "swarm00").get("/tasks", filters={"service": ["talker"], "name": ["talker.1"]})
    assert one and {(t["ServiceID"], t["Slot"]) for t in one} == {(talker, 1)}, one
    both = api(cluster, "swarm00").get("/tasks", filters={"service": [talker], "name": ["talker.1", "talker.2"]})
    assert {t["Slot"] for t in both} == {1, 2}, both
    assert not api(cluster, "swarm00").get("/tasks", filters={"service": ["web"], "name": ["talker"]})
    remove(cluster, "talker")


def _spec(bed: Testbed, name: str, replicas: int | None = None) -> dict:
    spec = api(bed, "swarm00").get(f"/services/{name}")["Spec"]
    if replicas is not None:
        spec["Mode"] = {"Replicated": {"Replicas": replicas}}
    return spec


def _version(bed: Testbed, name: str) -> int:
    return api(bed, "swarm00").get(f"/services/{name}")["Version"]["Index"]


def _node_id(bed: Testbed, host: str) -> str:
    return next(k for k, v in node_names(bed).items() if v == host)


def start_time(pid: int | None) -> int | None:
    """The process's start time (clock ticks since boot, /proc/<pid>/stat field 22), None when it is
    gone or a zombie: a pid with the same start time is the same process. Read here rather than
    through the agent's runtime helpers, so that the check outlives a change of runtime."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def live_processes(bed: Testbed, prefix: str = "web.") -> dict[str, tuple[int, int | None]]:
    """Task ID -> (pid, start time) of the tasks each node's agent says it runs (its local API asks
    the runtime), as seen in /proc of this machine: testbed hosts share its pid namespace."""
    out = {}
    for host in HOSTS:
        for task in api(bed, host).get("/shoal/local/tasks"):
            if task["Name"].startswith(prefix) and task.get("Pid"):
                out[task["ID"]] = (task["Pid"], start_time(task["Pid"]))
    return out


def _local_running(bed: Testbed) -> list[dict]:
    """Tasks of `web` that really run, counted on the nodes themselves (catches orphans)."""
    out = []
    for host in HOSTS:
        out += [t for t in api(bed, host).get("/shoal/local/tasks") if t["Name"].startswith("web.")]
    return out


def test_cli_create_waits_until_converged_and_names_unnamed_services(cluster: Testbed) -> None:
    rc, out, err = cli(
        cluster,
        "swarm00",
        "service",
        "create",
        "--name",
        "waited",
        "--replicas",
        "2",
        "--update-monitor",
        "100ms",
        "--init",
        "shoal/host",
        "sleep",
        "3600",
    )
    assert rc == 0, err
    assert "converged" in out
    assert len(running(cluster, "waited")) == 2
    rc, out, err = cli(cluster, "swarm00", "service", "create", "-d", "--init", "shoal/host", "sleep", "3600")
    assert rc == 0, err
    unnamed = api(cluster, "swarm00").get(f"/services/{out.strip()}")
    assert "_" in unnamed["Spec"]["Name"]
    remove(cluster, "waited")
    remove(cluster, unnamed["Spec"]["Name"])
