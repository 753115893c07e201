"""Mounts, volumes and container options on the testbed: a real cluster, real containers (runc
under conmon), tasks pinned to swarm01. A volume keeps its data across a forced task replacement;
`volume rm` of a volume in use is a 409; a read-only bind is not writable; a tmpfs is a tmpfs;
--dns/--host/--sysctl/--ulimit reach the task; a missing bind source rejects the task with
Docker's message; a mount into /proc is a 400 and creates nothing."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from integration.cluster_helpers import api, cli, form_cluster, wait_for, wipe_cluster
from shoal.cli.errors import APIError
from testbed.bed import Testbed

NODE = "swarm01"
RT = ["python", "-m", "shoal.runtime", "--driver", "oci"]
PIN = {"Constraints": [f"node.hostname=={NODE}"]}


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=1)
    yield bed
    wipe_cluster(bed, "test_mounts")


def template(command: str, **container: Any) -> dict[str, Any]:
    return {
        "ContainerSpec": {"Image": "shoal/host", "Command": ["sh", "-c", command], "Init": True, **container},
        "RestartPolicy": {"Condition": "none"},
        "Placement": PIN,
    }


def live_task(bed: Testbed, service: str, not_id: str = "") -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        tasks = api(bed, "swarm00").get("/tasks", filters={"service": [service], "desired-state": ["running"]})
        return next((t for t in tasks if t["Status"]["State"] == "running" and t["ID"] != not_id), None)

    return wait_for(f"a running task of {service}", probe, timeout=30)


def in_task(bed: Testbed, task_id: str, script: str) -> str:
    res = bed.run(NODE, [*RT, "exec", task_id, "--", "sh", "-c", script], timeout=30)
    return res.stdout + res.stderr


def remove_service(bed: Testbed, name: str) -> None:
    service_id = api(bed, "swarm00").get(f"/services/{name}")["ID"]
    api(bed, "swarm00").delete(f"/services/{name}")
    wait_for(
        f"{name}'s tasks gone from {NODE}",
        lambda: not [t for t in api(bed, NODE).get("/shoal/local/tasks") if t["ServiceID"] == service_id],
        timeout=30,
    )


def test_volume_survives_task_replacement_and_rm_in_use_is_409(cluster: Testbed) -> None:
    volumes_dir = cluster.host(NODE).state_dir / "var" / "volumes"
    mount = {"Type": "volume", "Source": "appdata", "Target": "/data"}
    body = {
        "Name": "stateful",
        "TaskTemplate": template("echo run-$(hostname) >> /data/log; exec sleep 3600", Mounts=[mount]),
        "Mode": {"Replicated": {"Replicas": 1}},
    }
    service_id = api(cluster, "swarm00").post("/services/create", body)["ID"]
    first = live_task(cluster, "stateful")
    log = volumes_dir / "appdata" / "_data" / "log"
    wait_for("the first task's write", lambda: log.exists() and log.read_text().count("\n") == 1)
    # in use: Docker's 409, and the volume stays
    with pytest.raises(APIError) as e:
        api(cluster, NODE).delete("/volumes/appdata")
    assert e.value.status == 409 and "remove appdata: volume is in use - [" in e.value.message
    rc, out, err = cli(cluster, NODE, "volume", "rm", "appdata")
    assert rc == 1 and "volume is in use" in err
    assert api(cluster, NODE).get("/volumes/appdata")["Mountpoint"] == "/var/lib/shoal/volumes/appdata/_data"

    spec = api(cluster, "swarm00").get(f"/services/{service_id}")
    new_spec = {**spec["Spec"]}
    new_spec["TaskTemplate"] = {**new_spec["TaskTemplate"], "ForceUpdate": 1}
    api(cluster, "swarm00").post(f"/services/{service_id}/update", new_spec, version=spec["Version"]["Index"])
    second = live_task(cluster, "stateful", not_id=first["ID"])
    wait_for("the second task's write", lambda: log.read_text().count("\n") == 2)
    assert in_task(cluster, second["ID"], "cat /data/log") == log.read_text()  # what the first task wrote, too
    rc, out, err = cli(cluster, NODE, "volume", "ls")
    assert rc == 0 and "local" in out and "appdata" in out, err

    remove_service(cluster, "stateful")
    rc, out, err = cli(cluster, NODE, "volume", "rm", "appdata")
    assert rc == 0 and out.strip() == "appdata", err
    assert not (volumes_dir / "appdata").exists()


def test_bind_readonly_tmpfs_dns_hosts_sysctl_ulimit(cluster: Testbed) -> None:
    cluster.run(NODE, ["sh", "-c", "mkdir -p /var/lib/shoal/bindsrc && echo from-node > /var/lib/shoal/bindsrc/f"])
    rc, _out, err = cli(
        cluster, "swarm00", "service", "create", "--name", "opts", "--detach", "--init",
        "--constraint", f"node.hostname=={NODE}",
        "--mount", "type=bind,src=/var/lib/shoal/bindsrc,dst=/ro,readonly",
        "--mount", "type=tmpfs,dst=/scratch,tmpfs-size=1m",
        "--dns", "192.0.2.53", "--dns-search", "example.org", "--dns-option", "timeout:2",
        "--host", "db:10.1.2.3", "--sysctl", "net.core.somaxconn=321", "--ulimit", "nofile=512:1024",
        "shoal/host", "sleep", "3600",
    )  # fmt: skip
    assert rc == 0, err
    task_id = live_task(cluster, "opts")["ID"]
    assert in_task(cluster, task_id, "cat /ro/f") == "from-node\n"
    assert "rc=0" not in in_task(cluster, task_id, "touch /ro/x 2>/dev/null; echo rc=$?")
    assert not (cluster.host(NODE).state_dir / "var" / "bindsrc" / "x").exists()
    scratch = in_task(cluster, task_id, "grep ' /scratch ' /proc/mounts").split()
    assert scratch[:3] == ["tmpfs", "/scratch", "tmpfs"] and "size=1024k" in scratch[3], scratch
    assert in_task(cluster, task_id, "cat /etc/resolv.conf") == (
        "nameserver 127.0.0.11\nnameserver 192.0.2.53\nsearch example.org\noptions ndots:0 timeout:2\n"
    )
    assert "10.1.2.3\tdb\n" in in_task(cluster, task_id, "cat /etc/hosts")
    assert in_task(cluster, task_id, "cat /proc/sys/net/core/somaxconn").strip() == "321"
    assert in_task(cluster, task_id, "ulimit -n; ulimit -H -n").split() == ["512", "1024"]
    rc, _out, err = cli(
        cluster, "swarm00", "service", "update", "--detach", "--host-rm", "db", "--dns-rm", "192.0.2.53", "opts"
    )
    assert rc == 0, err
    spec = api(cluster, "swarm00").get("/services/opts")["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert "Hosts" not in spec and spec["DNSConfig"] == {"Search": ["example.org"], "Options": ["timeout:2"]}
    remove_service(cluster, "opts")


def test_missing_bind_source_is_rejected_and_proc_mount_is_a_400(cluster: Testbed) -> None:
    missing = {"Type": "bind", "Source": "/var/lib/shoal/no-such-dir", "Target": "/x"}
    body = {"Name": "nobind", "TaskTemplate": template("sleep 3600", Mounts=[missing])}
    api(cluster, "swarm00").post("/services/create", body)

    def rejected() -> dict[str, Any] | None:
        tasks = api(cluster, "swarm00").get("/tasks", filters={"service": ["nobind"]})
        return next((t for t in tasks if t["Status"]["State"] == "rejected"), None)

    task = wait_for("the task rejected", rejected, timeout=30)
    assert task["Status"]["Err"] == (
        'invalid mount config for type "bind": bind source path does not exist: /var/lib/shoal/no-such-dir'
    )
    api(cluster, "swarm00").delete("/services/nobind")

    proc = {"Type": "bind", "Source": "/var/lib/shoal", "Target": "/proc/sys/kernel"}
    before = api(cluster, "swarm00").get("/services")
    with pytest.raises(APIError) as e:
        api(cluster, "swarm00").post(
            "/services/create", {"Name": "procmount", "TaskTemplate": template("true", Mounts=[proc])}
        )
    assert e.value.status == 400 and "cannot be mounted because it is inside /proc" in e.value.message
    assert api(cluster, "swarm00").get("/services") == before


# A resolver on swarm01's loopback (the agent's namespace, where the embedded DNS forwards from):
# every A query is 203.0.113.7, anything else an empty answer; it ends after 60 s without a query.
FAKE_RESOLVER = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.53", 53))
s.settimeout(60)
while True:
    try:
        data, addr = s.recvfrom(4096)
    except socket.timeout:
        break
    end = 12
    while data[end]:
        end += data[end] + 1
    end += 5
    question, a = data[12:end], data[end - 4:end - 2] == b"\\x00\\x01"
    answer = b"\\xc0\\x0c\\x00\\x01\\x00\\x01\\x00\\x00\\x00\\x1e\\x00\\x04" + bytes([203, 0, 113, 7]) if a else b""
    header = data[:2] + b"\\x81\\x80\\x00\\x01" + (b"\\x00\\x01" if a else b"\\x00\\x00") + bytes(4)
    s.sendto(header + question + answer, addr)
"""


