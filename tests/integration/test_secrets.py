"""Secrets and configs on the testbed: a service's tasks read them from a tmpfs inside the task,
their data reaches only the worker that runs the task and is never written to its disk (nor its
agent's log), reads never return a secret's data, bad requests change nothing, and rotation
(`--secret-rm old --secret-add new,target=same`) replaces the file in new tasks."""

from __future__ import annotations

import base64
import hashlib
import secrets as pysecrets
from collections.abc import Iterator

import pytest

from integration.cluster_helpers import api, cli, form_cluster, wait_for, wipe_cluster
from shoal.cli.errors import APIError
from testbed.bed import Testbed

# the task prints a digest of the secret, never the secret: its log is on the worker's disk
READER = "sha256sum /run/secrets/key; cat /app.conf; echo; stat -c 'mode=%a uid=%u gid=%g' /run/secrets/key; sleep 3600"


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=1)
    yield bed
    wipe_cluster(bed, "test_secrets")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _running(bed: Testbed, service: str) -> list[dict]:
    def check() -> list[dict] | None:
        tasks = api(bed, "swarm00").get("/tasks", filters={"service": [service], "desired-state": ["running"]})
        return tasks if tasks and all(t["Status"]["State"] == "running" for t in tasks) else None

    return wait_for(f"{service} running", check, timeout=60)


def _hostname(bed: Testbed, node_id: str) -> str:
    return api(bed, "swarm00").get(f"/nodes/{node_id}")["Description"]["Hostname"]


def _logs_with(bed: Testbed, service: str, text: str) -> str:
    return wait_for(
        f"{text!r} in {service}'s logs",
        lambda: (r := cli(bed, "swarm00", "service", "logs", "--raw", service))[1].count(text) and r[1],
        timeout=30,
    )


def test_secret_and_config_in_a_task(cluster: Testbed) -> None:
    bed = cluster
    value, conf = f"pw-{pysecrets.token_hex(12)}", f"conf-{pysecrets.token_hex(8)}"
    # the CLI on the manager reads the file from its own filesystem: give it through stdin instead
    res = bed.run("swarm00", ["shoal", "secret", "create", "--label", "app=x", "db_key", "-"], input=value)
    assert res.returncode == 0, res.stderr
    secret_id = res.stdout.strip()
    api(bed, "swarm00").post("/configs/create", {"Name": "app_conf", "Data": _b64(conf)})

    # reads never carry the secret's data
    for out in (
        cli(bed, "swarm00", "secret", "inspect", "db_key")[1],
        cli(bed, "swarm00", "secret", "inspect", "--pretty", "db_key")[1],
        cli(bed, "swarm00", "secret", "ls")[1],
    ):
        assert value not in out and _b64(value) not in out
    assert "db_key" in cli(bed, "swarm00", "secret", "ls")[1]
    assert cli(bed, "swarm00", "secret", "ls", "-q")[1].strip() == secret_id
    assert conf in cli(bed, "swarm00", "config", "inspect", "--pretty", "app_conf")[1]  # configs show theirs

    # refusals, each changing nothing
    with pytest.raises(APIError) as err:
        api(bed, "swarm00").post("/secrets/create", {"Name": "db_key", "Data": _b64("other")})
    assert err.value.status == 409
    with pytest.raises(APIError) as err:
        api(bed, "swarm00").post("/secrets/create", {"Name": "big", "Data": _b64("x" * (501 * 1024))})
    assert err.value.status == 400 and "less than 500 KB" in str(err.value)
    code, _, stderr = cli(
        bed, "swarm00", "service", "create", "--name", "bad", "--secret", "nope", "shoal/host", "true"
    )
    assert code != 0 and "secret not found: nope" in stderr
    assert [s["Spec"]["Name"] for s in api(bed, "swarm00").get("/secrets")] == ["db_key"]

    code, out, stderr = cli(
        bed,
        "swarm00",
        "service",
        "create",
        "--detach",
        "--name",
        "reader",
        "--constraint",
        "node.role==worker",
        "--init",
        "--secret",
        "source=db_key,target=key,uid=7,gid=8,mode=0400",
        "--config",
        "source=app_conf,target=/app.conf",
        "shoal/host",
        "sh",
        "-c",
        READER,
    )
    assert code == 0, stderr
    (task,) = _running(bed, "reader")
    worker = _hostname(bed, task["NodeID"])
    logs = _logs_with(bed, "reader", "mode=")
    assert _digest(value) in logs and conf in logs and "mode=400 uid=7 gid=8" in logs

    # the file's home on the worker is a tmpfs made for the task; nothing of it on disk or in logs
    mounts = bed.run(worker, ["cat", "/proc/self/mounts"]).stdout
    assert any(
        line.split()[1].endswith(f"/secrets/{task['ID']}") and line.split()[2] == "tmpfs"
        for line in mounts.splitlines()
    ), mounts
    other = ({"swarm01", "swarm02"} - {worker}).pop()  # runs no task of it: never got the data
    assert bed.run(other, ["sh", "-c", "ls -A /run/shoal/secrets 2>/dev/null"]).stdout.strip() == ""
    assert cli(bed, "swarm00", "secret", "inspect", "-f", "{{.Spec.Name}}", "db_key")[1] == "db_key\n"
    for host in ("swarm01", "swarm02"):
        found = bed.run(host, ["grep", "-rl", "--", value, "/var/lib/shoal", "/etc/shoal"])
        assert found.returncode == 1 and not found.stdout, f"{host}: {found.stdout}"

    # in use: refused with the service's name
    with pytest.raises(APIError) as err:
        api(bed, "swarm00").delete(f"/secrets/{secret_id}")
    assert err.value.status == 400 and "in use by the following service: reader" in str(err.value)
    code, _, stderr = cli(bed, "swarm00", "secret", "rm", "db_key")
    assert code != 0 and "reader" in stderr

    # rotation the Docker way: a new secret on the same target
    new_value = f"pw2-{pysecrets.token_hex(12)}"
    assert bed.run("swarm00", ["shoal", "secret", "create", "db_key_v2", "-"], input=new_value).returncode == 0
    code, _, stderr = cli(
        bed,
        "swarm00",
        "service",
        "update",
        "--detach",
        "--secret-rm",
        "db_key",
        "--secret-add",
        "source=db_key_v2,target=key",
        "reader",
    )
    assert code == 0, stderr
    _logs_with(bed, "reader", _digest(new_value))
    wait_for(
        "old secret unused and removable", lambda: cli(bed, "swarm00", "secret", "rm", "db_key")[0] == 0, timeout=20
    )

    # removing the service removes the task's tmpfs with it
    old_task = task["ID"]
    assert cli(bed, "swarm00", "service", "rm", "reader")[0] == 0
    wait_for(
        "task tmpfs unmounted",
        lambda: all(
            f"/secrets/{old_task}" not in bed.run(h, ["cat", "/proc/self/mounts"]).stdout
            for h in ("swarm01", "swarm02")
        ),
        timeout=30,
    )
    assert cli(bed, "swarm00", "secret", "rm", "db_key_v2")[0] == 0
    assert cli(bed, "swarm00", "config", "rm", "app_conf")[0] == 0
