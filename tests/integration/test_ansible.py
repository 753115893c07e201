"""The Ansible collection on the testbed: site.yml from bare hosts (with the inventory's default service, the
seed's nodejs, answering through the routing mesh), idempotence, check and diff mode, bad arguments,
drain/activate/promote/demote plays, reset.

The tests run in file order on one cluster; each leaves it as the next one expects. The agent is
installed by the agent role (/opt/shoal/venv, from the wheelhouse), not the repository's venv.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.ansible_adhoc import module_result
from integration.cluster_helpers import HOSTS, api, nodes, wait_for, wipe_cluster
from testbed import registry
from testbed.bed import Testbed
from testbed.layout import CONTROLLER_NS

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"
ANSIBLE = REPO / ".venv" / "bin" / "ansible"
MANAGER = "10.213.0.10:2377"
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def wipe(bed: Testbed) -> None:
    """No swarm, no agent and no shoal file on any host (how this module starts and ends)."""
    wipe_cluster(bed, "test_ansible")  # leaving ends the nodes' tasks
    for host in HOSTS:
        bed.run(host, ["sh", "-c", "rm -rf /var/lib/shoal/* /etc/shoal/* /opt/shoal/*"])


@pytest.fixture(scope="module")
def play(bed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Runs a playbook (or, with module=..., an ad-hoc module) against the testbed: (rc, output, recap)."""
    wipe(bed)
    # a snapshot of the agent's source: the same code for the whole module, whatever changes in the tree
    source = tmp_path_factory.mktemp("agent") / "agent"
    shutil.copytree(REPO / "agent", source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(bed.ansible_cfg_path),
        ANSIBLE_COLLECTIONS_PATH=str(REPO / "playbooks" / "collections"),
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
    )
    fixed = ["-e", f"agent_source={source}", "-e", f"agent_wheelhouse_dir={REPO / 'build' / 'wheelhouse'}"]

    def run(
        playbook: str | None = None, *args: str, module: str | None = None, host: str = "swarm00", timeout: int = 600
    ) -> tuple[int, str, dict[str, dict[str, int]]]:
        if module is not None:
            argv = [str(ANSIBLE), host, "-m", module, *args]
        else:
            argv = [str(ANSIBLE_PLAYBOOK), str(REPO / "playbooks" / playbook), *fixed, *args]
        started = time.monotonic()
        proc = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        out = proc.stdout + proc.stderr
        recap = {
            m[0]: {"ok": int(m[1]), "changed": int(m[2]), "unreachable": int(m[3]), "failed": int(m[4])}
            for m in RECAP.findall(out)
        }
        what = f"{host} {module} {sorted(json.loads(args[1]))}" if module else f"{playbook} {' '.join(args)}"
        print(f"{what}: rc={proc.returncode} in {time.monotonic() - started:.1f} s")
        return proc.returncode, out, recap

    yield run
    wipe(bed)
    # the testbed's registry CA lives in /etc/shoal/certs.d, which wipe() emptied: give it back, so
    # the modules that run after this one still trust 10.213.0.1:5000
    registry.trust([bed.host(h) for h in HOSTS])


def changed(recap: dict[str, dict[str, int]]) -> int:
    return sum(r["changed"] for r in recap.values())


def spec_versions(bed: Testbed) -> dict[str, Any]:
    return {name: (n["Version"]["Index"], n["Spec"]) for name, n in nodes(bed, "swarm00").items()}


def mesh_get(bed: Testbed, host: str, port: int = 80) -> str:
    """An HTTP GET from the controller namespace to a node's published port (bounded: 3 s)."""
    url = f"http://{bed.host(host).address}:{port}/"
    argv = ["ip", "netns", "exec", CONTROLLER_NS, "curl", "-s", "--max-time", "3", url]
    return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()


def agent_exe(bed: Testbed, host: str) -> str:
    pid = bed.agent_pid(host)
    assert pid, f"no shoald on {host}"
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_check_mode_on_bare_hosts_predicts_changes_and_installs_nothing(bed: Testbed, play) -> None:
    rc, out, recap = play("site.yml", "--check")
    assert rc == 0, out
    assert set(recap) == set(HOSTS) and all(r["changed"] > 0 for r in recap.values()), out
    for host in HOSTS:
        assert bed.agent_pid(host) is None
        assert bed.run(host, ["ls", "-A", "/opt/shoal", "/etc/shoal"]).stdout.split() == ["/etc/shoal:", "/opt/shoal:"]


