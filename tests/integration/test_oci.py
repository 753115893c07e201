"""The oci driver on a testbed host: OCI containers under conmon + runc. Namespaces, /etc files,
env, cgroups, exit codes from conmon's exit files, stop, adoption after the agent was killed
(also of a task that ended meanwhile), k8s-file logs, runc exec, a busybox image with user,
read-only root, init and capabilities, cleanup. Everything runs inside swarm01 through
`python -m shoal.runtime --driver oci`; traffic stays inside task namespaces.
"""

from __future__ import annotations

import base64
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

from testbed import registry
from testbed.bed import Testbed

HOST = "swarm01"
RT = ["python", "-m", "shoal.runtime", "--driver", "oci"]
CGROUP_V1 = ("memory", "cpu", "pids")
BB_SRC = "/opt/shoal/bb-src"


def new_task_id() -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=25))


def rt(bed: Testbed, *args: str, task: dict[str, Any] | None = None, ok: bool = True) -> Any:
    res = bed.run(HOST, [*RT, *args], input=json.dumps(task) if task else None, timeout=60)
    if ok:
        assert res.returncode == 0, f"{args}: {res.stdout}{res.stderr}"
    out = res.stdout.strip()
    return json.loads(out.splitlines()[-1]) if out.startswith(("{", "[", "null")) else out


def log_lines(bed: Testbed, task_id: str, *args: str) -> list[tuple[str, str, str]]:
    """(timestamp, stream, line) of every k8s-file record `logs` prints."""
    out = []
    for line in rt(bed, "logs", task_id, *args).splitlines():
        stamp, stream, flag, *rest = line.split(" ", 3)
        assert flag == "F", line
        out.append((stamp, stream, rest[0] if rest else ""))
    return out


def make_task(image: str, args: list[str] | None = None, **container: Any) -> dict[str, Any]:
    resources = container.pop("Limits", None)
    spec: dict[str, Any] = {"ContainerSpec": {"Image": image, **container}}
    if args is not None:
        spec["ContainerSpec"]["Args"] = args
    if resources:
        spec["Resources"] = {"Limits": resources}
    return {"ID": new_task_id(), "ServiceID": "svc0", "Slot": 1, "Spec": spec}


@pytest.fixture
def tasks(bed: Testbed) -> Iterator[list[str]]:
    ids: list[str] = []
    yield ids
    for task_id in ids:
        bed.run(HOST, [*RT, "rm", task_id])


@pytest.fixture(scope="module")
def busybox(bed: Testbed) -> Iterator[str]:
    """A busybox-static image with a passwd file (user app = 1000:1000)."""
    script = f"""set -e
rm -rf {BB_SRC} && mkdir -p {BB_SRC}/bin {BB_SRC}/etc {BB_SRC}/home/app
cp /bin/busybox {BB_SRC}/bin/busybox
for c in sh sleep echo cat ls id ps touch hostname printf pwd grep; do ln -s busybox {BB_SRC}/bin/$c; done
printf 'root:x:0:0:root:/root:/bin/sh\\napp:x:1000:1000:app:/home/app:/bin/sh\\n' > {BB_SRC}/etc/passwd
printf 'root:x:0:\\napp:x:1000:\\n' > {BB_SRC}/etc/group
"""
    assert bed.run(HOST, ["sh", "-c", script]).returncode == 0
    rt(bed, "import", BB_SRC, "bb:1", "-c", 'ENTRYPOINT ["/bin/sh", "-c"]')
    yield "bb:1"
    bed.run(HOST, [*RT, "rmi", "bb:1"])
    bed.run(HOST, ["rm", "-rf", BB_SRC])


def start(bed: Testbed, tasks: list[str], task: dict[str, Any]) -> dict[str, Any]:
    tasks.append(task["ID"])
    handle = rt(bed, "run", task=task)
    assert handle["task_id"] == task["ID"], handle
    return handle


def ns_ino(pid: int, kind: str) -> int:
    return os.stat(f"/proc/{pid}/ns/{kind}").st_ino


