"""Health checks on real agents (issue 14): the worker execs the check in the task through runc;
a task is RUNNING (and a VIP, DNS-RR and mesh backend) only once healthy; an unhealthy one FAILS
with SwarmKit's message, leaves the VIP and the mesh while the healthy one keeps answering, and
is replaced; a rolling update to a check that always fails rolls back by itself.

The check looks for a file, so a test turns a task unhealthy by exec'ing `touch` into it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from integration.cluster_helpers import api, cli, curl, form_cluster, wait_for, wipe_cluster
from shoal.cli.errors import APIError
from testbed.bed import Testbed

MS = 1_000_000
CHECK = {"Test": ["CMD-SHELL", "[ ! -f /sick ]"], "Interval": 300 * MS, "Timeout": 2000 * MS, "Retries": 2}
PORT = 8090


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=1)
    api(bed, "swarm00").post("/networks/create", {"Name": "hnet", "Driver": "overlay"})
    yield bed
    wipe_cluster(bed, "test_health")


def tasks(bed: Testbed, service: str) -> list[dict[str, Any]]:
    return api(bed, "swarm00").get("/tasks", filters={"service": [service]})


def in_state(bed: Testbed, state: str, service: str = "web") -> list[dict[str, Any]]:
    return [t for t in tasks(bed, service) if t["DesiredState"] == "running" and t["Status"]["State"] == state]


def running(bed: Testbed, service: str) -> list[dict[str, Any]]:
    return in_state(bed, "running", service)


def update_state(bed: Testbed) -> str | None:
    return (api(bed, "swarm00").get("/services/web").get("UpdateStatus") or {}).get("State")


def host_of(bed: Testbed, task: dict[str, Any]) -> str:
    return {n["ID"]: n["Description"]["Hostname"] for n in api(bed, "swarm00").get("/nodes")}[task["NodeID"]]


def exec_in(bed: Testbed, task: dict[str, Any], *argv: str) -> tuple[int, str]:
    rc, out, err = cli(bed, host_of(bed, task), "exec", task["ID"][:12], *argv)
    return rc, out + err


def through_vip(bed: Testbed, client: dict[str, Any], n: int = 6) -> list[str]:
    """`n` GETs from the client task to the service name (DNS -> VIP -> a backend)."""
    rounds = " ".join(str(i) for i in range(n))
    # busybox wget's own -T crashes (busybox-static 1.35): its timeout applet bounds each request
    get = "busybox timeout 3 wget -q -O - http://web:8080/ 2>/dev/null"
    script = f"for i in {rounds}; do {get} || echo FAILED; done"
    _, out = exec_in(bed, client, "sh", "-c", script)
    return [line.strip() for line in out.splitlines() if line.strip()]


def test_bad_health_check_is_refused_and_changes_nothing(cluster: Testbed) -> None:
    before = api(cluster, "swarm00").get("/services")
    body = {"Name": "bad", "TaskTemplate": {"ContainerSpec": {"Image": "shoal/hello", "HealthCheck": {}}}}
    for hc, message in [
        ({"Test": ["CMD", "true"], "Interval": 100}, "ContainerSpec: Interval in HealthConfig cannot be less than 1ms"),
        ({"Retries": -1}, "ContainerSpec: Retries in HealthConfig cannot be negative"),
        ({"Timeout": "soon"}, "invalid duration"),
    ]:
        body["TaskTemplate"]["ContainerSpec"]["HealthCheck"] = hc
        with pytest.raises(APIError) as exc:
            api(cluster, "swarm00").post("/services/create", body)
        assert exc.value.status == 400 and message in exc.value.message
    rc, _, err = cli(cluster, "swarm00", "service", "create", "--health-interval=-1s", "shoal/hello")
    assert rc != 0 and "must not be negative" in err
    assert api(cluster, "swarm00").get("/services") == before


def test_unhealthy_task_leaves_vip_and_mesh_and_is_replaced(cluster: Testbed) -> None:
    api(cluster, "swarm00").post(
        "/services/create",
        {
            "Name": "web",
            "TaskTemplate": {
                "ContainerSpec": {"Image": "shoal/hello", "HealthCheck": CHECK},
                "Networks": [{"Target": "hnet"}],
                "RestartPolicy": {"Condition": "any", "Delay": 0},
                "Placement": {"Constraints": ["node.role==worker"]},
            },
            "Mode": {"Replicated": {"Replicas": 2}},
            "EndpointSpec": {"Ports": [{"TargetPort": 8080, "PublishedPort": PORT}]},
        },
    )
    api(cluster, "swarm00").post(
        "/services/create",
        {
            "Name": "client",
            "TaskTemplate": {"ContainerSpec": {"Image": "shoal/hello"}, "Networks": [{"Target": "hnet"}]},
        },
    )
    wait_for(
        "web 2/2 healthy, client running",
        lambda: len(running(cluster, "web")) == 2 and running(cluster, "client"),
        60,
    )
    client = running(cluster, "client")[0]
    sick, well = sorted(running(cluster, "web"), key=lambda t: t["Slot"])
    wait_for(
        "both backends answer through the VIP", lambda: answered_by(cluster, client) == {sick["ID"], well["ID"]}, 30
    )

    rc, out = exec_in(cluster, sick, "sh", "-c", ": > /sick")
    assert rc == 0, out
    failed = wait_for(
        "the sick task FAILED", lambda: state_of(cluster, sick["ID"]) == "failed" and task(cluster, sick["ID"]), 15
    )
    assert "dockerexec: unhealthy container" in failed["Status"]["Err"], failed["Status"]
    # the VIP and the mesh stop sending to it (it may still run out its stop grace period) and the
    # healthy task keeps answering: no request fails
    wait_for("the VIP skips the sick task", lambda: sick["ID"] not in answered_by(cluster, client), 5)
    for _ in range(2):
        seen = answered_by(cluster, client, 8)
        assert sick["ID"] not in seen and "FAILED" not in seen, seen
    mesh = [curl(cluster, "swarm00", PORT) for _ in range(6)]
    assert "" not in mesh and sick["ID"] not in owners(cluster, mesh), mesh
    # the slot gets a new, healthy task, and it serves
    new = wait_for(
        "a replacement in the sick task's slot",
        lambda: next((t for t in running(cluster, "web") if t["Slot"] == sick["Slot"] and t["ID"] != sick["ID"]), None),
        30,
    )
    wait_for("the replacement answers", lambda: new["ID"] in answered_by(cluster, client), 20)


def task(bed: Testbed, task_id: str) -> dict[str, Any]:
    return api(bed, "swarm00").get(f"/tasks/{task_id}")


def state_of(bed: Testbed, task_id: str) -> str:
    return task(bed, task_id)["Status"]["State"]


def owners(bed: Testbed, answers: list[str]) -> list[str]:
    """The task (ID) behind each "Hello World! from <ip>" answer; "FAILED" for a failed request."""
    by_ip = {
        addr.split("/")[0]: t["ID"]
        for t in tasks(bed, "web")
        for att in t.get("NetworksAttachments") or []
        for addr in att["Addresses"]
    }
    return [by_ip.get(a.removeprefix("Hello World! from "), a) for a in answers]


def answered_by(bed: Testbed, client: dict[str, Any], n: int = 6) -> set[str]:
    return set(owners(bed, through_vip(bed, client, n)))


def test_a_task_is_starting_and_no_backend_until_healthy(cluster: Testbed) -> None:
    spec = api(cluster, "swarm00").get("/services/web")
    body = dict(spec["Spec"])
    template = dict(body["TaskTemplate"])
    # a check that passes only once /ready exists, with a start period so failures do not count
    check = dict(CHECK, Test=["CMD-SHELL", "[ -f /ready ]"], StartPeriod=120_000 * MS)
    template["ContainerSpec"] = dict(template["ContainerSpec"], HealthCheck=check)
    body.update(TaskTemplate=template, Mode={"Replicated": {"Replicas": 3}})
    body["UpdateConfig"] = {"Parallelism": 0, "FailureAction": "continue", "Monitor": 0}
    api(cluster, "swarm00").post("/services/web/update", body, version=spec["Version"]["Index"])
    starting = wait_for("3 tasks STARTING", lambda: len(s := in_state(cluster, "starting")) == 3 and s, 60)
    client = running(cluster, "client")[0]
    assert answered_by(cluster, client, 3) == {"FAILED"}  # no backend while nothing is healthy
    rc, out = exec_in(cluster, starting[0], "sh", "-c", ": > /ready")
    assert rc == 0, out
    wait_for("the ready one RUNNING", lambda: [t["ID"] for t in running(cluster, "web")] == [starting[0]["ID"]], 15)
    wait_for("it answers", lambda: answered_by(cluster, client, 4) == {starting[0]["ID"]}, 10)


def test_rolling_update_to_a_failing_check_rolls_back_by_itself(cluster: Testbed) -> None:
    # back to the plain check (all healthy), with FailureAction rollback and a Monitor window
    spec = api(cluster, "swarm00").get("/services/web")
    body = dict(spec["Spec"])
    template = dict(body["TaskTemplate"], ContainerSpec=dict(body["TaskTemplate"]["ContainerSpec"], HealthCheck=CHECK))
    body.update(TaskTemplate=template, Mode={"Replicated": {"Replicas": 2}})
    body["UpdateConfig"] = {"Parallelism": 1, "FailureAction": "rollback", "Monitor": 10_000 * MS}
    api(cluster, "swarm00").post("/services/web/update", body, version=spec["Version"]["Index"])
    wait_for(
        "update completed, 2 healthy",
        lambda: (
            (api(cluster, "swarm00").get("/services/web").get("UpdateStatus") or {}).get("State") == "completed"
            and len(running(cluster, "web")) == 2
        ),
        60,
    )
    good = api(cluster, "swarm00").get("/services/web")
    client = running(cluster, "client")[0]
    body = dict(good["Spec"])
    failing = dict(CHECK, Test=["CMD-SHELL", "exit 1"])
    body["TaskTemplate"] = dict(
        body["TaskTemplate"], ContainerSpec=dict(body["TaskTemplate"]["ContainerSpec"], HealthCheck=failing)
    )
    api(cluster, "swarm00").post("/services/web/update", body, version=good["Version"]["Index"])
    done = wait_for("rollback completed", lambda: update_state(cluster) == "rollback_completed", 90)
    done = api(cluster, "swarm00").get("/services/web")
    assert done["Spec"]["TaskTemplate"]["ContainerSpec"]["HealthCheck"] == CHECK
    failed = [t for t in tasks(cluster, "web") if "unhealthy container" in (t["Status"].get("Err") or "")]
    assert failed and all(t["Spec"]["ContainerSpec"]["HealthCheck"] == failing for t in failed)
    wait_for("2 healthy again", lambda: len(running(cluster, "web")) == 2, 60)
    # the service kept answering through its VIP all along the failed update's aftermath
    assert "FAILED" not in answered_by(cluster, client, 4)
