"""The seed tour's commands with Debian's docker CLI (20.10, API 1.41) against a shoal manager's socket:
each output checked, not only the exit code."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from compat.clients import DOCKER, MANAGER, SOCKET, Transcript, docker_cli, ok, wait_nodes_ready, wait_running
from integration.cluster_helpers import HOSTS, api, wait_for
from testbed import registry
from testbed.bed import Testbed

TOKEN = r"SWMTKN-1-[0-9a-z]+-[0-9a-z]+"
LOG_LINE = re.compile(r"^web\.([123])\.([0-9a-z]{12})@(swarm0[0-2])\s+\| hello: listening on :8080$")


def ids(bed: Testbed) -> dict[str, str]:
    return {n["Description"]["Hostname"]: n["ID"] for n in api(bed, "swarm00").get("/nodes")}


def table(text: str) -> list[list[str]]:
    """Rows of a docker table (columns split on 2+ spaces), header first."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]


def node_table(bed: Testbed, host: str = "swarm00") -> dict[str, list[str]]:
    """`docker node ls` rows by hostname: [ID, HOSTNAME, STATUS, AVAILABILITY, MANAGER STATUS?]."""
    rows = table(ok(docker_cli(bed, host, "node", "ls")))
    assert rows[0] == ["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS", "ENGINE VERSION"]
    return {r[1]: r for r in rows[1:]}


def failed(res: subprocess.CompletedProcess[str], message: str) -> None:
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    assert f"Error response from daemon: {message}" in res.stderr, res.stderr


def test_swarm_init_join_token_join(bed: Testbed, clean: Transcript) -> None:
    node_ids = ids(bed)
    assert f"Swarm initialized: current node ({node_ids['swarm00']}) is now a manager." in clean.init
    worker = re.search(rf"docker swarm join --token ({TOKEN}) {re.escape(MANAGER)}", clean.join_token_worker)
    manager = re.search(rf"docker swarm join --token ({TOKEN}) {re.escape(MANAGER)}", clean.join_token_manager)
    assert worker and manager
    assert worker[1] == clean.worker_token != manager[1]
    assert f"docker swarm join --token {clean.worker_token} {MANAGER}" in clean.init
    assert "To add a worker to this swarm, run the following command:" in clean.join_token_worker
    assert "To add a manager to this swarm, run the following command:" in clean.join_token_manager
    assert clean.joins == {h: "This node joined a swarm as a worker.\n" for h in HOSTS[1:]}
    swarm = api(bed, "swarm00").get("/swarm")
    assert swarm["JoinTokens"] == {"Worker": worker[1], "Manager": manager[1]}


