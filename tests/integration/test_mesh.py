"""The dataplane through the agents (seed §3, §4, §5, §7, §8): overlays, the routing mesh, VIPs, DNS.

Clients: the controller namespace (`shoal-ctl`, on the underlay only) and tasks themselves (`shoal exec`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from integration.cluster_helpers import HOSTS, api, cli, curl, form_cluster, wait_for, wipe_cluster
from testbed.bed import Testbed
from testbed.layout import CONTROLLER_NS

HELLO = {"ContainerSpec": {"Image": "shoal/hello"}, "RestartPolicy": {"Condition": "any", "Delay": 0}}


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=1)
    yield bed
    wipe_cluster(bed, "test_mesh")


def running_tasks(bed: Testbed, service: str) -> list[dict]:
    return [
        t
        for t in api(bed, "swarm00").get("/tasks", filters={"service": [service]})
        if t["DesiredState"] == "running" and t["Status"]["State"] == "running"
    ]


def in_task(bed: Testbed, service: str, argv: list[str]) -> tuple[int, str]:
    task = running_tasks(bed, service)[0]
    host = {n["ID"]: n["Description"]["Hostname"] for n in api(bed, "swarm00").get("/nodes")}[task["NodeID"]]
    rc, out, err = cli(bed, host, "exec", task["ID"][:12], *argv)
    return rc, out + err


def host_tools_in_task(bed: Testbed, service: str, argv: list[str]) -> tuple[int, str]:
    """The host's tools (curl, getent: shoal/hello's busybox has neither) in a task's network
    namespace, with the task's resolv.conf over /etc/resolv.conf (in the private mount namespace
    `ip netns exec` makes), so that they see what the task sees."""
    task = running_tasks(bed, service)[0]
    host = {n["ID"]: n["Description"]["Hostname"] for n in api(bed, "swarm00").get("/nodes")}[task["NodeID"]]
    resolv = f"/var/lib/shoal/tasks/{task['ID']}/resolv.conf"
    script = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
    res = bed.run(host, ["ip", "netns", "exec", f"task-{task['ID'][:12]}", "sh", "-c", script, resolv, *argv])
    return res.returncode, res.stdout + res.stderr


def test_published_service_answers_through_every_node(cluster: Testbed) -> None:
    api(cluster, "swarm00").post(
        "/services/create",
        {
            "Name": "nodejs",
            "TaskTemplate": {**HELLO, "Placement": {"Constraints": ["node.role==worker"]}},
            "Mode": {"Replicated": {"Replicas": 1}},
            "EndpointSpec": {"Ports": [{"TargetPort": 8080, "PublishedPort": 80}]},
        },
    )
    wait_for("nodejs running", lambda: len(running_tasks(cluster, "nodejs")) == 1, timeout=20)
    task_ip = running_tasks(cluster, "nodejs")[0]["NetworksAttachments"][0]["Addresses"][0].split("/")[0]
    for host in HOSTS:  # also swarm00, which runs no task of it
        answer = wait_for(f"an answer through {host}", lambda h=host: curl(cluster, h, 80), timeout=15)
        assert answer == f"Hello World! from {task_ip}"


def test_scaled_service_answers_round_robin(cluster: Testbed) -> None:
    spec = api(cluster, "swarm00").get("/services/nodejs")
    body = dict(spec["Spec"], Mode={"Replicated": {"Replicas": 2}})
    api(cluster, "swarm00").post("/services/nodejs/update", body, version=spec["Version"]["Index"])
    wait_for("2 running", lambda: len(running_tasks(cluster, "nodejs")) == 2, timeout=20)
    ips = {t["NetworksAttachments"][0]["Addresses"][0].split("/")[0] for t in running_tasks(cluster, "nodejs")}
    seen = wait_for(
        "both backends answer",
        lambda: (
            (s := {curl(cluster, "swarm00", 80) for _ in range(8)}) >= {f"Hello World! from {ip}" for ip in ips} and s
        ),
        timeout=20,
    )
    assert len(seen) == 2


def ctl_get(url: str) -> str:
    res = subprocess.run(
        ["ip", "netns", "exec", CONTROLLER_NS, "curl", "-s", "--max-time", "3", url],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return res.stdout.strip()


def test_external_haproxy_keeps_serving_when_a_task_moves(cluster: Testbed) -> None:
    """Seed §9: a real HAProxy (Debian's) in the client namespace, configured by `shoal lb haproxy`."""
    rc, config, err = cli(cluster, "swarm00", "lb", "haproxy", "--port", "8088", "--service", "nodejs")
    assert rc == 0, err
    for host in HOSTS:
        assert f"{cluster.host(host).address}:80 check" in config
    path = cluster.state_dir / "haproxy.cfg"
    path.write_text(config)
    proc = subprocess.Popen(
        ["ip", "netns", "exec", CONTROLLER_NS, "haproxy", "-db", "-f", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert wait_for("haproxy answers", lambda: ctl_get("http://127.0.0.1:8088/"), timeout=15).startswith(
            "Hello World! from 10.255.0."
        )
        names = {n["ID"]: n["Description"]["Hostname"] for n in api(cluster, "swarm00").get("/nodes")}
        moving = names[running_tasks(cluster, "nodejs")[0]["NodeID"]]
        rc, _, err = cli(cluster, "swarm00", "node", "update", "--availability", "drain", moving)
        assert rc == 0, err
        answered = sum(1 for _ in range(20) if ctl_get("http://127.0.0.1:8088/").startswith("Hello World!"))
        wait_for(
            "tasks moved off the drained node",
            lambda: all(names[t["NodeID"]] != moving for t in running_tasks(cluster, "nodejs")),
            timeout=20,
        )
        after = [ctl_get("http://127.0.0.1:8088/") for _ in range(10)]
        print(
            f"haproxy while a task moved: {answered}/20 answered, then {sum(a.startswith('Hello') for a in after)}/10"
        )
        assert all(a.startswith("Hello World!") for a in after)
        assert answered >= 15  # the mesh keeps answering on every node while the task is replaced
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if moving:
            cli(cluster, "swarm00", "node", "update", "--availability", "active", moving)


def test_internal_network_vip_and_dns(cluster: Testbed) -> None:
    api(cluster, "swarm00").post(
        "/networks/create",
        {
            "Name": "internal",
            "Driver": "overlay",
            "Attachable": True,
            "IPAM": {"Config": [{"Subnet": "172.30.0.0/24"}]},
        },
    )
    api(cluster, "swarm00").post(
        "/services/create",
        {
            "Name": "backend",
            "TaskTemplate": {**HELLO, "Networks": [{"Target": "internal"}]},
            "Mode": {"Replicated": {"Replicas": 2}},
        },
    )
    api(cluster, "swarm00").post(
        "/services/create",
        {
            "Name": "client",
            "TaskTemplate": {
                "ContainerSpec": {"Image": "shoal/host", "Command": ["sleep", "3600"], "Init": True},
                "Networks": [{"Target": "internal"}],
            },
        },
    )
    wait_for(
        "backend and client running",
        lambda: len(running_tasks(cluster, "backend")) == 2 and len(running_tasks(cluster, "client")) == 1,
        timeout=30,
    )
    vip = next(v["Addr"] for v in api(cluster, "swarm00").get("/services/backend")["Endpoint"]["VirtualIPs"])
    vip = vip.split("/")[0]
    backend_ips = sorted(
        t["NetworksAttachments"][0]["Addresses"][0].split("/")[0] for t in running_tasks(cluster, "backend")
    )
    rc, out = in_task(cluster, "client", ["cat", "/etc/resolv.conf"])
    assert rc == 0 and "nameserver 127.0.0.11" in out
    rc, out = wait_for(
        "DNS answers the VIP",
        lambda: (r := in_task(cluster, "client", ["getent", "hosts", "backend"]))[0] == 0 and r,
        timeout=15,
    )
    assert out.split()[0] == vip
    rc, out = in_task(cluster, "client", ["getent", "ahostsv4", "tasks.backend"])
    assert sorted({line.split()[0] for line in out.splitlines()}) == backend_ips
    answers = set()
    for _ in range(8):
        rc, out = in_task(cluster, "client", ["curl", "-s", "--max-time", "3", f"http://{vip}:8080/"])
        answers.add(out.strip())
    assert answers == {f"Hello World! from {ip}" for ip in backend_ips}
    # by name, through DNS and the VIP
    rc, out = in_task(cluster, "client", ["curl", "-s", "--max-time", "3", "http://backend:8080/"])
    assert out.strip().startswith("Hello World! from 172.30.0.")
    # a task not on `internal` cannot reach it, nor resolve its names (while the tools work there:
    # it reaches itself, and its resolver is the embedded DNS)
    rc, out = host_tools_in_task(cluster, "nodejs", ["curl", "-s", "--max-time", "2", "http://127.0.0.1:8080/"])
    assert rc == 0 and out.startswith("Hello World! from "), out
    rc, out = host_tools_in_task(cluster, "nodejs", ["cat", "/etc/resolv.conf"])
    assert rc == 0 and "nameserver 127.0.0.11" in out, out
    rc, out = host_tools_in_task(cluster, "nodejs", ["curl", "-s", "--max-time", "2", f"http://{backend_ips[0]}:8080/"])
    assert rc != 0 and "Hello World" not in out
    rc, out = host_tools_in_task(cluster, "nodejs", ["getent", "hosts", "backend"])
    assert rc != 0
    # unknown names: no upstream resolver in tests, so an immediate failure
    rc, out = in_task(cluster, "client", ["getent", "hosts", "example.invalid"])
    assert rc != 0


def test_publish_add_and_rm_expose_and_hide(cluster: Testbed) -> None:
    rc, _, err = cli(cluster, "swarm00", "service", "update", "--detach", "--publish-add", "8081:8080", "backend")
    assert rc == 0, err
    answer = wait_for("backend through the mesh", lambda: curl(cluster, "swarm01", 8081), timeout=30)
    assert answer.startswith("Hello World! from 10.255.0.")
    rc, _, err = cli(cluster, "swarm00", "service", "update", "--detach", "--publish-rm", "8080", "backend")
    assert rc == 0, err
    wait_for("backend hidden again", lambda: curl(cluster, "swarm01", 8081) == "", timeout=30)


def test_host_mode_publishes_only_where_the_task_runs(cluster: Testbed) -> None:
    api(cluster, "swarm00").post(
        "/services/create",
        {
            "Name": "hostmode",
            "TaskTemplate": {**HELLO, "Placement": {"Constraints": ["node.hostname==swarm01"]}},
            "EndpointSpec": {"Ports": [{"TargetPort": 8080, "PublishedPort": 8090, "PublishMode": "host"}]},
        },
    )
    wait_for("hostmode running", lambda: len(running_tasks(cluster, "hostmode")) == 1, timeout=20)
    answer = wait_for("an answer on swarm01:8090", lambda: curl(cluster, "swarm01", 8090), timeout=15)
    assert answer.startswith("Hello World! from ")
    assert curl(cluster, "swarm02", 8090) == "" and curl(cluster, "swarm00", 8090) == ""


def test_removing_everything_leaves_no_network_state(cluster: Testbed) -> None:
    for name in ("client", "backend", "nodejs", "hostmode"):
        api(cluster, "swarm00").delete(f"/services/{name}")
    wait_for("no tasks left", lambda: not api(cluster, "swarm00").get("/tasks"), timeout=30)
    api(cluster, "swarm00").delete("/networks/internal")

    left: dict[str, str] = {}

    def clean() -> bool:
        for host in HOSTS:
            listing = cluster.run(host, ["ip", "netns", "list"]).stdout
            left[host] = listing
            if "1-" in listing or "task-" in listing:
                return False
        return True

    try:
        wait_for("no overlay or task namespaces on any node", clean, timeout=30)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {left}") from None
    for host in HOSTS:
        tables = cluster.run(host, ["nft", "list", "tables"]).stdout
        assert "shoal_lb" not in tables