def test_the_tasks_nameservers_answer_its_other_names(cluster: Testbed) -> None:
    """--dns: the embedded DNS asks the task's resolvers, not the node's, for non-swarm names."""
    resolver = subprocess.Popen(cluster.exec_argv(NODE, ["python3", "-c", FAKE_RESOLVER]))
    try:
        api(cluster, "swarm00").post("/networks/create", {"Name": "mnet", "Driver": "overlay"})
        body = {
            "Name": "dnsuser",
            "TaskTemplate": {
                **template("exec sleep 3600", DNSConfig={"Nameservers": ["127.0.0.53"]}),
                "Networks": [{"Target": "mnet"}],
            },
        }
        api(cluster, "swarm00").post("/services/create", body)
        task_id = live_task(cluster, "dnsuser")["ID"]
        answer = wait_for(
            "corp.example from the task's resolver",
            lambda: "203.0.113.7" in (out := in_task(cluster, task_id, "getent ahostsv4 corp.example")) and out,
            timeout=20,
            interval=0.5,
        )
        assert answer.split()[0] == "203.0.113.7"
        assert in_task(cluster, task_id, "getent hosts dnsuser").split()[0].startswith("10.")  # the VIP, locally
        remove_service(cluster, "dnsuser")
    finally:
        resolver.kill()
        resolver.wait(timeout=10)