def test_node_ls_inspect_ps(bed: Testbed, clean: Transcript) -> None:
    node_ids = ids(bed)
    rows = node_table(bed)
    assert sorted(rows) == HOSTS
    assert rows["swarm00"] == [f"{node_ids['swarm00']} *", "swarm00", "Ready", "Active", "Leader", "0.1.0"]
    for host in ("swarm01", "swarm02"):
        assert rows[host] == [node_ids[host], host, "Ready", "Active", "0.1.0"]
    inspected = json.loads(ok(docker_cli(bed, "swarm00", "node", "inspect", "self")))
    assert [n["ID"] for n in inspected] == [node_ids["swarm00"]]
    assert inspected[0]["ManagerStatus"]["Leader"] is True
    assert inspected[0]["Spec"] == {"Labels": {}, "Role": "manager", "Availability": "active"}
    pretty = ok(docker_cli(bed, "swarm00", "node", "inspect", "--pretty", "swarm01"))
    assert re.search(rf"^ID:\s+{node_ids['swarm01']}$", pretty, re.M)
    assert re.search(r"^Hostname:\s+swarm01$", pretty, re.M)
    assert re.search(r"^ State:\s+Ready$", pretty, re.M)
    assert re.search(r"^ Address:\s+10\.213\.0\.11$", pretty, re.M)
    ps = table(ok(docker_cli(bed, "swarm00", "node", "ps", "swarm01")))
    assert ps == [["ID", "NAME", "IMAGE", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR", "PORTS"]]


def test_node_update_labels_and_availability(bed: Testbed, clean: Transcript) -> None:
    assert ok(docker_cli(bed, "swarm00", "node", "update", "--label-add", "zone=a", "swarm01")) == "swarm01\n"
    assert api(bed, "swarm00").get("/nodes/swarm01")["Spec"]["Labels"] == {"zone": "a"}
    ok(docker_cli(bed, "swarm00", "node", "update", "--availability", "drain", "swarm01"))
    assert node_table(bed)["swarm01"][3] == "Drain"
    ok(docker_cli(bed, "swarm00", "node", "update", "--availability", "active", "--label-rm", "zone", "swarm01"))
    assert api(bed, "swarm00").get("/nodes/swarm01")["Spec"] == {
        "Labels": {},
        "Role": "worker",
        "Availability": "active",
    }
    res = docker_cli(bed, "swarm00", "node", "update", "--label-add", "a=b", "nosuchnode")
    assert (res.returncode, res.stderr) == (1, "Error: No such node: nosuchnode\n")  # a 404, as the CLI words it


def test_node_promote_demote(bed: Testbed, clean: Transcript) -> None:
    assert (
        ok(docker_cli(bed, "swarm00", "node", "promote", "swarm01"))
        == "Node swarm01 promoted to a manager in the swarm.\n"
    )
    wait_for("swarm01 reachable", lambda: node_table(bed)["swarm01"][4] == "Reachable", timeout=60, interval=0.5)
    # a second manager answers the docker CLI too, and marks itself
    assert node_table(bed, "swarm01")["swarm01"][0].endswith(" *")
    assert ok(docker_cli(bed, "swarm00", "node", "demote", "swarm01")) == "Manager swarm01 demoted in the swarm.\n"
    wait_for("swarm01 a worker", lambda: len(node_table(bed)["swarm01"]) == 5, timeout=60, interval=0.5)
    failed(
        docker_cli(bed, "swarm00", "node", "demote", "swarm00"), "attempting to demote the last manager of the swarm"
    )


def test_network_create_ls_inspect_rm(bed: Testbed, clean: Transcript) -> None:
    created = ok(
        docker_cli(
            bed,
            "swarm00",
            "network",
            "create",
            "--driver",
            "overlay",
            "--attachable",
            "--subnet",
            "10.30.0.0/24",
            "--label",
            "tier=back",
            "backend",
        )
    ).strip()
    rows = {r[1]: r for r in table(ok(docker_cli(bed, "swarm00", "network", "ls")))[1:]}
    assert rows["backend"] == [created[:12], "backend", "overlay", "swarm"]
    assert rows["ingress"][2:] == ["overlay", "swarm"]
    [net] = json.loads(ok(docker_cli(bed, "swarm00", "network", "inspect", "backend")))
    assert (net["Id"], net["Driver"], net["Scope"], net["Attachable"]) == (created, "overlay", "swarm", True)
    assert net["IPAM"]["Config"] == [{"Subnet": "10.30.0.0/24", "Gateway": "10.30.0.1"}]
    assert net["Labels"] == {"tier": "back"}
    failed(
        docker_cli(bed, "swarm00", "network", "create", "-d", "overlay", "--opt", "encrypted", "secure"),
        "encrypted overlay networks need IPsec ESP with AES-GCM",  # this machine's kernel has no ESP
    )
    assert ok(docker_cli(bed, "swarm00", "network", "rm", "backend")) == "backend\n"
    names = [r[1] for r in table(ok(docker_cli(bed, "swarm00", "network", "ls")))[1:]]
    assert "backend" not in names and "secure" not in names


def test_service_create_ls_ps_inspect_scale_update_rollback_logs_rm(bed: Testbed, clean: Transcript) -> None:
    out = ok(
        docker_cli(
            bed,
            "swarm00",
            "service",
            "create",
            "--name",
            "web",
            "--replicas",
            "2",
            "--publish",
            "8080:8080",
            "shoal/hello",
        )
    )
    assert out.splitlines()[0] == api(bed, "swarm00").get("/services/web")["ID"]
    assert "verify: Service converged" in out
    wait_running(bed, "web", 2)
    rows = table(ok(docker_cli(bed, "swarm00", "service", "ls")))
    assert rows[0] == ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]
    assert rows[1][1:] == ["web", "replicated", "2/2", "shoal/hello:latest", "*:8080->8080/tcp"]
    ps = table(ok(docker_cli(bed, "swarm00", "service", "ps", "web")))
    assert sorted(r[1] for r in ps[1:]) == ["web.1", "web.2"]
    assert all(r[4] == "Running" and r[5].startswith("Running") for r in ps[1:])
    pretty = ok(docker_cli(bed, "swarm00", "service", "inspect", "--pretty", "web"))
    for pattern in (
        r"^Name:\s+web$",
        r"^ Replicas:\s+2$",
        r"^ Image:\s+shoal/hello:latest$",
        r"^ PublishedPort = 8080$",
        r"^Endpoint Mode:\s+vip$",
    ):
        assert re.search(pattern, pretty, re.M), pattern

    out = ok(docker_cli(bed, "swarm00", "service", "scale", "web=3"))
    assert out.startswith("web scaled to 3\n") and "verify: Service converged" in out
    wait_running(bed, "web", 3)
    assert table(ok(docker_cli(bed, "swarm00", "service", "ls")))[1][3] == "3/3"

    out = ok(docker_cli(bed, "swarm00", "service", "update", "--env-add", "GREETING=hi", "web"))
    assert out.startswith("web\n") and "verify: Service converged" in out
    spec = api(bed, "swarm00").get("/services/web")["Spec"]
    assert spec["TaskTemplate"]["ContainerSpec"]["Env"] == ["GREETING=hi"]
    assert spec["TaskTemplate"]["Runtime"] == "container"

    out = ok(docker_cli(bed, "swarm00", "service", "rollback", "web"))
    assert "rollback: manually requested rollback" in out and "verify: Service converged" in out
    assert api(bed, "swarm00").get("/services/web")["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"] == []
    live = wait_running(bed, "web", 3)

    logs = ok(docker_cli(bed, "swarm00", "service", "logs", "web")).splitlines()
    matches = [LOG_LINE.match(line) for line in logs]
    assert logs and all(matches), logs
    hosts = {
        t["NodeID"]: n["Description"]["Hostname"]
        for n in api(bed, "swarm00").get("/nodes")
        for t in live
        if t["NodeID"] == n["ID"]
    }
    running = {(str(t["Slot"]), t["ID"][:12], hosts[t["NodeID"]]) for t in live}
    assert running <= {m.groups() for m in matches if m}  # every live task's line, named as docker names it
    raw = ok(docker_cli(bed, "swarm00", "service", "logs", "--raw", "web")).splitlines()
    assert raw and set(raw) == {"hello: listening on :8080"}

    assert ok(docker_cli(bed, "swarm00", "service", "rm", "web")) == "web\n"
    assert table(ok(docker_cli(bed, "swarm00", "service", "ls"))) == [
        ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]
    ]


