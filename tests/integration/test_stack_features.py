"""A compose stack using what issue 14 added, on the testbed (`shoal stack deploy`): a named volume
(`NAME_vol` on the node) whose data survives a forced update, a health check the task must pass
before it is RUNNING, a replicated job that ends Complete; and a mount source with a Go template,
rendered on the node (`data-{{.Task.Slot}}` → a volume per slot)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.cluster_helpers import api, cli, form_cluster, wait_for, wipe_cluster
from testbed.bed import Testbed

MANAGER, NODE = "swarm00", "swarm01"
COMPOSE = """
version: "3.8"
services:
  db:
    image: shoal/host
    command: ["sh", "-c", "echo run >> /data/log; exec sleep 3600"]
    stop_signal: SIGKILL
    init: true
    volumes: [data:/data]
    healthcheck:
      test: ["CMD-SHELL", "grep -q run /data/log"]
      interval: 1s
      timeout: 2s
      retries: 3
      start_period: 1s
    deploy:
      placement:
        constraints: [node.hostname==swarm01]
  once:
    image: shoal/host
    command: ["sh", "-c", "test -d /proc/self"]
    deploy:
      mode: replicated-job
      replicas: 2
volumes:
  data:
"""


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=1)
    yield bed
    wipe_cluster(bed, "test_stack_features")


def tasks_of(bed: Testbed, service: str, **filters: list[str]) -> list[dict[str, Any]]:
    return api(bed, MANAGER).get("/tasks", filters={"service": [service], **filters})


def running(bed: Testbed, service: str, not_id: str = "") -> dict[str, Any] | None:
    live = tasks_of(bed, service, **{"desired-state": ["running"]})
    return next((t for t in live if t["Status"]["State"] == "running" and t["ID"] != not_id), None)


def test_stack_with_a_named_volume_a_health_check_and_a_job(cluster: Testbed, tmp_path: Path) -> None:
    compose = tmp_path / "compose.yml"
    compose.write_text(textwrap.dedent(COMPOSE).lstrip())
    rc, out, err = cli(cluster, MANAGER, "stack", "deploy", "-c", str(compose), "feat", timeout=120)
    assert rc == 0 and "Creating service feat_db" in out and "Creating service feat_once" in out, out + err

    # the health-checked task is RUNNING only once its check passed (STARTING before)
    first = wait_for("feat_db RUNNING (healthy)", lambda: running(cluster, "feat_db"), timeout=90)
    spec = api(cluster, MANAGER).get("/services/feat_db")["Spec"]
    assert spec["TaskTemplate"]["ContainerSpec"]["HealthCheck"]["Test"] == ["CMD-SHELL", "grep -q run /data/log"]
    # the stack's named volume is `feat_data` on the node, labelled with the stack
    volume = api(cluster, NODE).get("/volumes/feat_data")
    assert volume["Labels"] == {"com.docker.stack.namespace": "feat"}, volume
    log = cluster.host(NODE).state_dir / "var" / "volumes" / "feat_data" / "_data" / "log"
    assert log.read_text() == "run\n"

    # the job's two completions end Complete
    wait_for(
        "feat_once 2 tasks complete",
        lambda: [t["Status"]["State"] for t in tasks_of(cluster, "feat_once")] == ["complete"] * 2,
        timeout=90,
    )

    # a forced update replaces the task; the new one finds the first one's data
    rc, out, err = cli(cluster, MANAGER, "service", "update", "--force", "--detach", "feat_db", timeout=60)
    assert rc == 0, err
    wait_for("a second feat_db task RUNNING", lambda: running(cluster, "feat_db", not_id=first["ID"]), timeout=90)
    assert log.read_text() == "run\nrun\n"

    ids = {api(cluster, MANAGER).get(f"/services/{name}")["ID"] for name in ("feat_db", "feat_once")}
    rc, out, err = cli(cluster, MANAGER, "stack", "rm", "feat", timeout=120)
    assert rc == 0, err
    wait_for(
        "feat's tasks gone", lambda: not [t for t in api(cluster, MANAGER).get("/tasks") if t["ServiceID"] in ids], 60
    )


def test_a_templated_volume_source_is_rendered_per_slot_on_the_node(cluster: Testbed) -> None:
    mount = {"Type": "volume", "Source": "slot-{{.Task.Slot}}", "Target": "/data"}
    api(cluster, MANAGER).post(
        "/services/create",
        {
            "Name": "slotted",
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": "shoal/host",
                    "Command": ["sh", "-c", "touch /data/slot; exec sleep 3600"],
                    "Init": True,
                    "Mounts": [mount],
                },
                "Placement": {"Constraints": [f"node.hostname=={NODE}"]},
            },
            "Mode": {"Replicated": {"Replicas": 2}},
        },
    )
    volumes = cluster.host(NODE).state_dir / "var" / "volumes"
    wait_for(
        "slot-1 and slot-2 on the node",
        lambda: all((volumes / f"slot-{n}" / "_data" / "slot").exists() for n in (1, 2)),
        timeout=90,
    )
    names = {v["Name"] for v in api(cluster, NODE).get("/volumes")["Volumes"]}
    assert {"slot-1", "slot-2"} <= names and "slot-{{.Task.Slot}}" not in names
    service_id = api(cluster, MANAGER).get("/services/slotted")["ID"]
    api(cluster, MANAGER).delete("/services/slotted")
    wait_for(
        "slotted's tasks gone",
        lambda: not [t for t in api(cluster, MANAGER).get("/tasks") if t["ServiceID"] == service_id],
        60,
    )
