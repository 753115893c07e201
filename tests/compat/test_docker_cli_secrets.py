"""`docker secret` and `docker config` (Debian's docker CLI 20.10) against a shoal manager's socket,
and `docker service create --secret/--config`, which resolves names through `GET /secrets?filters`."""

from __future__ import annotations

import json
import re
import subprocess

from compat.clients import DOCKER, DOCKER_CONFIG, SOCKET, Transcript, ok
from integration.cluster_helpers import api
from testbed.bed import Testbed


def docker_in(bed: Testbed, *args: str, data: str) -> subprocess.CompletedProcess[str]:
    """The docker CLI on swarm00 with `data` on its stdin (`docker secret create NAME -`)."""
    argv = ["env", f"DOCKER_CONFIG={DOCKER_CONFIG}", str(DOCKER), "-H", SOCKET, *args]
    return bed.run("swarm00", argv, input=data, timeout=60)


def docker(bed: Testbed, *args: str) -> subprocess.CompletedProcess[str]:
    return docker_in(bed, *args, data="")


def test_docker_secret_and_config(bed: Testbed, clean: Transcript) -> None:
    secret_id = ok(docker_in(bed, "secret", "create", "--label", "team=a", "cli_pw", "-", data="cli-s3cret")).strip()
    assert re.fullmatch(r"[0-9a-z]{25}", secret_id)
    rows = ok(docker(bed, "secret", "ls")).splitlines()
    assert rows[0].split() == ["ID", "NAME", "DRIVER", "CREATED", "UPDATED"]
    assert rows[1].split()[:2] == [secret_id, "cli_pw"]
    assert ok(docker(bed, "secret", "ls", "-q", "--filter", "label=team=a")).split() == [secret_id]
    inspected = json.loads(ok(docker(bed, "secret", "inspect", "cli_pw")))
    assert inspected[0]["ID"] == secret_id and inspected[0]["Spec"]["Labels"] == {"team": "a"}
    assert "Data" not in inspected[0]["Spec"]
    assert "cli-s3cret" not in ok(docker(bed, "secret", "inspect", "--pretty", "cli_pw"))
    dup = docker_in(bed, "secret", "create", "cli_pw", "-", data="x")
    assert dup.returncode == 1 and "already exists" in dup.stderr

    config_id = ok(docker_in(bed, "config", "create", "cli_conf", "-", data="port=80\n")).strip()
    rows = ok(docker(bed, "config", "ls")).splitlines()
    assert rows[0].split() == ["ID", "NAME", "CREATED", "UPDATED"] and rows[1].split()[:2] == [config_id, "cli_conf"]
    pretty = ok(docker(bed, "config", "inspect", "--pretty", "cli_conf"))
    assert re.search(r"^Name:\s+cli_conf$", pretty, re.M) and "port=80" in pretty

    # the CLI resolves the names to IDs (GET /secrets with a `names` filter) and sends both
    ok(
        docker(
            bed,
            "service",
            "create",
            "--detach",
            "--name",
            "uses",
            "--secret",
            "source=cli_pw,target=pw",
            "--config",
            "cli_conf",
            "shoal/host",
            "sleep",
            "60",
        )
    )
    container = api(bed, "swarm00").get("/services/uses")["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert container["Secrets"][0]["SecretID"] == secret_id and container["Secrets"][0]["File"]["Name"] == "pw"
    assert container["Configs"][0]["ConfigID"] == config_id and container["Configs"][0]["File"]["Name"] == "cli_conf"
    in_use = docker(bed, "secret", "rm", "cli_pw")
    assert in_use.returncode == 1 and "in use by the following service: uses" in in_use.stderr

    ok(docker(bed, "service", "rm", "uses"))
    assert ok(docker(bed, "secret", "rm", "cli_pw")).strip() == "cli_pw"
    assert ok(docker(bed, "config", "rm", "cli_conf")).strip() == "cli_conf"
    assert ok(docker(bed, "secret", "ls", "-q")) == ""