def test_swarm_leave_node_rm_and_join_again(bed: Testbed, clean: Transcript) -> None:
    assert ok(docker_cli(bed, "swarm02", "swarm", "leave")) == "Node left the swarm.\n"
    wait_for("swarm02 down", lambda: node_table(bed)["swarm02"][2] == "Down", timeout=60, interval=0.5)
    assert ok(docker_cli(bed, "swarm00", "node", "rm", "swarm02")) == "swarm02\n"
    assert sorted(node_table(bed)) == ["swarm00", "swarm01"]
    joined = ok(docker_cli(bed, "swarm02", "swarm", "join", "--token", clean.worker_token, MANAGER))
    assert joined == "This node joined a swarm as a worker.\n"
    wait_nodes_ready(bed, HOSTS)
    # a manager does not leave without --force, as in Docker
    res = docker_cli(bed, "swarm00", "swarm", "leave")
    assert res.returncode == 1 and "use --force" in res.stderr


def test_settings_shoal_does_not_act_on_are_refused_and_the_rest_round_trips(bed: Testbed, clean: Transcript) -> None:
    # `docker swarm update` sends back the whole spec it read: a plain change works
    assert ok(docker_cli(bed, "swarm00", "swarm", "update", "--task-history-limit", "4")) == "Swarm updated.\n"
    assert api(bed, "swarm00").get("/swarm")["Spec"]["Orchestration"]["TaskHistoryRetentionLimit"] == 4
    ok(docker_cli(bed, "swarm00", "swarm", "update", "--task-history-limit", "5"))
    version = api(bed, "swarm00").get("/swarm")["Version"]["Index"]
    failed(
        docker_cli(bed, "swarm00", "swarm", "update", "--snapshot-interval", "5000"),
        "Raft.SnapshotInterval 5000 is not supported yet by shoal (in effect: 10000)",
    )
    failed(
        docker_cli(bed, "swarm00", "swarm", "update", "--external-ca", "protocol=cfssl,url=https://ca.example/sign"),
        "CAConfig.ExternalCAs",
    )
    assert api(bed, "swarm00").get("/swarm")["Version"]["Index"] == version  # nothing was written
    # settings that take effect now: certificate expiry, and autolock (its key printed as docker prints it)
    assert ok(docker_cli(bed, "swarm00", "swarm", "update", "--cert-expiry", "48h")) == "Swarm updated.\n"
    assert api(bed, "swarm00").get("/swarm")["Spec"]["CAConfig"]["NodeCertExpiry"] == 48 * 3600 * 10**9
    locked = ok(docker_cli(bed, "swarm00", "swarm", "update", "--autolock=true"))
    key = ok(docker_cli(bed, "swarm00", "swarm", "unlock-key", "-q")).strip()
    assert key.startswith("SWMKEY-1-") and key in locked, locked
    ok(docker_cli(bed, "swarm00", "swarm", "update", "--autolock=false"))
    assert api(bed, "swarm00").get("/swarm/unlockkey") == {"UnlockKey": ""}
    failed(
        docker_cli(bed, "swarm00", "service", "create", "--name", "x", "--log-driver", "syslog", "shoal/hello"),
        "TaskTemplate.LogDriver is not supported by shoal",
    )
    # network aliases are honoured now (answered by the embedded DNS); ingress still refuses them as Docker does
    failed(
        docker_cli(
            bed, "swarm00", "service", "create", "--name", "x", "--network", "name=ingress,alias=db", "shoal/hello"
        ),
        "service cannot be explicitly attached to the ingress network 'ingress'",
    )
    assert [s for s in api(bed, "swarm00").get("/services") if s["Spec"]["Name"] == "x"] == []


