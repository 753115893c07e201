"""swarm_secret, swarm_config and swarm_service's `secrets`/`configs` through ansible-playbook on the
testbed, as community.docker's integration tests run them: check -> real -> idempotent -> idempotent check.
The secret's value never appears in any output (no_log, diffs without data), even with --diff and -v."""

from __future__ import annotations

import os
import re
import secrets as pysecrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.cluster_helpers import api, form_cluster, wait_for, wipe_cluster
from testbed.bed import Testbed

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)

PLAYBOOK = """
- hosts: swarm00
  gather_facts: false
  tasks:
    - name: A secret
      shoal.swarm.swarm_secret:
        name: app_password
        data: "{{ app_password }}"
        labels:
          app: reader
    - name: A config
      shoal.swarm.swarm_config:
        name: app_settings
        data: "mode=test\\n"
    - name: A service using both
      shoal.swarm.swarm_service:
        name: reader
        image: shoal/host
        command: [sleep, "3600"]
        constraints: ["node.role==worker"]
        secrets:
          - secret_name: app_password
            filename: password
            mode: 0400  # YAML 1.1 octal, as community.docker documents it
        configs:
          - config_name: app_settings
            filename: /settings.conf
"""


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=1)
    yield bed
    wipe_cluster(bed, "test_ansible_secrets")


def playbook(bed: Testbed, path: Path, value: str, *args: str) -> tuple[int, str, int]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(bed.ansible_cfg_path),
        ANSIBLE_COLLECTIONS_PATH=str(REPO / "playbooks" / "collections"),
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
    )
    argv = [str(ANSIBLE_PLAYBOOK), str(path), "-e", f"app_password={value}", "--diff", "-v", *args]
    proc = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    changed = sum(int(m[2]) for m in RECAP.findall(out))
    return proc.returncode, out, changed


def test_check_real_idempotent_idempotent_check(cluster: Testbed, tmp_path: Path) -> None:
    bed = cluster
    path = tmp_path / "secrets.yml"
    path.write_text(PLAYBOOK)
    value = f"pw-{pysecrets.token_hex(10)}"
    manager = api(bed, "swarm00")

    rc, out, changed = playbook(bed, path, value, "--check")
    assert rc == 0 and changed == 3, out
    assert manager.get("/secrets") == [] and manager.get("/configs") == [] and manager.get("/services") == []

    rc, out, changed = playbook(bed, path, value)
    assert rc == 0 and changed == 3, out
    assert value not in out
    container = manager.get("/services/reader")["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert container["Secrets"][0]["File"]["Name"] == "password" and container["Secrets"][0]["File"]["Mode"] == 0o400
    wait_for(
        "reader running",
        lambda: any(t["Status"]["State"] == "running" for t in manager.get("/tasks", filters={"service": ["reader"]})),
        timeout=60,
    )
    versions = {s["ID"]: s["Version"]["Index"] for s in manager.get("/secrets")}

    for extra in ((), ("--check",)):
        rc, out, changed = playbook(bed, path, value, *extra)
        assert rc == 0 and changed == 0, out
        assert value not in out
    assert {s["ID"]: s["Version"]["Index"] for s in manager.get("/secrets")} == versions

    # a new value for a secret in use: the swarm refuses to replace it and the play says why
    rc, out, _ = playbook(bed, path, "another-value")
    assert rc != 0 and "in use by the following service: reader" in out, out
    assert "another-value" not in out.replace("app_password=another-value", "")
    assert {s["ID"] for s in manager.get("/secrets")} == set(versions)