def wait_for(pred: Any, timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def conmon_of(pid: int) -> int:
    """The container's parent: its conmon."""
    ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert Path(f"/proc/{ppid}/comm").read_text().strip() == "conmon"
    return ppid


def alive(pid: int) -> bool:
    """Running (a zombie waits for the machine's init to reap it: gone for our purposes)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def assert_gone(bed: Testbed, task_id: str, pid: int, conmon: int) -> None:
    """No namespace, mount, cgroup, process, runc state or file of the task is left."""
    assert f"task-{task_id[:12]}" not in bed.run(HOST, ["ip", "netns", "list"]).stdout
    assert not alive(pid) and not alive(conmon)
    for ctrl in CGROUP_V1:
        assert not Path(f"/sys/fs/cgroup/{ctrl}/shoal/{task_id}").exists()
    holder = bed.holder_pid(HOST)
    assert task_id not in Path(f"/proc/{holder}/mountinfo").read_text()
    assert not (bed.host(HOST).state_dir / "var" / "tasks" / task_id).exists()
    assert rt(bed, "state", task_id) is None  # runc does not know it any more


def test_host_image_namespaces_files_env_limits_exec_and_remove(bed: Testbed, tasks: list[str]) -> None:
    task = make_task(
        "shoal/host",
        ["sleep", "30"],
        Env=["FOO=bar", "PATH=/usr/bin:/bin"],
        Dir="/opt/shoal",
        Hostname="web-1",
        Limits={"MemoryBytes": 64 << 20, "NanoCPUs": 500_000_000, "Pids": 50},
    )
    h = start(bed, tasks, task)
    pid, holder = h["pid"], bed.holder_pid(HOST)
    conmon = conmon_of(pid)
    assert h["shim_pid"] == conmon
    for kind in ("net", "mnt", "uts", "ipc", "pid"):
        assert ns_ino(pid, kind) != ns_ino(holder, kind), kind
    # the network namespace is the one shoal prepared (by path)
    netns_ino = int(bed.run(HOST, ["stat", "-L", "-c", "%i", f"/run/netns/task-{task['ID'][:12]}"]).stdout)
    assert ns_ino(pid, "net") == netns_ino
    state = rt(bed, "state", task["ID"])
    assert state["status"] == "running" and state["pid"] == pid
    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    # shoal/host has no /etc/passwd: root's HOME is then "/", as Docker (libcontainer) sets it
    assert b"FOO=bar" in env and b"HOSTNAME=web-1" in env and b"PATH=/usr/bin:/bin" in env and b"HOME=/" in env
    # runc exec: the task's namespaces, environment and working directory
    out = rt(
        bed,
        "exec",
        task["ID"],
        "--",
        "sh",
        "-c",
        "hostname; echo $FOO; pwd; cat /etc/hostname; head -1 /etc/resolv.conf",
    )
    assert out == "web-1\nbar\n/opt/shoal\nweb-1\nnameserver 127.0.0.11"
    assert "web-1" in rt(bed, "exec", task["ID"], "--", "cat", "/etc/hosts")
    links = rt(bed, "exec", task["ID"], "--", "ip", "-o", "link").splitlines()
    assert len(links) == 1 and ": lo:" in links[0]
    assert bed.run(HOST, ["hostname"]).stdout.strip() == HOST
    mem = Path(f"/sys/fs/cgroup/memory/shoal/{task['ID']}")
    assert int((mem / "memory.limit_in_bytes").read_text()) == 64 << 20
    cpu = Path(f"/sys/fs/cgroup/cpu/shoal/{task['ID']}")
    assert int((cpu / "cpu.cfs_quota_us").read_text()) == 50_000
    assert int((Path(f"/sys/fs/cgroup/pids/shoal/{task['ID']}") / "pids.max").read_text()) == 50
    assert str(pid) in (mem / "cgroup.procs").read_text().split()
    assert rt(bed, "poll", task["ID"]) is None
    assert [t["pid"] for t in rt(bed, "ps")] == [pid]
    rt(bed, "rm", task["ID"])
    assert_gone(bed, task["ID"], pid, conmon)


def test_memory_limit_is_enforced_and_oom_is_recorded(bed: Testbed, tasks: list[str]) -> None:
    hog = make_task("shoal/host", ["python3", "-c", "x = bytearray(256 << 20)"], Limits={"MemoryBytes": 16 << 20})
    start(bed, tasks, hog)
    status = rt(bed, "wait", hog["ID"], "--timeout", "20")
    assert status["exit_code"] == 137 and status["oom_killed"], status


def test_hello_answers_and_sigkill_is_137_from_the_exit_file(bed: Testbed, tasks: list[str]) -> None:
    task = make_task("shoal/hello")
    pid = start(bed, tasks, task)["pid"]
    conmon = conmon_of(pid)

    def answer() -> str:
        res = bed.run(HOST, ["nsenter", "-t", str(pid), "-n", "curl", "-s", "-m", "2", "127.0.0.1:8080"])
        return res.stdout

    assert wait_for(answer, what="hello on 8080") == "Hello World! from 127.0.0.1\n"
    # once interfaces are attached it answers with the first one's address (by name: eth0);
    # a veth pair with both ends inside the task's namespace stands in for the overlay's
    setup = "ip link add eth1 type veth peer name eth0 && ip addr add 10.99.0.6/24 dev eth1 && "
    setup += "ip addr add 10.99.0.5/24 dev eth0 && ip link set eth0 up && ip link set eth1 up"
    assert bed.run(HOST, ["nsenter", "-t", str(pid), "-n", "sh", "-c", setup]).returncode == 0
    assert answer() == "Hello World! from 10.99.0.5\n"
    # nothing listens on the host's own 8080: the server lives in the task's namespace
    assert bed.run(HOST, ["curl", "-s", "-m", "1", "127.0.0.1:8080"]).returncode != 0
    os.kill(pid, 9)
    status = rt(bed, "wait", task["ID"], "--timeout", "10")
    assert status["exit_code"] == 137 and status["signal"] == 9
    assert status["message"] == "task: non-zero exit (137)"
    exit_file = bed.host(HOST).state_dir / "var" / "tasks" / task["ID"] / "exits" / task["ID"]
    assert exit_file.read_text().strip() == "137"  # written by conmon
    assert ("stdout", "hello: listening on :8080") in [(s, line) for _, s, line in log_lines(bed, task["ID"])]
    rt(bed, "rm", task["ID"])
    assert_gone(bed, task["ID"], pid, conmon)


def test_stop_signal_then_sigkill_after_grace(bed: Testbed, tasks: list[str], busybox: str) -> None:
    polite = make_task(busybox, ['trap "echo got TERM; exit 0" TERM; echo ready; while :; do sleep 0.05; done'])
    quitter = make_task(
        busybox, ['trap "echo got QUIT; exit 3" QUIT; echo ready; while :; do sleep 0.05; done'], StopSignal="SIGQUIT"
    )
    stubborn = make_task(
        busybox, ['trap "" TERM; echo ready; while :; do sleep 0.05; done'], StopGracePeriod=500_000_000
    )
    for t in (polite, quitter, stubborn):
        start(bed, tasks, t)
    for t in (polite, quitter, stubborn):
        wait_for(lambda t=t: "ready" in rt(bed, "logs", t["ID"]), what="ready")
    t0 = time.monotonic()
    status = rt(bed, "stop", polite["ID"], "--grace", "10")
    assert status["exit_code"] == 0 and time.monotonic() - t0 < 5
    assert log_lines(bed, polite["ID"], "--tail", "1")[0][2] == "got TERM"
    assert rt(bed, "stop", quitter["ID"], "--grace", "10")["exit_code"] == 3
    assert log_lines(bed, quitter["ID"], "--tail", "1")[0][2] == "got QUIT"
    t0 = time.monotonic()
    status = rt(bed, "stop", stubborn["ID"])  # the spec's StopGracePeriod: 0.5 s
    assert status["exit_code"] == 137 and 0.4 < time.monotonic() - t0 < 5


def test_adopt_after_the_agent_was_killed(bed: Testbed, tasks: list[str], busybox: str) -> None:
    """conmon outlives the agent; a new agent finds running tasks by bundle, conmon pidfile and
    runc state, and reads the exit code of a task that ended while no agent ran."""
    runs = make_task(busybox, ["echo one; echo two; exec sleep 30"])
    ends = make_task(busybox, ["read x < /dev/null; sleep 1; exit 42"])
    tasks += [runs["ID"], ends["ID"]]
    agent = subprocess.Popen(
        bed.exec_argv(HOST, [*RT, "hold"]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert agent.stdin and agent.stdout
    agent.stdin.write(json.dumps(runs))
    agent.stdin.close()
    handle = json.loads(agent.stdout.readline())
    other = rt(bed, "run", task=ends)
    agent.kill()  # SIGKILL to the "agent"
    agent.wait(5)
    agent.stdout.close()
    assert Path(f"/proc/{handle['pid']}").exists() and Path(f"/proc/{handle['shim_pid']}").exists()
    wait_for(lambda: not Path(f"/proc/{other['pid']}").exists(), what="the second task to end")
    adopted = rt(bed, "adopt")
    assert [(a["task_id"], a["pid"], a["shim_pid"]) for a in adopted] == [
        (runs["ID"], handle["pid"], handle["shim_pid"])
    ]
    status = rt(bed, "poll", ends["ID"])
    assert status["exit_code"] == 42 and status["message"] == "task: non-zero exit (42)"
    assert [line for _, _, line in log_lines(bed, runs["ID"], "--tail", "1")] == ["two"]
    os.kill(handle["pid"], 9)  # conmon still records the exit for the new agent
    assert rt(bed, "wait", runs["ID"], "--timeout", "10")["exit_code"] == 137
    rt(bed, "rm", runs["ID"])
    assert_gone(bed, runs["ID"], handle["pid"], handle["shim_pid"])


def test_busybox_image_user_readonly_init_caps_overlay(bed: Testbed, tasks: list[str], busybox: str) -> None:
    script = "touch /home/x 2>/dev/null; echo rc=$?; id -u; exec sleep 30"
    task = make_task(
        busybox,
        [script],
        User="app",
        Dir="/home/app",
        ReadOnly=True,
        Init=True,
        CapabilityDrop=["ALL"],
        CapabilityAdd=["NET_BIND_SERVICE"],
    )
    pid = start(bed, tasks, task)["pid"]
    wait_for(lambda: len(log_lines(bed, task["ID"])) >= 2, what="the task's output")
    lines = [line for _, _, line in log_lines(bed, task["ID"])]
    assert lines[0] == "rc=1" and lines[-1] == "1000"  # read-only root, runs as app
    # exec runs as the task's user, with its HOME (from the image's /etc/passwd) and directory
    assert rt(bed, "exec", task["ID"], "--", "sh", "-c", "id -u; echo $HOME; pwd") == "1000\n/home/app\n/home/app"
    ps = rt(bed, "exec", task["ID"], "--", "ps", "-o", "pid,user,args")
    assert ps.splitlines()[1].split(None, 2) == ["1", "app", "/dev/init -- /bin/sh -c " + script]
    status = rt(bed, "exec", task["ID"], "--", "cat", "/proc/self/status")
    capeff = next(line for line in status.splitlines() if line.startswith("CapBnd:"))
    assert int(capeff.split()[1], 16) == 1 << 10  # CAP_NET_BIND_SERVICE only
    rt(bed, "rm", task["ID"])

    rw = make_task(busybox, ["cat /etc/hostname > /tmp/seen; echo in-root; exec sleep 30"])
    pid = start(bed, tasks, rw)["pid"]
    task_dir = bed.host(HOST).state_dir / "var" / "tasks" / rw["ID"]
    wait_for(lambda: (task_dir / "upper" / "tmp" / "seen").exists(), what="the task's write")
    assert (task_dir / "upper" / "tmp" / "seen").read_text().strip() == rw["ID"][:12]
    image = next(i for i in rt(bed, "images") if "bb:1" in i["RepoTags"])
    image_dir = bed.host(HOST).state_dir / "var" / Path(image["Rootfs"]).relative_to("/var/lib/shoal")
    assert (image_dir / "bin" / "busybox").exists() and not (image_dir / "tmp" / "seen").exists()
    conmon = conmon_of(pid)
    rt(bed, "rm", rw["ID"])
    assert_gone(bed, rw["ID"], pid, conmon)


def test_logs_keep_streams_apart_with_timestamps_and_join_partial_lines(
    bed: Testbed, tasks: list[str], busybox: str
) -> None:
    task = make_task(busybox, ["echo out; echo err >&2; printf 'part'; sleep 0.3; printf 'ial\\n'; echo done"])
    start(bed, tasks, task)
    assert rt(bed, "wait", task["ID"], "--timeout", "10")["exit_code"] == 0
    lines = log_lines(bed, task["ID"])
    # two pipes: the order within a stream is kept, not across them
    assert [line for _, s, line in lines if s == "stdout"] == ["out", "partial", "done"]
    assert [line for _, s, line in lines if s == "stderr"] == ["err"]
    out_stamps = [t for t, s, _ in lines if s == "stdout"]
    assert all(t.endswith("Z") and "T" in t for t, _, _ in lines) and out_stamps == sorted(out_stamps)


def test_rejections_and_start_errors(bed: Testbed, tasks: list[str], busybox: str) -> None:
    # an image nobody has: the testbed registry (the only one tests may ask) answers manifest unknown
    missing = registry.ref("testbed/nosuch:1")
    auth = {"username": registry.USER, "password": registry.password(), "serveraddress": registry.HOST}
    pull = {"RegistryAuth": base64.urlsafe_b64encode(json.dumps(auth).encode()).decode()}
    err = rt(bed, "run", task=make_task(missing, ["true"], PullOptions=pull), ok=False)
    assert err == {"error": f"No such image: {missing} (manifest unknown)", "kind": "RegistryError"}
    assert registry.password() not in json.dumps(err)
    err = rt(bed, "run", task=make_task(busybox, ["true"], Limits={"MemoryBytes": 1 << 20}), ok=False)
    assert "minimum memory limit allowed is 4MB" in err["error"] and err["kind"] == "SpecError"
    bad = make_task(busybox, Command=["no-such-command"])
    tasks.append(bad["ID"])
    err = rt(bed, "run", task=bad, ok=False)
    assert err["error"].startswith("starting container failed: ")
    assert 'exec: "no-such-command": executable file not found in $PATH' in err["error"]
    status = rt(bed, "poll", bad["ID"])
    assert status["exit_code"] == 127 and status["message"] == err["error"]
    rt(bed, "rm", bad["ID"])
    assert f"task-{bad['ID'][:12]}" not in bed.run(HOST, ["ip", "netns", "list"]).stdout
    assert not (bed.host(HOST).state_dir / "var" / "tasks" / bad["ID"]).exists()