def test_service_create_with_registry_auth_pins_the_digest_and_hides_the_password(
    bed: Testbed, clean: Transcript, tmp_path: Path
) -> None:
    """`docker service create --with-registry-auth`: the docker CLI asks shoal's
    `/distribution/{name}/json` with the config's credentials (the registry wants them: without
    them there is no digest to pin) and sends them with the create; no answer shows them."""
    registry.write_docker_config(tmp_path)
    image = registry.ref(registry.HELLO)
    argv = ["env", f"DOCKER_CONFIG={tmp_path}", str(DOCKER), "-H", SOCKET, "service", "create", "--detach"]
    res = bed.run("swarm00", [*argv, "--name", "private", "--with-registry-auth", image], timeout=120)
    assert res.returncode == 0, res.stderr
    assert "could not be accessed on a registry" not in res.stderr
    digest = registry.manifest_digest("testbed/hello", "1")
    spec = api(bed, "swarm00").get("/services/private")["Spec"]
    assert spec["TaskTemplate"]["ContainerSpec"]["Image"] == f"{image}@{digest}"
    shown = ok(docker_cli(bed, "swarm00", "service", "inspect", "private"))
    shown += ok(docker_cli(bed, "swarm00", "service", "ps", "--no-trunc", "private"))
    assert registry.password() not in shown and "PullOptions" not in shown
    # without the flag the CLI asks anonymously: the registry refuses, docker warns, nothing is pinned
    res = bed.run("swarm00", [*argv, "--name", "anon", image], timeout=120)
    assert res.returncode == 0, res.stderr
    assert f"image {image} could not be accessed on a registry to record" in res.stderr
    assert api(bed, "swarm00").get("/services/anon")["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] == image
