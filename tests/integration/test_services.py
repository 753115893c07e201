"""Services on the testbed: deploy, scale, failover, drain/pause, global, rolling update, restarts,
managers down (seed §3, §4, §6, §10). Tasks are real processes in their own namespaces."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from integration.cluster_helpers import HOSTS, api, cli, form_cluster, start_agent, wait_for, wipe_cluster
from shoal.cli.errors import APIError
from testbed.bed import Testbed

SLEEPER = {
    "ContainerSpec": {"Image": "shoal/host", "Command": ["sleep", "3600"]},
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
    before = {t["ID"]: t["Status"]["ContainerStatus"]["PID"] for t in running(cluster, "web")}
    for host in ("swarm01", "swarm02"):
        cluster.stop_agent(host)
        start_agent(cluster, host)
    time.sleep(2)
    after = {t["ID"]: t["Status"]["ContainerStatus"]["PID"] for t in running(cluster, "web")}
    assert after == before


def test_managers_down_tasks_keep_running(cluster: Testbed) -> None:
    """Seed §10: with the only manager gone, workers keep their tasks; nothing can be changed."""
    tasks = running(cluster, "web")
    pids = {t["Status"]["ContainerStatus"]["PID"] for t in tasks if t["NodeID"] != _node_id(cluster, "swarm00")}
    cluster.stop_agent("swarm00")
    try:
        time.sleep(3)
        for pid in pids:
            assert _alive(pid)
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
    spec["TaskTemplate"]["ContainerSpec"]["Image"] = "no/such-image"
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
    assert rejected and "No such image: no/such-image" in rejected[0]["Status"]["Err"]
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
        "ContainerSpec": {"Image": "shoal/host", "Command": ["sh", "-c", "echo hello from $HOSTNAME; sleep 3600"]}
    }
    create(cluster, "talker", 2, template)
    converged(cluster, "talker", 2)
    out = wait_for(
        "logs", lambda: (r := cli(cluster, "swarm00", "service", "logs", "talker"))[1].count("hello from") == 2 and r[1]
    )
    assert "talker.1." in out and "@swarm0" in out
    remove(cluster, "talker")
    assert not api(cluster, "swarm00").get("/tasks", filters={"service": ["web"], "name": ["talker"]})


def _spec(bed: Testbed, name: str, replicas: int | None = None) -> dict:
    spec = api(bed, "swarm00").get(f"/services/{name}")["Spec"]
    if replicas is not None:
        spec["Mode"] = {"Replicated": {"Replicas": replicas}}
    return spec


def _version(bed: Testbed, name: str) -> int:
    return api(bed, "swarm00").get(f"/services/{name}")["Version"]["Index"]


def _node_id(bed: Testbed, host: str) -> str:
    return next(k for k, v in node_names(bed).items() if v == host)


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


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
        "shoal/host",
        "sleep",
        "3600",
    )
    assert rc == 0, err
    assert "converged" in out
    assert len(running(cluster, "waited")) == 2
    rc, out, err = cli(cluster, "swarm00", "service", "create", "-d", "shoal/host", "sleep", "3600")
    assert rc == 0, err
    unnamed = api(cluster, "swarm00").get(f"/services/{out.strip()}")
    assert "_" in unnamed["Spec"]["Name"]
    remove(cluster, "waited")
    remove(cluster, unnamed["Spec"]["Name"])
