"""Job services and service templates on the testbed: real agents, real tasks (processes in their own
namespaces) that run to completion; the CLI waits for a job as docker does."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from integration.cluster_helpers import HOSTS, api, cli, form_cluster, wait_for, wipe_cluster
from shoal.cli.errors import APIError
from testbed.bed import Testbed

ACTIVE = ("assigned", "accepted", "preparing", "ready", "starting", "running")


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=1)
    yield bed
    wipe_cluster(bed, "test_jobs")


def tasks_of(bed: Testbed, service: str) -> list[dict]:
    return api(bed, "swarm00").get("/tasks", filters={"service": [service]})


def iteration(obj: dict) -> int:
    return int((obj.get("JobIteration") or {}).get("Index") or 0)


def watch_job(bed: Testbed, service: str, completions: int, it: int, timeout: float = 90) -> int:
    """Sample the tasks until `completions` of iteration `it` are complete; the most active at once."""
    most, deadline = 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        mine = [t for t in tasks_of(bed, service) if iteration(t) == it]
        active = [t for t in mine if t["DesiredState"] != "shutdown" and t["Status"]["State"] in ACTIVE]
        # SwarmKit makes a job's tasks with DesiredState complete, and the worker runs them all the same
        assert all(t["DesiredState"] == "complete" for t in active), active
        most = max(most, len(active))
        if sum(1 for t in mine if t["Status"]["State"] == "complete") >= completions:
            return most
        time.sleep(0.1)
    raise AssertionError(f"{service}: {completions} completions not reached; tasks: {tasks_of(bed, service)}")


def test_replicated_job_completes_with_max_concurrent_and_reruns_on_force(cluster: Testbed) -> None:
    rc, out, err = cli(
        cluster, "swarm00", "service", "create", "--detach", "--name", "batch", "--mode", "replicated-job",
        "--replicas", "4", "--max-concurrent", "2", "shoal/host", "sh", "-c", "sleep 2",
    )  # fmt: skip
    assert rc == 0, err
    assert watch_job(cluster, "batch", 4, 0) <= 2
    tasks = tasks_of(cluster, "batch")
    assert sorted(t["Slot"] for t in tasks) == [0, 1, 2, 3]  # SwarmKit's slots of a replicated job
    assert {(t["Status"]["State"], t["DesiredState"]) for t in tasks} == {("complete", "complete")}
    rc, out, err = cli(cluster, "swarm00", "service", "ps", "batch")
    assert rc == 0, err
    rows = out.splitlines()[1:]
    assert len(rows) == 4 and all("Complete" in r.split("   ")[-1] or " Complete " in r for r in rows), out
    rc, out, err = cli(cluster, "swarm00", "service", "ls")
    assert "replicated job" in out and "0/0 (4/4 completed)" in out, out
    rc, out, err = cli(cluster, "swarm00", "service", "ps", "--filter", "desired-state=running", "-q", "batch")
    assert rc == 0 and out.strip() == "", (out, err)
    rc, out, err = cli(cluster, "swarm00", "service", "ps", "--filter", "desired-state=complete", "-q", "batch")
    assert rc == 0 and len(out.split()) == 4, (out, err)
    rc, out, err = cli(cluster, "swarm00", "service", "ps", "--format", "{{.DesiredState}}", "batch")
    assert rc == 0 and out.split() == ["Complete"] * 4, (out, err)
    service = api(cluster, "swarm00").get("/services/batch")
    assert service["JobStatus"]["JobIteration"]["Index"] == 0 and service["JobStatus"]["LastExecution"]

    # --force reruns it: a new iteration, 4 more completions; the CLI waits for them (no --detach)
    rc, out, err = cli(cluster, "swarm00", "service", "update", "--force", "batch", timeout=120)
    assert rc == 0, err
    assert "Job complete" in out, out
    service = api(cluster, "swarm00").get("/services/batch")
    assert service["JobStatus"]["JobIteration"]["Index"] == 1
    again = [t for t in tasks_of(cluster, "batch") if iteration(t) == 1]
    assert len(again) == 4 and all(t["Status"]["State"] == "complete" for t in again)
    status = api(cluster, "swarm00").get("/services", status=True, filters={"name": ["batch"]})[0]["ServiceStatus"]
    assert status == {"RunningTasks": 0, "DesiredTasks": 0, "CompletedTasks": 4}
    api(cluster, "swarm00").delete("/services/batch")


def test_global_job_completes_once_per_node_and_cli_waits(cluster: Testbed) -> None:
    rc, out, err = cli(
        cluster, "swarm00", "service", "create", "--name", "everywhere", "--mode", "global-job",
        "shoal/host", "true", timeout=120,
    )  # fmt: skip
    assert rc == 0, err
    assert "Job complete" in out, out
    tasks = tasks_of(cluster, "everywhere")
    assert len(tasks) == len(HOSTS) and len({t["NodeID"] for t in tasks}) == len(HOSTS)
    assert all(t["Status"]["State"] == "complete" and t["DesiredState"] == "complete" for t in tasks)
    time.sleep(2)  # never run again
    assert len(tasks_of(cluster, "everywhere")) == len(HOSTS)
    api(cluster, "swarm00").delete("/services/everywhere")


def test_bad_jobs_and_templates_are_refused_and_create_nothing(cluster: Testbed) -> None:
    client = api(cluster, "swarm00")
    before = client.get("/services")
    bodies = [
        {"Mode": {"ReplicatedJob": {"MaxConcurrent": -1}}},
        {"Mode": {"ReplicatedJob": {"TotalCompletions": -1}}},
        {"TaskTemplate": {"ContainerSpec": {"Image": "shoal/host", "Hostname": "{{.Service.Nmae}}"}}},
        {"TaskTemplate": {"ContainerSpec": {"Image": "shoal/host", "Env": ["A={{.Task.Slot"]}}},
    ]
    messages = []
    for extra in bodies:
        body = {"Name": "bad", "TaskTemplate": {"ContainerSpec": {"Image": "shoal/host"}}, **extra}
        with pytest.raises(APIError) as e:
            client.post("/services/create", body)
        assert e.value.status == 400
        messages.append(e.value.message)
    assert "cannot unmarshal number -1" in messages[0]
    assert "can't evaluate field Nmae" in messages[2]
    assert "unclosed action" in messages[3]
    rc, _, err = cli(
        cluster, "swarm00", "service", "create", "--mode", "replicated-job", "--replicas", "-1", "shoal/host"
    )
    assert rc != 0 and "must not be negative" in err
    assert client.get("/services") == before


def test_hostname_and_env_templates_render_inside_the_task(cluster: Testbed) -> None:
    body = {
        "Name": "tmpl",
        "Labels": {"team": "blue"},
        "Mode": {"Replicated": {"Replicas": 2}},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "shoal/host",
                "Hostname": "{{.Service.Name}}-{{.Task.Slot}}",
                "Env": ["WHERE={{.Node.Hostname}}/{{.Node.Platform.OS}}", 'TEAM={{index .Service.Labels "team"}}'],
                "Command": ["sh", "-c", 'echo "seen h=$(hostname) where=$WHERE team=$TEAM"; sleep 3600'],
                "Init": True,
            }
        },
    }
    api(cluster, "swarm00").post("/services/create", body)
    nodes = {n["ID"]: n["Description"]["Hostname"] for n in api(cluster, "swarm00").get("/nodes")}

    def logged() -> str | None:
        rc, out, _ = cli(cluster, "swarm00", "service", "logs", "--raw", "tmpl", timeout=20)
        return out if rc == 0 and out.count("seen h=") >= 2 else None

    out = wait_for("both tasks to log their hostname", logged, timeout=60, interval=0.5)
    tasks = [t for t in tasks_of(cluster, "tmpl") if t["DesiredState"] == "running"]
    for t in tasks:
        want = f"seen h=tmpl-{t['Slot']} where={nodes[t['NodeID']]}/linux team=blue"
        assert want in out, out
    # node ps on the tasks' nodes (server-side filters), inspect --format with the Go-template evaluator
    rc, out, err = cli(
        cluster, "swarm00", "node", "ps", "--filter", "desired-state=running", "--format", "{{.Name}} {{.Node}}",
        *sorted({t["NodeID"] for t in tasks}),
    )  # fmt: skip
    assert rc == 0, err
    assert sorted(line.split()[0] for line in out.splitlines() if line.startswith("tmpl.")) == ["tmpl.1", "tmpl.2"], out
    rc, out, err = cli(
        cluster, "swarm00", "service", "inspect", "--format", '{{.Spec.Name}} {{index .Spec.Labels "team"}}', "tmpl"
    )
    assert (rc, out) == (0, "tmpl blue\n"), err
    rc, out, err = cli(cluster, "swarm00", "node", "inspect", "--format", "{{.Description.Hostname}}", "self")
    assert (rc, out) == (0, "swarm00\n"), err
    # the stored spec keeps the template: every task renders its own
    spec = api(cluster, "swarm00").get("/services/tmpl")["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert spec["Hostname"] == "{{.Service.Name}}-{{.Task.Slot}}"
    api(cluster, "swarm00").delete("/services/tmpl")
