"""swarm_stack on the testbed through Ansible (ad-hoc module runs over ssh), as community.docker's
integration tests run a module: check mode predicts and changes nothing, the real run deploys,
a second run changes nothing, a second check predicts nothing; a changed file updates one service
with a diff; a bad file fails with file, line and key and deploys nothing; state=absent removes."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.ansible_adhoc import run_module
from integration.cluster_helpers import api, form_cluster, wipe_cluster
from testbed.bed import Testbed

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
SHOAL_CLI = str(REPO / ".venv" / "bin" / "shoal")  # the testbed's agents run from the repository's venv
COMPOSE = """
services:
  web:
    image: shoal/hello
    ports: ["8082:8080"]
    networks: [front]
    deploy:
      replicas: ${WEB_REPLICAS:-1}
  worker:
    image: shoal/host
    command: sleep 3600
    init: true
    networks: [front, back]
networks:
  front:
  back:
"""


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=1)
    yield bed
    wipe_cluster(bed, "test_ansible_stack")


@pytest.fixture(scope="module")
def module(cluster: Testbed) -> Any:
    def run(args: dict[str, Any], *, check: bool = False, diff: bool = False) -> tuple[int, dict[str, Any], str]:
        return run_module(cluster, "swarm_stack", {"shoal_cli": SHOAL_CLI, **args}, check=check, diff=diff)

    return run


def versions(bed: Testbed) -> dict[str, int]:
    found = api(bed, "swarm00").get("/services", filters={"label": ["com.docker.stack.namespace=shop"]})
    return {s["Spec"]["Name"]: s["Version"]["Index"] for s in found}


def test_check_real_idempotent_and_idempotent_check(cluster: Testbed, module: Any, tmp_path: Path) -> None:
    (tmp_path / "compose.yml").write_text(COMPOSE)
    args = {"name": "shop", "compose": [str(tmp_path / "compose.yml")]}
    rc, result, out = module(args, check=True, diff=True)
    assert rc == 0 and result["changed"], out
    assert sorted(result["created"]) == ["shop_web", "shop_worker"]
    assert sorted(result["networks_created"]) == ["shop_back", "shop_front"]
    assert versions(cluster) == {}  # check mode wrote nothing
    assert "shop_front" not in {n["Name"] for n in api(cluster, "swarm00").get("/networks")}

    rc, result, out = module(args)
    assert rc == 0 and result["changed"] and sorted(result["created"]) == ["shop_web", "shop_worker"], out
    deployed = versions(cluster)
    assert sorted(deployed) == ["shop_web", "shop_worker"]
    tasks = api(cluster, "swarm00").get("/tasks", filters={"service": ["shop_web"], "desired-state": ["running"]})
    assert [t["Status"]["State"] for t in tasks] == ["running"]  # waited for

    rc, result, out = module(args)
    assert rc == 0 and not result["changed"], out
    assert sorted(result["unchanged"]) == ["shop_web", "shop_worker"]
    rc, result, out = module(args, check=True)
    assert rc == 0 and not result["changed"], out
    assert versions(cluster) == deployed


def test_a_changed_definition_updates_one_service_with_a_diff(cluster: Testbed, module: Any, tmp_path: Path) -> None:
    (tmp_path / "compose.yml").write_text(COMPOSE)
    args = {"name": "shop", "compose": [str(tmp_path / "compose.yml")], "env": {"WEB_REPLICAS": "2"}}
    before = versions(cluster)
    rc, result, out = module(args, check=True, diff=True)
    assert rc == 0 and result["changed"] and result["updated"] == ["shop_web"], out
    assert '"Replicas": 2' in out and '"Replicas": 1' in out  # the diff
    assert versions(cluster) == before
    rc, result, out = module(args)
    assert rc == 0 and result["updated"] == ["shop_web"], out
    after = versions(cluster)
    assert after["shop_web"] > before["shop_web"] and after["shop_worker"] == before["shop_worker"]


def test_inline_definition_with_an_unknown_key_fails_and_deploys_nothing(cluster: Testbed, module: Any) -> None:
    definition = {"services": {"x": {"image": "shoal/hello", "replicaz": 2}}}
    rc, result, out = module({"name": "broken", "compose": [definition]})
    assert rc != 0, out
    assert result["msg"].startswith("definition[0]:") and "services.x.replicaz: unknown key" in result["msg"], out
    assert api(cluster, "swarm00").get("/services", filters={"label": ["com.docker.stack.namespace=broken"]}) == []


def test_absent_removes_the_stack_then_changes_nothing(cluster: Testbed, module: Any) -> None:
    rc, result, out = module({"name": "shop", "state": "absent"}, check=True)
    assert rc == 0 and result["changed"] and sorted(result["removed"]) == ["shop_web", "shop_worker"], out
    assert sorted(versions(cluster)) == ["shop_web", "shop_worker"]
    rc, result, out = module({"name": "shop", "state": "absent"})
    assert rc == 0 and result["changed"], out
    assert versions(cluster) == {}
    rc, result, out = module({"name": "shop", "state": "absent"})
    assert rc == 0 and not result["changed"], out


PLAYBOOK = """
- name: Deploy the inventory's compose stacks with the stack role
  hosts: swarm00
  gather_facts: false
  roles:
    - role: shoal.swarm.stack
      vars:
        stack_stacks:
          - name: played
            compose_files: [{compose}]
            shoal_cli: {cli}
"""


def test_the_stack_role_deploys_compose_files_check_real_idempotent_check(cluster: Testbed, tmp_path: Path) -> None:
    """Through ansible-playbook, as community.docker's integration tests: check, real, idempotent, check."""
    (tmp_path / "compose.yml").write_text(COMPOSE.replace("8082:8080", "8083:8080"))
    (tmp_path / "play.yml").write_text(PLAYBOOK.format(compose=tmp_path / "compose.yml", cli=SHOAL_CLI))
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(cluster.ansible_cfg_path),
        ANSIBLE_COLLECTIONS_PATH=str(REPO / "playbooks" / "collections"),
        ANSIBLE_NOCOLOR="1",
    )

    def play(*args: str) -> tuple[int, int, str]:
        argv = [str(ANSIBLE_PLAYBOOK), str(tmp_path / "play.yml"), *args]
        proc = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
        out = proc.stdout + proc.stderr
        return proc.returncode, sum(int(m[2]) for m in RECAP.findall(out)), out

    def played() -> dict[str, int]:
        found = api(cluster, "swarm00").get("/services", filters={"label": ["com.docker.stack.namespace=played"]})
        return {s["Spec"]["Name"]: s["Version"]["Index"] for s in found}

    rc, changed, out = play("--check", "--diff")
    assert rc == 0 and changed == 1 and played() == {}, out
    rc, changed, out = play()
    assert rc == 0 and changed == 1, out
    deployed = played()
    assert sorted(deployed) == ["played_web", "played_worker"]
    rc, changed, out = play()
    assert rc == 0 and changed == 0, out
    rc, changed, out = play("--check")
    assert rc == 0 and changed == 0, out
    assert played() == deployed