def test_site_converges_from_bare_hosts_and_a_second_run_changes_nothing(bed: Testbed, play) -> None:
    started = time.monotonic()
    rc, out, recap = play("site.yml")
    took = time.monotonic() - started
    assert rc == 0, out
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in recap.values()) and set(recap) == set(HOSTS)
    listed = nodes(bed, "swarm00")
    assert sorted(listed) == HOSTS
    assert all(n["Status"]["State"] == "ready" for n in listed.values())
    assert [h for h, n in listed.items() if (n.get("ManagerStatus") or {}).get("Leader")] == ["swarm00"]
    assert [h for h, n in listed.items() if n["Spec"]["Role"] == "manager"] == ["swarm00"]
    for host in HOSTS:  # the role's agent, from its own venv, with its config and pidfile
        assert "/opt/shoal/venv/bin/shoald --config /etc/shoal/shoald.yml" in agent_exe(bed, host)
        config = bed.run(host, ["cat", "/etc/shoal/shoald.yml"]).stdout
        assert f'advertise_addr: "{bed.host(host).address}"' in config
    # the inventory's default stack, the seed's nodejs (stack `seed`): converged when site.yml returns, on the
    # workers, answering through the routing mesh on every node
    client = api(bed, "swarm00")
    workers = {n["ID"] for n in listed.values() if n["Spec"]["Role"] == "worker"}
    (nodejs,) = [s for s in client.get("/services") if s["Spec"]["Name"] == "seed_nodejs"]
    assert nodejs["Spec"]["Labels"]["com.docker.stack.namespace"] == "seed"
    tasks = [t for t in client.get("/tasks", filters={"service": ["seed_nodejs"]}) if t["DesiredState"] == "running"]
    assert len(tasks) == nodejs["Spec"]["Mode"]["Replicated"]["Replicas"] == 2
    assert all(t["Status"]["State"] == "running" and t["NodeID"] in workers for t in tasks)
    ips = {t["NetworksAttachments"][0]["Addresses"][0].split("/")[0] for t in tasks}
    for host in HOSTS:
        answer = wait_for(f"nodejs through {host}", lambda h=host: mesh_get(bed, h), timeout=15)
        assert answer in {f"Hello World! from {ip}" for ip in ips}, answer
    # the first run went through the agent role's install tasks; a second, on hosts where all is in
    # place (the probe's one round trip says so), skips them whole
    install = "TASK [shoal.swarm.agent : Write the agent's folders, configuration, registry CAs and systemd unit]"
    assert install in out
    # the workers' joins answered with the ready nodes: no node task for them from the first manager
    section = out.split("TASK [shoal.swarm.cluster : Set each node's role, availability and labels", 1)[1]
    section = section.split("TASK [", 1)[0]
    assert "ok: [" not in section and "changed: [" not in section, section
    for host in HOSTS:
        # the bytecode compiled on the controller (checked-hash .pyc), taken as it is by the running agent: one it
        # refused would have been written again at its start, timestamp-based (flags 0)
        site = bed.run(host, ["sh", "-c", "echo /opt/shoal/venv/lib/python3.*/site-packages"]).stdout.strip()
        pyc = bed.run(host, ["sh", "-c", f"head -c 8 {site}/shoal/__pycache__/daemon.cpython-3*.pyc | od -An -tu4"])
        assert pyc.stdout.split()[1:] == ["3"], pyc
    started = time.monotonic()
    rc, out, recap = play("site.yml")
    again = time.monotonic() - started
    assert rc == 0 and changed(recap) == 0, out
    assert install not in out, "the agent role went through its install tasks on hosts where all was in place"
    # members already as wanted (their agents' view, the first manager's list) cost no join and no node task
    for task in ("Join the workers", "Set each node's role, availability and labels from the first manager"):
        section = out.split(f"TASK [shoal.swarm.cluster : {task}", 1)[1].split("TASK [", 1)[0]
        assert "ok: [" not in section and "changed: [" not in section, section
    # the seed's image, seen in the workers' image stores by the agent role's probe, is not pulled again
    section = out.split("TASK [Pull the seed's image into the node's image store]", 1)[1].split("TASK [", 1)[0]
    assert "ok: [" not in section and "skipping: [swarm01]" in section, section
    print(f"site.yml: bare hosts to a 3-node swarm in {took:.1f} s; second run changed=0 in {again:.1f} s")


def test_swarm_info_works_from_a_worker(bed: Testbed, play) -> None:
    rc, out, _ = play(None, "-a", json.dumps({"tasks": False}), module="shoal.swarm.swarm_info", host="swarm02")
    assert rc == 0, out
    facts = module_result(out)
    assert facts["can_talk_to_agent"] and facts["swarm_active"] and not facts["is_manager"]
    assert sorted(n["Description"]["Hostname"] for n in facts["nodes"]) == HOSTS  # through a manager
    assert facts["node_id"] == nodes(bed, "swarm00")["swarm02"]["ID"]
    assert "SWMTKN" not in out


