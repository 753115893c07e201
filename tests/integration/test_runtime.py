"""The process driver on a testbed host: namespaces, /etc files, env, cgroups, exit codes, stop,
adoption after the agent died, a chroot image, cleanup. Everything runs inside swarm01 through
`python -m shoal.runtime` (the driver's own command line); traffic stays inside task namespaces.
"""

from __future__ import annotations

import json
import os
import random
import string
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.bed import Testbed

HOST = "swarm01"
RT = ["python", "-m", "shoal.runtime", "--driver", "process"]
CGROUP_V1 = ("memory", "cpu", "pids")


def new_task_id() -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=25))


def rt(bed: Testbed, *args: str, task: dict[str, Any] | None = None, ok: bool = True) -> Any:
    res = bed.run(HOST, [*RT, *args], input=json.dumps(task) if task else None, timeout=60)
    if ok:
        assert res.returncode == 0, f"{args}: {res.stdout}{res.stderr}"
    out = res.stdout.strip()
    return json.loads(out.splitlines()[-1]) if out.startswith(("{", "[", "null")) else out


def make_task(image: str, args: list[str] | None = None, **container: Any) -> dict[str, Any]:
    resources = container.pop("Limits", None)
    spec: dict[str, Any] = {"ContainerSpec": {"Image": image, **container}}
    if args is not None:
        spec["ContainerSpec"]["Args"] = args
    if resources:
        spec["Resources"] = {"Limits": resources}
    return {"ID": new_task_id(), "ServiceID": "svc0", "Slot": 1, "Spec": spec}


@pytest.fixture(scope="module", autouse=True)
def host_cgroups(bed: Testbed) -> None:
    """Give the test host the machine's cgroup mounts, as a real host has them: `ip netns exec`
    (which makes testbed hosts) mounts a fresh /sys without /sys/fs/cgroup. Mounting a v1
    hierarchy again with the same options attaches the same hierarchy; the mounts live in the
    host's private mount namespace and end with it."""
    if " cgroup" in bed.run(HOST, ["cat", "/proc/self/mounts"]).stdout:
        return
    steps = ["mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup"]
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, point, fstype, opts, *_ = line.split()
        if fstype in ("cgroup", "cgroup2"):
            steps.append(f"mkdir -p {point} && mount -t {fstype} -o {opts} {fstype} {point}")
    res = bed.run(HOST, ["sh", "-ec", "\n".join(steps)])
    assert res.returncode == 0, res.stderr


@pytest.fixture
def tasks(bed: Testbed) -> Iterator[list[str]]:
    """Task IDs a test started: removed at the end whatever happened."""
    ids: list[str] = []
    yield ids
    for task_id in ids:
        bed.run(HOST, [*RT, "rm", task_id])


def start(bed: Testbed, tasks: list[str], task: dict[str, Any]) -> dict[str, Any]:
    tasks.append(task["ID"])
    handle = rt(bed, "run", task=task)
    assert handle["task_id"] == task["ID"], handle
    return handle


def ns_ino(pid: int, kind: str) -> int:
    return os.stat(f"/proc/{pid}/ns/{kind}").st_ino


def in_task(bed: Testbed, pid: int, flags: list[str], argv: list[str]) -> str:
    res = bed.run(HOST, ["nsenter", "-t", str(pid), *flags, "--", *argv], timeout=20)
    assert res.returncode == 0, res.stderr
    return res.stdout


