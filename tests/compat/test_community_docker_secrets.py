"""community.docker's docker_secret, docker_config and docker_swarm_service `secrets`/`configs` against
shoal: the play run twice (the second changes nothing), then the objects removed, twice too."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from compat.clients import REPO, Transcript
from integration.cluster_helpers import api
from testbed.bed import Testbed

RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
VALUE = "cd-s3cret-value"

PLAY = """
- name: community.docker secrets and configs against shoal
  hosts: swarm00
  gather_facts: false
  module_defaults:
    group/community.docker.docker:
      docker_host: unix:///run/shoal/shoal.sock
  tasks:
    - name: Service removed first (it uses them)
      community.docker.docker_swarm_service:
        name: cdsecrets
        state: absent
      when: state == 'absent'
    - name: Secret
      community.docker.docker_secret:
        name: cd_pw
        data: "VALUE"
        labels:
          app: cd
        state: "{{ state }}"
    - name: Config
      community.docker.docker_config:
        name: cd_conf
        data: "greeting=hi"
        state: "{{ state }}"
    - name: Service with both
      community.docker.docker_swarm_service:
        name: cdsecrets
        image: shoal/host
        command: [sleep, "600"]
        secrets:
          - secret_name: cd_pw
            filename: pw
            mode: 0400
        configs:
          - config_name: cd_conf
            filename: /cd.conf
        state: present
      when: state == 'present'
""".replace("VALUE", VALUE)


def play(bed: Testbed, path: Path, state: str) -> tuple[int, str]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(bed.ansible_cfg_path), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    argv = [
        str(REPO / ".venv" / "bin" / "ansible-playbook"),
        str(path),
        "--diff",
        "-e",
        json.dumps({"state": state, "ansible_python_interpreter": str(REPO / ".venv" / "bin" / "python")}),
    ]
    proc = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    recaps = RECAP.findall(out)
    assert proc.returncode == 0 and recaps, out
    return int(recaps[0][2]), out


def test_community_docker_secret_config_and_service(bed: Testbed, clean: Transcript, tmp_path: Path) -> None:
    path = tmp_path / "cd_secrets.yml"
    path.write_text(PLAY)
    changed, out = play(bed, path, "present")
    assert changed == 3, out
    changed, out = play(bed, path, "present")
    assert changed == 0, out
    assert VALUE not in out.replace(f'data: "{VALUE}"', "")
    container = api(bed, "swarm00").get("/services/cdsecrets")["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert container["Secrets"][0]["SecretName"] == "cd_pw" and container["Secrets"][0]["File"]["Mode"] == 0o400
    assert container["Configs"][0]["File"]["Name"] == "/cd.conf"
    labels = api(bed, "swarm00").get("/secrets/cd_pw")["Spec"]["Labels"]
    assert labels["app"] == "cd" and "ansible_key" in labels
    changed, out = play(bed, path, "absent")
    assert changed == 3, out
    changed, out = play(bed, path, "absent")
    assert changed == 0, out
    assert api(bed, "swarm00").get("/secrets") == [] and api(bed, "swarm00").get("/configs") == []
