"""community.docker's swarm modules (from the `ansible` package on PyPI) against shoal: each play run
twice, the second must change nothing (idempotence), then the objects are removed, twice too.

The modules run on swarm00 over ssh with the controller venv's interpreter (the testbed hosts share
the machine's file system), which has the docker SDK they need, on the host's shoal socket.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from compat.clients import REPO, Transcript, wait_running
from integration.cluster_helpers import api
from testbed.bed import Testbed

RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)

PLAY = """
- name: community.docker against shoal
  hosts: swarm00
  gather_facts: false
  module_defaults:
    group/community.docker.docker:
      docker_host: unix:///run/shoal/shoal.sock
  vars:
    present: "{{ state == 'present' }}"
  tasks:
    - name: Swarm facts
      community.docker.docker_swarm_info:
        nodes: true
        services: true
      register: info
    - name: The node is a manager of an active swarm
      ansible.builtin.assert:
        that:
          - info.can_talk_to_docker
          - info.docker_swarm_active
          - info.docker_swarm_manager
          - info.swarm_facts.ID | length == 25
          - info.nodes | length == 3
    - name: Worker labels
      community.docker.docker_node:
        hostname: swarm01
        labels: "{{ {'zone': 'b'} if present else {} }}"
        labels_state: replace
        availability: active
    - name: Service removed first (it uses the network)
      community.docker.docker_swarm_service:
        name: cdweb
        state: absent
      when: not present
    - name: Overlay network
      community.docker.docker_network:
        name: cdnet
        driver: overlay
        attachable: true
        ipam_config:
          - subnet: 10.32.0.0/24
        labels:
          tier: back
        state: "{{ state }}"
    - name: Service
      community.docker.docker_swarm_service:
        name: cdweb
        image: shoal/hello
        replicas: 2
        env:
          GREETING: hi
        labels:
          tier: web
        networks:
          - cdnet
        publish:
          - published_port: 8082
            target_port: 8080
        restart_config:
          condition: any
        state: present
      when: present
    - name: Service facts
      community.docker.docker_swarm_service_info:
        name: cdweb
      register: service
    - name: The service is there (or gone)
      ansible.builtin.assert:
        that:
          - service.exists == present
"""


@pytest.fixture
def play(bed: Testbed, tmp_path: Path):
    playbook = tmp_path / "community_docker.yml"
    playbook.write_text(PLAY)
    env = dict(os.environ, ANSIBLE_CONFIG=str(bed.ansible_cfg_path), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")

    def run(state: str) -> tuple[dict[str, int], str]:
        argv = [
            str(REPO / ".venv" / "bin" / "ansible-playbook"),
            str(playbook),
            "-e",
            json.dumps({"state": state, "ansible_python_interpreter": str(REPO / ".venv" / "bin" / "python")}),
        ]
        proc = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
        out = proc.stdout + proc.stderr
        recaps = RECAP.findall(out)
        assert proc.returncode == 0 and recaps, out
        _host, okc, changed, unreachable, failed = recaps[0]
        return {"ok": int(okc), "changed": int(changed), "unreachable": int(unreachable), "failed": int(failed)}, out

    return run


def test_community_docker_modules_are_idempotent_against_shoal(bed: Testbed, clean: Transcript, play) -> None:
    first, out = play("present")
    assert first["changed"] == 3, out  # labels, network, service
    second, out = play("present")
    assert second == {**first, "changed": 0}, out
    wait_running(bed, "cdweb", 2)
    spec = api(bed, "swarm00").get("/services/cdweb")["Spec"]
    assert spec["Mode"] == {"Replicated": {"Replicas": 2}}
    assert spec["TaskTemplate"]["ContainerSpec"]["Env"] == ["GREETING=hi"]
    assert spec["EndpointSpec"]["Ports"][0]["PublishedPort"] == 8082
    assert api(bed, "swarm00").get("/nodes/swarm01")["Spec"]["Labels"] == {"zone": "b"}
    removed, out = play("absent")
    assert removed["changed"] == 3, out
    again, out = play("absent")
    assert again["changed"] == 0, out
    assert api(bed, "swarm00").get("/services") == []