def wait_for(pred: Any, timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def assert_gone(bed: Testbed, task_id: str, pid: int) -> None:
    """No namespace, mount, cgroup, process or file of the task is left."""
    assert f"task-{task_id[:12]}" not in bed.run(HOST, ["ip", "netns", "list"]).stdout
    assert not Path(f"/proc/{pid}").exists()
    for ctrl in CGROUP_V1:
        assert not Path(f"/sys/fs/cgroup/{ctrl}/shoal/{task_id}").exists()
    holder = bed.holder_pid(HOST)
    for mountinfo in (f"/proc/{holder}/mountinfo", "/proc/self/mountinfo"):
        assert task_id[:12] not in Path(mountinfo).read_text()
    assert not (bed.host(HOST).state_dir / "var" / "tasks" / task_id).exists()


def test_host_image_namespaces_files_env_limits_and_remove(bed: Testbed, tasks: list[str]) -> None:
    task = make_task(
        "shoal/host",
        ["sleep", "30"],
        Env=["FOO=bar", "PATH=/usr/bin:/bin"],
        Dir="/opt/shoal/work",
        Hostname="web-1",
        Limits={"MemoryBytes": 64 << 20, "NanoCPUs": 500_000_000},
    )
    h = start(bed, tasks, task)
    pid, holder = h["pid"], bed.holder_pid(HOST)
    for kind in ("net", "mnt", "uts"):
        assert ns_ino(pid, kind) != ns_ino(holder, kind), kind
    assert in_task(bed, pid, ["-u"], ["hostname"]).strip() == "web-1"
    assert in_task(bed, pid, ["-m"], ["cat", "/etc/hostname"]).strip() == "web-1"
    assert in_task(bed, pid, ["-m"], ["cat", "/etc/resolv.conf"]).startswith("nameserver 127.0.0.11\n")
    assert "web-1" in in_task(bed, pid, ["-m"], ["cat", "/etc/hosts"])
    assert "127.0.0.11" not in bed.run(HOST, ["cat", "/etc/resolv.conf"]).stdout  # the host's file is untouched
    assert bed.run(HOST, ["hostname"]).stdout.strip() == HOST
    links = in_task(bed, pid, ["-n"], ["ip", "-o", "link"]).splitlines()
    assert len(links) == 1 and ": lo:" in links[0] and "UP" in links[0]  # loopback only, up
    assert f"task-{task['ID'][:12]}" in bed.run(HOST, ["ip", "netns", "list"]).stdout
    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"FOO=bar" in env and b"HOSTNAME=web-1" in env and b"PATH=/usr/bin:/bin" in env and b"HOME=/root" in env
    assert bed.run(HOST, ["readlink", f"/proc/{pid}/cwd"]).stdout.strip() == "/opt/shoal/work"  # made for it
    # cgroup v1 on this machine: shoal/<task-id> per controller, limits applied, process inside
    mem = Path(f"/sys/fs/cgroup/memory/shoal/{task['ID']}")
    assert int((mem / "memory.limit_in_bytes").read_text()) == 64 << 20
    cpu = Path(f"/sys/fs/cgroup/cpu/shoal/{task['ID']}")
    assert int((cpu / "cpu.cfs_quota_us").read_text()) == 50_000
    assert int((cpu / "cpu.cfs_period_us").read_text()) == 100_000
    assert str(pid) in (mem / "cgroup.procs").read_text().split()
    # `shoal exec`: the task's namespaces, environment and working directory
    assert rt(bed, "exec", task["ID"], "--", "sh", "-c", "hostname; echo $FOO; pwd") == "web-1\nbar\n/opt/shoal/work"
    assert rt(bed, "poll", task["ID"]) is None  # running
    assert [t["pid"] for t in rt(bed, "ps")] == [pid]
    rt(bed, "rm", task["ID"])
    assert_gone(bed, task["ID"], pid)


def test_memory_limit_is_enforced(bed: Testbed, tasks: list[str]) -> None:
    hog = make_task("shoal/host", ["python3", "-c", "x = bytearray(256 << 20)"], Limits={"MemoryBytes": 16 << 20})
    start(bed, tasks, hog)
    status = rt(bed, "wait", hog["ID"], "--timeout", "20")
    assert status["exit_code"] == 137 and status["oom_killed"], status


def test_hello_answers_inside_its_namespace_and_sigkill_is_137(bed: Testbed, tasks: list[str]) -> None:
    task = make_task("shoal/hello")
    pid = start(bed, tasks, task)["pid"]

    def answer() -> str:
        res = bed.run(HOST, ["nsenter", "-t", str(pid), "-n", "curl", "-s", "-m", "2", "127.0.0.1:8080"])
        return res.stdout

    assert wait_for(answer, what="hello on 8080") == "Hello World! from 127.0.0.1\n"
    # once interfaces are attached it answers with the first one's address (by name: eth0);
    # a veth pair with both ends inside the task's namespace stands in for the overlay's
    setup = "ip link add eth1 type veth peer name eth0 && ip addr add 10.99.0.6/24 dev eth1 && "
    setup += "ip addr add 10.99.0.5/24 dev eth0 && ip link set eth0 up && ip link set eth1 up"
    in_task(bed, pid, ["-n"], ["sh", "-c", setup])
    assert answer() == "Hello World! from 10.99.0.5\n"
    # nothing listens on the host's own 8080: the server lives in the task's namespace
    assert bed.run(HOST, ["curl", "-s", "-m", "1", "127.0.0.1:8080"]).returncode != 0
    os.kill(pid, 9)
    status = rt(bed, "wait", task["ID"], "--timeout", "10")
    assert status["exit_code"] == 137 and status["signal"] == 9
    assert status["message"] == "task: non-zero exit (137)"
    assert "hello: listening on :8080" in rt(bed, "logs", task["ID"])
    rt(bed, "rm", task["ID"])
    assert_gone(bed, task["ID"], pid)


def test_stop_sends_sigterm_then_sigkill_after_grace(bed: Testbed, tasks: list[str]) -> None:
    polite = make_task(
        "shoal/host", ["sh", "-c", 'trap "echo got TERM; exit 0" TERM; echo ready; while :; do sleep 0.05; done']
    )
    stubborn = make_task(
        "shoal/host",
        ["sh", "-c", 'trap "" TERM; echo ready; while :; do sleep 0.05; done'],
        StopGracePeriod=500_000_000,
    )
    start(bed, tasks, polite)
    start(bed, tasks, stubborn)
    for t in (polite, stubborn):
        wait_for(lambda t=t: "ready" in rt(bed, "logs", t["ID"]), what="ready")
    status = rt(bed, "stop", polite["ID"], "--grace", "10")
    assert status["exit_code"] == 0  # SIGTERM honoured: it exited by itself (after the grace it would be 137)
    assert rt(bed, "logs", polite["ID"], "--tail", "1") == "got TERM"
    t0 = time.monotonic()
    status = rt(bed, "stop", stubborn["ID"])  # the spec's StopGracePeriod: 0.5 s
    assert status["exit_code"] == 137 and time.monotonic() - t0 >= 0.5  # SIGKILL only after the grace period


def test_adopt_after_the_agent_was_killed(bed: Testbed, tasks: list[str]) -> None:
    task = make_task("shoal/host", ["sh", "-c", "echo one; echo two; exec sleep 30"])
    tasks.append(task["ID"])
    agent = subprocess.Popen(
        bed.exec_argv(HOST, [*RT, "hold"]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert agent.stdin and agent.stdout
    agent.stdin.write(json.dumps(task))
    agent.stdin.close()
    handle = json.loads(agent.stdout.readline())
    agent.kill()  # SIGKILL to the "agent" (nsenter and env exec, so this is the Python process)
    agent.wait(5)
    agent.stdout.close()
    assert Path(f"/proc/{handle['pid']}").exists()  # the task survived its agent
    adopted = rt(bed, "adopt")
    assert [(a["task_id"], a["pid"], a["shim_pid"]) for a in adopted] == [
        (task["ID"], handle["pid"], handle["shim_pid"])
    ]
    assert rt(bed, "logs", task["ID"], "--tail", "1") == "two"
    os.kill(handle["pid"], 9)  # the shim still records the exit for the new agent
    assert rt(bed, "wait", task["ID"], "--timeout", "10")["exit_code"] == 137
    rt(bed, "rm", task["ID"])
    assert_gone(bed, task["ID"], handle["pid"])


def test_sigterm_to_the_shim_ends_its_task_and_is_recorded(bed: Testbed, tasks: list[str]) -> None:
    """What `testbed down` (and a whole-cgroup service stop) does: the task must not outlive it."""
    task = make_task("shoal/host", ["sh", "-c", "sleep 60 & exec sleep 60"])
    handle = start(bed, tasks, task)
    os.kill(handle["shim_pid"], 15)
    status = rt(bed, "wait", task["ID"], "--timeout", "10")
    assert status["exit_code"] == 137 and status["message"] == "task: killed because its supervisor got signal 15"
    assert rt(bed, "pids", task["ID"]) == [] and not Path(f"/proc/{handle['pid']}").exists()
    assert not Path(f"/sys/fs/cgroup/pids/shoal/{task['ID']}").exists()  # removed as the task ended


ROOTFS_SCRIPT = """set -e
src=/opt/shoal/rootfs-src
rm -rf $src && mkdir -p $src/bin $src/etc
cp /bin/dash $src/bin/sh && cp /bin/cat /bin/sleep $src/bin/
for lib in $(for b in /bin/dash /bin/cat /bin/sleep; do ldd $b | grep -o '/[^ ]*'; done); do
    mkdir -p $src$(dirname $lib) && cp -L $lib $src$lib
done
printf 'root:x:0:0:root:/root:/bin/sh\\napp:x:1000:1000:app:/home/app:/bin/sh\\n' > $src/etc/passwd
printf 'root:x:0:\\napp:x:1000:\\n' > $src/etc/group
"""


def test_rootfs_image_chroot_user_overlay(bed: Testbed, tasks: list[str]) -> None:
    assert bed.run(HOST, ["sh", "-c", ROOTFS_SCRIPT]).returncode == 0
    image = rt(bed, "import", "/opt/shoal/rootfs-src", "tiny:1", "-c", 'ENTRYPOINT ["/bin/sh", "-c"]', "-c", "USER app")
    try:
        script = "cat /etc/hostname > /tmp/seen; echo in-root; exec sleep 30"
        task = make_task("tiny:1", [script], Dir="/home/app")
        pid = start(bed, tasks, task)["pid"]
        task_dir = bed.host(HOST).state_dir / "var" / "tasks" / task["ID"]
        wait_for(lambda: (task_dir / "upper" / "tmp" / "seen").exists(), what="the task's write")
        assert (task_dir / "upper" / "tmp" / "seen").read_text().strip() == task["ID"][:12]
        # the image stays untouched: writes go to the task's overlay layer
        image_dir = bed.host(HOST).state_dir / "var" / Path(image["Rootfs"]).relative_to("/var/lib/shoal")
        assert (image_dir / "bin" / "sh").exists() and not (image_dir / "tmp" / "seen").exists()
        status = Path(f"/proc/{pid}/status").read_text()
        assert "\nUid:\t1000\t1000\t1000\t1000" in status and "\nGid:\t1000\t1000\t1000\t1000" in status
        assert in_task(bed, pid, ["-m", "-r"], ["/bin/cat", "/etc/passwd"]).startswith("root:x:0:0")  # chroot
        assert bed.run(HOST, ["readlink", f"/proc/{pid}/cwd"]).stdout.strip().endswith("/home/app")
        assert rt(bed, "logs", task["ID"]) == "in-root"
        assert rt(bed, "exec", task["ID"], "--", "/bin/sh", "-c", "echo $HOME; cat /tmp/seen") == (
            f"/home/app\n{task['ID'][:12]}"
        )
        rt(bed, "rm", task["ID"])
        assert_gone(bed, task["ID"], pid)
    finally:
        bed.run(HOST, [*RT, "rmi", "tiny:1"])
        bed.run(HOST, ["rm", "-rf", "/opt/shoal/rootfs-src"])


def test_rejections_and_start_errors(bed: Testbed, tasks: list[str]) -> None:
    err = rt(bed, "run", task=make_task("nosuch", ["true"]), ok=False)
    assert err == {"error": "No such image: nosuch", "kind": "NoSuchImage"}
    err = rt(bed, "run", task=make_task("shoal/host", ["true"], Limits={"MemoryBytes": 1 << 20}), ok=False)
    assert "minimum memory limit allowed is 4MB" in err["error"] and err["kind"] == "SpecError"
    bad = make_task("shoal/host", ["no-such-command"])
    tasks.append(bad["ID"])
    err = rt(bed, "run", task=bad, ok=False)
    assert err["error"] == 'starting task failed: exec: "no-such-command": executable file not found in $PATH'
    status = rt(bed, "poll", bad["ID"])
    assert status["exit_code"] == 127 and status["message"] == err["error"]
    rt(bed, "rm", bad["ID"])
    assert f"task-{bad['ID'][:12]}" not in bed.run(HOST, ["ip", "netns", "list"]).stdout