def test_local_driver_options_mount_on_first_use_and_bad_ones_are_refused(cluster: Testbed) -> None:
    node = api(cluster, NODE)
    # moby's local driver options: refused with its messages, nothing created
    for opts, message in (
        ({"type": "tmpfs"}, 'missing required option: "device"'),
        ({"o": "size=1m"}, 'missing required option: "device"'),
        ({"type": "tmpfs", "device": "tmpfs", "color": "red"}, 'invalid option: "color"'),
        ({"type": "nosuchfs", "device": "x"}, 'type "nosuchfs" is not a filesystem this node\'s kernel has'),
    ):
        with pytest.raises(APIError) as e:
            node.post("/volumes/create", {"Name": "badopts", "DriverOpts": opts})
        assert e.value.status == 400 and message in e.value.message, (opts, e.value.message)
    assert not [v for v in node.get("/volumes")["Volumes"] if v["Name"] == "badopts"]

    rc, _, err = cli(
        cluster, NODE, "volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=64m", "fast"
    )
    assert rc == 0, err
    assert node.get("/volumes/fast")["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=64m"}
    data = "/var/lib/shoal/volumes/fast/_data"
    mounted = f"grep -c ' {data} ' /proc/self/mountinfo"
    assert cluster.run(NODE, ["sh", "-c", mounted]).stdout.strip() == "0"  # not before first use
    mount = {"Type": "volume", "Source": "fast", "Target": "/data"}
    # and a service's own volume-opt (named volume created on first use with them): size=8m
    tmpfs = {"type": "tmpfs", "device": "tmpfs"}
    own = {"Type": "volume", "Source": "small", "Target": "/small",
           "VolumeOptions": {"DriverConfig": {"Options": {**tmpfs, "o": "size=8m"}}}}  # fmt: skip
    body = {"Name": "fastvol", "TaskTemplate": template("sleep 3600", Mounts=[mount, own])}
    api(cluster, "swarm00").post("/services/create", body)
    task = live_task(cluster, "fastvol")
    df = in_task(cluster, task["ID"], "df -k /data /small | tail -2")
    sizes = [int(line.split()[1]) for line in df.splitlines()]
    assert sizes == [64 * 1024, 8 * 1024], df  # the volumes' own tmpfs mounts, sized by o=size
    assert cluster.run(NODE, ["sh", "-c", mounted]).stdout.strip() == "1"
    assert node.get("/volumes/small")["Options"]["o"] == "size=8m"
    # Docker's disk usage: the only place a volume has UsageData
    in_task(cluster, task["ID"], "head -c 300000 /dev/zero > /data/blob")
    usage = {v["Name"]: v["UsageData"] for v in node.get("/system/df", type="volume")["Volumes"]}
    assert usage["fast"] == {"Size": 300000, "RefCount": 1} and usage["small"]["RefCount"] == 1, usage
    with pytest.raises(APIError) as e:
        node.get("/system/df", type="everything")
    assert e.value.status == 400 and e.value.message == "unknown object type: everything"
    remove_service(cluster, "fastvol")
    # the last task using it is gone: unmounted (moby's refcount), then removable
    wait_for("fast unmounted", lambda: cluster.run(NODE, ["sh", "-c", mounted]).stdout.strip() == "0", timeout=20)
    node.delete("/volumes/fast")
    node.delete("/volumes/small")

    # a mount the kernel refuses: the task is rejected with the local driver's message
    bad = {"Type": "volume", "Source": "badsize", "Target": "/d",
           "VolumeOptions": {"DriverConfig": {"Options": {**tmpfs, "o": "size=lots"}}}}  # fmt: skip
    api(cluster, "swarm00").post(
        "/services/create", {"Name": "badmount", "TaskTemplate": template("true", Mounts=[bad])}
    )

    def rejected() -> dict[str, Any] | None:
        tasks = api(cluster, "swarm00").get("/tasks", filters={"service": ["badmount"]})
        return next((t for t in tasks if t["Status"]["State"] == "rejected"), None)

    task = wait_for("the task rejected", rejected, timeout=30)
    assert "failed to mount local volume: mount tmpfs:/var/lib/shoal/volumes/badsize/_data" in task["Status"]["Err"]
    assert task["Status"]["Err"].endswith("data: size=lots: Invalid argument"), task["Status"]["Err"]
    api(cluster, "swarm00").delete("/services/badmount")
    wait_for("badsize removable", lambda: node.delete("/volumes/badsize") is None, timeout=30, interval=1)
