"""`docker stack deploy|ls|services|ps|rm` (Debian's docker CLI 20.10) against a shoal manager's socket:
the seed's app (as site.yml deploys it: `nodejs`, 2 replicas on the workers, port 80) plus a second
service on two overlay networks that reads a secret and a config of the stack, as the docker CLI
converts a compose file (its short-name network aliases included). Issue 13's "done when"."""

from __future__ import annotations

import hashlib
import re

from compat.clients import Transcript, docker_cli, ok, wait_running
from integration.cluster_helpers import api, wait_for
from testbed.bed import Testbed

COMPOSE = """
version: "3.8"
services:
  nodejs:
    image: shoal/hello
    ports: ["80:8080"]
    networks: [front]
    deploy:
      replicas: 2
      placement:
        constraints: [node.role==worker]
  api:
    image: shoal/host
    # a digest of the secret, never the secret (the log is on the worker's disk), and the config
    command: ["sh", "-c", "sha256sum /run/secrets/db_password; cat /etc/api.conf; exec sleep 3600"]
    stop_signal: SIGKILL
    secrets:
      - db_password
    configs:
      - source: api_conf
        target: /etc/api.conf
        mode: 0440
    networks:
      front:
      back:
        aliases: [backend]
    deploy:
      update_config:
        parallelism: 1
        delay: 1s
networks:
  front:
  back:
    driver: overlay
    attachable: true
secrets:
  db_password:
    file: ./db_password
configs:
  api_conf:
    file: ./api.conf
"""
PASSWORD = "correct horse battery staple"
CONF = "listen=8080 greeting=compat"


def stack_services(bed: Testbed) -> dict[str, dict]:
    found = api(bed, "swarm00").get("/services", filters={"label": ["com.docker.stack.namespace=demo"]})
    return {s["Spec"]["Name"]: s for s in found}


def _logs_with(bed: Testbed, service: str, text: str) -> str | None:
    out = bed.run("swarm00", ["shoal", "service", "logs", "--raw", service], timeout=30).stdout
    return out if text in out else None


def test_docker_stack_deploy_ls_services_ps_rm(bed: Testbed, clean: Transcript, tmp_path) -> None:
    compose = tmp_path / "docker-compose.yml"
    compose.write_text(COMPOSE)
    (tmp_path / "db_password").write_text(PASSWORD)
    (tmp_path / "api.conf").write_text(CONF + "\n")
    out = ok(docker_cli(bed, "swarm00", "stack", "deploy", "-c", str(compose), "demo"))
    for line in (
        "Creating network demo_front",
        "Creating network demo_back",
        "Creating secret demo_db_password",
        "Creating config demo_api_conf",
    ):
        assert line in out, out
    assert "Creating service demo_nodejs" in out and "Creating service demo_api" in out, out
    wait_running(bed, "demo_nodejs", 2)
    wait_running(bed, "demo_api", 1)
    services = stack_services(bed)
    api_spec = services["demo_api"]["Spec"]
    assert api_spec["Labels"] == {"com.docker.stack.image": "shoal/host", "com.docker.stack.namespace": "demo"}
    back = api(bed, "swarm00").get("/networks/demo_back")
    assert back["Labels"] == {"com.docker.stack.namespace": "demo"} and back["Attachable"] is True
    attached = {a["Target"]: a["Aliases"] for a in api_spec["TaskTemplate"]["Networks"]}
    assert attached[back["Id"]] == ["backend", "api"]  # what the docker CLI sends: the file's, then the short name
    secret = api(bed, "swarm00").get("/secrets/demo_db_password")
    assert secret["Spec"]["Labels"] == {"com.docker.stack.namespace": "demo"} and "Data" not in secret["Spec"]
    container = api_spec["TaskTemplate"]["ContainerSpec"]
    assert [r["SecretID"] for r in container["Secrets"]] == [secret["ID"]]
    assert [r["File"]["Name"] for r in container["Configs"]] == ["/etc/api.conf"]
    # the task read both: the secret at /run/secrets/<name>, the config at its target
    digest = hashlib.sha256(PASSWORD.encode()).hexdigest()
    logs = wait_for("the api task's output", lambda: _logs_with(bed, "demo_api", CONF), timeout=60)
    assert digest in logs and PASSWORD not in logs, logs

    rows = [re.split(r"\s{2,}", line.strip()) for line in ok(docker_cli(bed, "swarm00", "stack", "ls")).splitlines()]
    assert rows[0][:2] == ["NAME", "SERVICES"] and rows[1][:2] == ["demo", "2"], rows
    listed = ok(docker_cli(bed, "swarm00", "stack", "services", "demo"))
    assert "demo_nodejs" in listed and "demo_api" in listed and "2/2" in listed, listed
    ps = ok(docker_cli(bed, "swarm00", "stack", "ps", "demo"))
    assert "demo_nodejs.1" in ps and "demo_api.1" in ps and "Running" in ps, ps

    # the docker CLI updates every service on a redeploy; an unchanged spec restarts no task
    tasks = {t["ID"] for t in api(bed, "swarm00").get("/tasks", filters={"desired-state": ["running"]})}
    out = ok(docker_cli(bed, "swarm00", "stack", "deploy", "-c", str(compose), "demo"))
    assert "Updating service demo_nodejs" in out and "Updating service demo_api" in out, out
    again = {t["ID"] for t in api(bed, "swarm00").get("/tasks", filters={"desired-state": ["running"]})}
    assert again == tasks

    # a deploy through shoal's own CLI of the same file finds nothing to change
    versions = {n: s["Version"]["Index"] for n, s in stack_services(bed).items()}
    res = bed.run("swarm00", ["shoal", "stack", "deploy", "-c", str(compose), "demo"], timeout=120)
    assert res.returncode == 0 and res.stdout == "", res.stdout + res.stderr
    assert {n: s["Version"]["Index"] for n, s in stack_services(bed).items()} == versions

    out = ok(docker_cli(bed, "swarm00", "stack", "rm", "demo"))
    for line in (
        "Removing service demo_nodejs",
        "Removing network demo_back",
        "Removing secret demo_db_password",
        "Removing config demo_api_conf",
    ):
        assert line in out, out
    wait_for("the stack gone", lambda: stack_services(bed) == {}, timeout=30)
    names = {n["Name"] for n in api(bed, "swarm00").get("/networks")}
    assert not names & {"demo_front", "demo_back"}
    assert api(bed, "swarm00").get("/secrets") == [] and api(bed, "swarm00").get("/configs") == []