def test_check_mode_on_the_converged_cluster_predicts_nothing(bed: Testbed, play) -> None:
    before = spec_versions(bed)
    rc, out, recap = play("site.yml", "--check")
    assert rc == 0 and changed(recap) == 0, out
    assert spec_versions(bed) == before


def test_check_and_diff_show_a_label_change_and_change_nothing(bed: Testbed, play) -> None:
    labels = json.dumps({"shoal_node_labels": {"zone": "a", "disk": "ssd"}})
    before = spec_versions(bed)
    rc, out, recap = play("site.yml", "--check", "--diff", "-e", labels)
    assert rc == 0, out
    assert changed(recap) == 3, out  # one label change per node, none applied
    assert re.search(r'^\+\s+"disk": "ssd"', out, re.M) and re.search(r'^\+\s+"zone": "a"', out, re.M), out
    assert spec_versions(bed) == before
    rc, out, recap = play("site.yml", "--diff", "-e", labels)
    assert rc == 0 and changed(recap) == 3, out
    assert all(n["Spec"]["Labels"] == {"zone": "a", "disk": "ssd"} for n in nodes(bed, "swarm00").values())
    rc, out, recap = play("site.yml", "-e", labels)
    assert rc == 0 and changed(recap) == 0, out


def test_bad_arguments_fail_clearly_and_change_nothing(bed: Testbed, play) -> None:
    before = spec_versions(bed)
    token = api(bed, "swarm00").get("/swarm")["JoinTokens"]["Worker"]
    digest = token.split("-")[2]
    foreign = token.replace(digest, ("1" if digest[0] != "1" else "2") + digest[1:])
    cases = [
        ("swarm00", {"hostname": "swarm01", "availability": "sideways"}, "value of availability must be one of"),
        ("swarm00", {"hostname": "swarm01", "role": "king"}, "value of role must be one of: manager, worker"),
        ("swarm01", {"remote_addrs": [MANAGER]}, "parameters are required together: join_token, remote_addrs"),
        ("swarm01", {"join_token": token}, "parameters are required together: join_token, remote_addrs"),
        ("swarm00", {"hostname": "swarm01", "state": "absent", "availability": "drain"}, "state=present only"),
        (
            "swarm00",
            {"hostname": "swarm01", "join_token": token, "remote_addrs": ["10.213.0.10:2377"]},
            "not to swarm01",
        ),
        ("swarm01", {"join_token": foreign, "remote_addrs": [MANAGER]}, "already part of another swarm"),
        ("swarm01", {"hostname": "swarm02", "availability": "drain"}, "only a manager"),
        ("swarm00", {"hostname": "swarm00", "role": "worker"}, "last manager"),
        ("swarm00", {"hostname": "swarm09", "availability": "drain"}, "swarm09 is not part of the swarm"),
    ]
    for host, args, message in cases:
        rc, out, _ = play(None, "-a", json.dumps(args), module="shoal.swarm.swarm_node", host=host)
        assert rc != 0 and message in out, (args, out)
        assert token not in out and foreign not in out  # no_log on the join token
    rc, out, _ = play(None, "-a", json.dumps({"task_history_limit": -3}), module="shoal.swarm.swarm_init")
    assert rc != 0 and "task_history_limit must be 0 or more" in out, out
    rc, out, _ = play(
        None, "-a", json.dumps({"rotate_worker_token": True}), module="shoal.swarm.swarm_init", host="swarm01"
    )
    assert rc != 0 and "is a worker" in out, out
    rc, out, _ = play("drain.yml")
    assert rc != 0 and "give the node to drain: -e node=" in out, out
    assert spec_versions(bed) == before
    assert api(bed, "swarm00").get("/swarm")["JoinTokens"]["Worker"] == token


SLEEPER = {
    "ContainerSpec": {"Image": "shoal/host", "Command": ["sleep", "3600"], "Init": True},
    "RestartPolicy": {"Condition": "any"},
}


def running_on(bed: Testbed, host: str) -> dict[str, list[str]]:
    """Service name -> IDs of its tasks whose process runs on ``host`` (whatever their desired state)."""
    client = api(bed, "swarm00")
    node_id = nodes(bed, "swarm00")[host]["ID"]
    names = {s["ID"]: s["Spec"]["Name"] for s in client.get("/services")}
    out: dict[str, list[str]] = {}
    for task in client.get("/tasks", filters={"node": [node_id]}):
        if task["Status"]["State"] == "running":
            out.setdefault(names.get(task["ServiceID"], "?"), []).append(task["ID"])
    return out


