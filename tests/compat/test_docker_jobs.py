"""Job services and service templates with real docker clients: the Debian docker CLI (20.10, API 1.41,
which has job modes) and the docker SDK, against shoal managers on the testbed."""

from __future__ import annotations

import docker
import pytest
from docker.types import ServiceMode

from compat.clients import Transcript, docker_cli, ok, sdk
from integration.cluster_helpers import HOSTS, api, wait_for
from testbed.bed import Testbed


def table(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("  ") if c.strip()] for line in text.splitlines() if line.strip()]


def complete(bed: Testbed, name: str) -> list[dict]:
    tasks = api(bed, "swarm00").get("/tasks", filters={"service": [name]})
    return [t for t in tasks if t["Status"]["State"] == "complete"]


def test_docker_cli_replicated_and_global_jobs(bed: Testbed, clean: Transcript) -> None:
    # docker waits for a job to complete (no --detach): it must come back with success
    out = ok(
        docker_cli(
            bed, "swarm00", "service", "create", "--name", "batch", "--mode", "replicated-job",
            "--replicas", "3", "--max-concurrent", "2", "shoal/host", "sh", "-c", "sleep 1",
            timeout=180,
        )
    )  # fmt: skip
    assert len(complete(bed, "batch")) == 3, out
    spec = api(bed, "swarm00").get("/services/batch")["Spec"]
    assert spec["Mode"] == {"ReplicatedJob": {"MaxConcurrent": 2, "TotalCompletions": 3}}
    rows = table(ok(docker_cli(bed, "swarm00", "service", "ls")))
    assert rows[1][1:4] == ["batch", "replicated job", "0/0 (3/3 completed)"], rows
    ps = table(ok(docker_cli(bed, "swarm00", "service", "ps", "batch")))
    # slot 0 is named by its node, as SwarmKit's naming.Task names it
    names = {r[1] for r in ps[1:]}
    assert len(ps) == 4 and {"batch.1", "batch.2"} < names, ps
    assert all(r[4] == "Complete" and r[5].startswith("Complete") for r in ps[1:]), ps
    out = ok(
        docker_cli(
            bed,
            "swarm00",
            "service",
            "create",
            "--name",
            "all",
            "--mode",
            "global-job",
            "shoal/host",
            "true",
            timeout=180,
        )
    )
    assert len(complete(bed, "all")) == len(HOSTS), out
    res = docker_cli(bed, "swarm00", "service", "create", "--mode", "replicated-job", "--replicas", "-1", "shoal/host")
    assert res.returncode != 0


def test_docker_cli_hostname_template_and_refused_placeholder(bed: Testbed, clean: Transcript) -> None:
    ok(
        docker_cli(
            bed, "swarm00", "service", "create", "--detach", "--name", "tmpl", "--hostname",
            "{{.Service.Name}}-{{.Node.Hostname}}", "--mode", "replicated-job", "shoal/host",
            "sh", "-c", 'case "$(hostname)" in tmpl-swarm0?) exit 0;; *) exit 1;; esac',
        )
    )  # fmt: skip
    wait_for("the hostname check to complete", lambda: complete(bed, "tmpl") or None, timeout=60)
    res = docker_cli(bed, "swarm00", "service", "create", "--detach", "--hostname", "{{.Service.Nope}}", "shoal/host")
    assert res.returncode != 0 and "can't evaluate field Nope" in res.stderr, res.stderr
    fmt = ok(
        docker_cli(
            bed, "swarm00", "service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Hostname}}", "tmpl"
        )
    )
    assert fmt.strip() == "{{.Service.Name}}-{{.Node.Hostname}}"


def test_docker_sdk_job_modes(bed: Testbed, clean: Transcript) -> None:
    client = sdk(bed)
    svc = client.services.create(
        "shoal/host", ["true"], name="sdkjob", mode=ServiceMode("replicated-job", concurrency=2, replicas=2)
    )
    wait_for("two completions", lambda: len(complete(bed, "sdkjob")) == 2 or None, timeout=90)
    svc.reload()
    assert svc.attrs["JobStatus"]["JobIteration"]["Index"] == 0
    with pytest.raises(docker.errors.APIError) as e:
        client.services.create("shoal/host", name="bad", hostname="{{.Task.Nope}}")
    assert e.value.status_code == 400