def test_drain_waits_until_replicated_tasks_left_then_activate_both_idempotent(bed: Testbed, play) -> None:
    client = api(bed, "swarm00")
    client.post("/services/create", {"Name": "web", "TaskTemplate": SLEEPER, "Mode": {"Replicated": {"Replicas": 3}}})
    client.post("/services/create", {"Name": "everywhere", "TaskTemplate": SLEEPER, "Mode": {"Global": {}}})
    wait_for(
        "web on swarm01",
        lambda: len(running_on(bed, "swarm01").get("web", [])) >= 1,
        timeout=30,
    )
    rc, out, recap = play("drain.yml", "-e", "node=swarm01")
    assert rc == 0 and changed(recap) == 1, out
    assert nodes(bed, "swarm00")["swarm01"]["Spec"]["Availability"] == "drain"
    assert "web" not in running_on(bed, "swarm01")  # at once: the play waited for it
    rc, out, recap = play("drain.yml", "-e", "node=swarm01")
    assert rc == 0 and changed(recap) == 0, out
    rc, out, recap = play("activate.yml", "-e", "node=swarm01")
    assert rc == 0 and changed(recap) == 1, out
    assert nodes(bed, "swarm00")["swarm01"]["Spec"]["Availability"] == "active"
    rc, out, recap = play("activate.yml", "-e", "node=swarm01")
    assert rc == 0 and changed(recap) == 0, out
    ids = {s["ID"] for s in client.get("/services") if s["Spec"]["Name"] in ("web", "everywhere")}
    for name in ("web", "everywhere"):
        client.delete(f"/services/{name}")
    wait_for(
        "no tasks of web and everywhere",
        lambda: not [t for t in client.get("/tasks") if t["ServiceID"] in ids],
        timeout=30,
    )


def test_promote_then_demote_wait_and_are_idempotent(bed: Testbed, play) -> None:
    rc, out, recap = play("promote.yml", "-e", "node=swarm01")
    assert rc == 0 and changed(recap) == 1, out
    swarm01 = nodes(bed, "swarm00")["swarm01"]
    assert swarm01["Spec"]["Role"] == "manager" and swarm01["ManagerStatus"]["Reachability"] == "reachable"
    assert api(bed, "swarm01").get("/info")["Swarm"]["ControlAvailable"] is True
    rc, out, recap = play("promote.yml", "-e", "node=swarm01")
    assert rc == 0 and changed(recap) == 0, out
    rc, out, recap = play("demote.yml", "-e", "node=swarm01")
    assert rc == 0 and changed(recap) == 1, out
    assert "ManagerStatus" not in nodes(bed, "swarm00")["swarm01"]
    rc, out, recap = play("demote.yml", "-e", "node=swarm01")
    assert rc == 0 and changed(recap) == 0, out
    rc, out, recap = play("site.yml")  # the inventory's roles again: nothing to do
    assert rc == 0 and changed(recap) == 0, out


def test_reset_leaves_stops_and_wipes_then_changes_nothing(bed: Testbed, play) -> None:
    rc, out, recap = play("reset.yml")
    assert rc == 0 and all(r["changed"] > 0 for r in recap.values()), out
    for host in HOSTS:
        assert bed.agent_pid(host) is None
        assert bed.run(host, ["ls", "-A", "/var/lib/shoal"]).stdout.strip() == ""
        assert bed.run(host, ["test", "-x", "/opt/shoal/venv/bin/shoald"]).returncode == 0  # installation kept
    rc, out, recap = play("reset.yml")
    assert rc == 0 and changed(recap) == 0, out
    rc, out, recap = play("site.yml")  # and back: a new swarm on the kept installation
    assert rc == 0, out
    assert sorted(nodes(bed, "swarm00")) == HOSTS


def test_site_forms_a_three_manager_swarm_from_the_inventory(bed: Testbed, play) -> None:
    rc, out, _ = play("reset.yml")
    assert rc == 0, out
    bed.up(3, managers=3)  # the same hosts; the inventory now lists all three as managers
    try:
        rc, out, recap = play("site.yml")
        assert rc == 0, out
        listed = nodes(bed, "swarm01")
        assert all((n.get("ManagerStatus") or {}).get("Reachability") == "reachable" for n in listed.values())
        assert sum(1 for n in listed.values() if n["ManagerStatus"]["Leader"]) == 1
        rc, out, recap = play("site.yml")
        assert rc == 0 and changed(recap) == 0, out
    finally:
        bed.up(3, managers=1)
