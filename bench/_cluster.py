"""Shared setup for benchmarks that need a shoal cluster on the testbed (prints, never asserts)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "agent" / "src")]

from integration.cluster_helpers import (  # noqa: E402
    HOSTS,
    api,
    form_cluster,
    start_agent,
    wait_for,
    wipe_cluster,
)
from shoal.model.ids import parse_rfc3339  # noqa: E402
from testbed.bed import Testbed  # noqa: E402
from testbed.lock import testbed_lock  # noqa: E402

MANAGER = "10.213.0.10:2377"
T = TypeVar("T")


def fresh_cluster(managers: int = 3) -> Testbed:
    """Testbed up, agents restarted with empty state, swarm00 init, others joined (and promoted)."""
    bed = Testbed()
    bed.up(len(HOSTS))
    for host in HOSTS:
        bed.stop_agent(host)
        bed.run(host, ["sh", "-c", "rm -rf /var/lib/shoal/*"])
        start_agent(bed, host)
    api(bed, "swarm00").post("/swarm/init", {"AdvertiseAddr": "eth0"})
    tokens = api(bed, "swarm00").get("/swarm")["JoinTokens"]
    for i, host in enumerate(HOSTS[1:], start=1):
        token = tokens["Manager"] if i < managers else tokens["Worker"]
        api(bed, host).post("/swarm/join", {"JoinToken": token, "RemoteAddrs": [MANAGER]})
    wait_for(
        "managers reachable",
        lambda: (
            sum(
                1
                for n in api(bed, "swarm00").get("/nodes")
                if (n.get("ManagerStatus") or {}).get("Reachability") == "reachable"
            )
            == managers
        ),
        timeout=30,
    )
    return bed


def teardown(bed: Testbed) -> None:
    for host in HOSTS:
        bed.stop_agent(host)
        bed.run(host, ["sh", "-c", "rm -rf /var/lib/shoal/*"])


def locked_main(main: object) -> None:
    """Run a benchmark's main while holding the machine's testbed lock (SHOAL_TESTBED_LOCKED=1 under
    `flock /run/lock/shoal-testbed.lock`: several benchmarks back to back in one turn)."""
    with testbed_lock():
        main()  # type: ignore[operator]


# ---- services benchmarks (converge, failover, task_rss)
# `sleep` is PID 1 of its container, and PID 1 ignores the signals it has no handler for: stopped
# with SIGTERM, each task would sit out its 10 s grace period (rm, drain and `leave` of hundreds)
SLEEPER = {
    "ContainerSpec": {"Image": "shoal/host", "Command": ["sleep", "3600"], "StopSignal": "SIGKILL"},
    "RestartPolicy": {"Condition": "any", "Delay": 0},
}


def services_cluster(managers: int = 1, driver: str | None = None, heartbeat: float | None = None) -> Testbed:
    """Testbed up; swarm00 inits, the others join (managers up to `managers`); every node ready.
    `driver` ("oci") goes into every host's /etc/shoal/shoald.yml as `task_driver`, `heartbeat` as
    `heartbeat_period` (a node is Down after 3 missed beats: benchmarks that do not measure node
    loss use 3 s, so that a load spike of the shared machine does not fake one)."""
    bed = Testbed()
    bed.up(len(HOSTS))
    for host in HOSTS:
        conf = f"task_driver: {driver}\n" if driver else ""
        conf += f"heartbeat_period: {heartbeat:g}\n" if heartbeat else ""
        bed.run(host, ["sh", "-c", f"mkdir -p /etc/shoal && printf '{conf}' > /etc/shoal/shoald.yml"])
    try:
        form_cluster(bed, managers=managers)
    except BaseException:
        wipe(bed, "bench_setup")  # no agent left running behind a failed start
        raise
    return bed


def wipe(bed: Testbed, name: str) -> None:
    """Keep the agents' logs under .state/test-logs/NAME, then every node leaves (its tasks end)."""
    try:
        wipe_cluster(bed, name)
    except Exception as exc:  # a wedged agent must not hide the figures already printed
        print(f"cleanup: {exc!r}; stopping the agents", flush=True)
        for host in HOSTS:
            bed.stop_agent(host)
            remove_containers(bed, host)  # conmon outlives its agent: never leave a container behind
            bed.run(host, ["sh", "-c", "rm -rf /var/lib/shoal/*"])
    # `leave` ends every task; whatever still runs 10 s later is a leak: say so, then end it
    until("every task supervisor gone after leave", lambda: not any(shim_pids(bed, h) for h in HOSTS), 10, 0.1)
    for host in HOSTS:
        left = shim_pids(bed, host)
        if left:
            print(f"cleanup: {len(left)} conmons still ran on {host} after leave: removing containers", flush=True)
            remove_containers(bed, host)
    print(f"(agent logs kept in {bed.state_dir.parent / 'test-logs' / name})", flush=True)


RUNC = "runc --root /run/shoal/runc"


def remove_containers(bed: Testbed, host: str) -> None:
    """`runc delete -f` every container the host's runc knows (its conmon then exits)."""
    script = f"for c in $({RUNC} list -q 2>/dev/null); do {RUNC} delete -f $c >/dev/null 2>&1; done"
    with contextlib.suppress(Exception):
        bed.run(host, ["sh", "-c", script], timeout=300)


def until(
    what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.02, start: float | None = None
) -> tuple[T | None, float]:
    """Poll `probe` until it returns something true or `timeout` s pass (never raises on timeout).

    Returns (value or None, seconds since `start`, a time.monotonic() value, or since the call).
    A failed probe (agent busy, restarting) counts as "not yet"; on timeout, prints what it last saw.
    """
    t0 = time.monotonic() if start is None else start
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = probe()
            if value:
                return value, time.monotonic() - t0
            last = value
        except Exception as exc:  # a probe failure (agent busy, restarting) is "not yet"
            last = exc
        if time.monotonic() >= deadline:
            print(f"  !! {what}: not reached within {timeout:g} s (last: {last!r})", flush=True)
            return None, time.monotonic() - t0
        time.sleep(interval)


def create_service(bed: Testbed, name: str, replicas: int, template: dict | None = None, **spec: Any) -> str:
    body = {"Name": name, "TaskTemplate": template or SLEEPER, "Mode": {"Replicated": {"Replicas": replicas}}, **spec}
    return api(bed, "swarm00").post("/services/create", body)["ID"]


def scale_service(bed: Testbed, service: str, replicas: int) -> None:
    current = api(bed, "swarm00").get(f"/services/{service}")
    spec = dict(current["Spec"], Mode={"Replicated": {"Replicas": replicas}})
    api(bed, "swarm00").post(f"/services/{service}/update", spec, version=current["Version"]["Index"])


def service_tasks(bed: Testbed, service: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    return api(bed, "swarm00", timeout).get("/tasks", filters={"service": [service]})


def live_tasks(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tasks the orchestrator wants running."""
    return [t for t in tasks if t["DesiredState"] == "running"]


def running_tasks(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tasks wanted running that the nodes report RUNNING."""
    return [t for t in tasks if t["DesiredState"] == "running" and t["Status"]["State"] == "running"]


def node_names(bed: Testbed) -> dict[str, str]:
    """Node ID -> hostname."""
    return {n["ID"]: n["Description"]["Hostname"] for n in api(bed, "swarm00").get("/nodes")}


def local_tasks(bed: Testbed, host: str, service_id: str | None = None) -> list[dict[str, Any]]:
    """Tasks that really run on `host`, as its own agent sees them (orphans included)."""
    tasks = api(bed, host, 10).get("/shoal/local/tasks")
    return [t for t in tasks if service_id is None or t["ServiceID"] == service_id]


def state_counts(tasks: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in tasks:
        key = f"{t['DesiredState']}/{t['Status']['State']}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def ts(text: str) -> float:
    """An RFC 3339 timestamp as seconds since the epoch (time.time()'s clock: the hosts share it)."""
    return parse_rfc3339(text) / 1e9


def rss_kb(pid: int) -> tuple[int, int]:
    """(RssAnon, RssFile + RssShmem) of a process in KB, which add up to its VmRSS; (0, 0) when it is gone."""
    fields: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("RssAnon", "RssFile", "RssShmem"):
                fields[name] = int(rest.split()[0])
    except (OSError, ValueError):
        return 0, 0
    return fields.get("RssAnon", 0), fields.get("RssFile", 0) + fields.get("RssShmem", 0)


def rss_mb(pid: int | None) -> float:
    """Resident memory of a process in MB (0 when it is gone)."""
    return sum(rss_kb(pid)) / 1024 if pid else 0.0


def ppid(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("PPid:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields) - idle) / hz, sum(fields) / hz


def process_cpu(pid: int | None) -> float:
    """utime + stime of a process in seconds (0 when it is gone)."""
    if not pid:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(bed: Testbed) -> dict[str, float]:
    """Machine CPU (busy and total seconds), each host's shoald CPU seconds, and "testbed": the CPU
    of every process in the testbed's hosts (agents, conmons, the runc calls they waited for, the
    tasks): what the shared machine's other work (other sessions' builds and tests) does not blur."""
    busy, total = _machine_cpu()
    snap = {"busy": busy, "total": total}
    for host in HOSTS:
        snap[host] = process_cpu(bed.agent_pid(host))
    _TESTBED_PROCS[id(snap)] = testbed_procs(bed)
    return snap


_TESTBED_PROCS: dict[int, dict[tuple[int, str], float]] = {}


def process_cpu_with_children(pid: int) -> tuple[str, float] | None:
    """(start time, utime + stime + cutime + cstime in s): the process and the children it waited for."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19], sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def testbed_procs(bed: Testbed) -> dict[tuple[int, str], float]:
    """(pid, start time) -> CPU seconds with waited-for children, for every process in a testbed host."""
    nets = set()
    for host in HOSTS:
        with contextlib.suppress(Exception):
            nets.add(os.readlink(f"/proc/{bed.holder_pid(host)}/ns/net"))
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "ns/net") not in nets:
                continue
        except OSError:
            continue
        got = process_cpu_with_children(int(entry.name))
        if got:
            out[(int(entry.name), got[0])] = got[1]
    return out


def testbed_cpu(before: dict[str, float], after: dict[str, float]) -> float:
    """CPU seconds the testbed's processes used between two cpu_snapshot()s (a process that ended
    in between counts only if a live one waited for it)."""
    old, new = _TESTBED_PROCS.get(id(before), {}), _TESTBED_PROCS.get(id(after), {})
    return sum(max(0.0, cpu - old.get(key, 0.0)) for key, cpu in new.items())


def cpu_per_task(before: dict[str, float], after: dict[str, float], tasks: int) -> str:
    """Machine CPU (everything: agents, conmon, runc, the kernel) per task started, in ms."""
    busy = after["busy"] - before["busy"]
    return f"machine CPU per task start: {busy / max(tasks, 1) * 1000:.0f} ms (goal <= 40 ms incl. runc's ~33 ms)"


def cpu_report(before: dict[str, float], after: dict[str, float]) -> str:
    """'machine CPU busy 3.1 of 4.4 CPU-s (2 CPUs); shoald CPU: swarm00 0.8 s, ...' between two snapshots."""
    busy, total = after["busy"] - before["busy"], after["total"] - before["total"]
    agents = ", ".join(f"{h} {after[h] - before[h]:.2f} s" for h in HOSTS if h in before and h in after)
    return f"machine CPU busy {busy:.1f} of {total:.1f} CPU-s ({os.cpu_count()} CPUs); shoald CPU: {agents}"


def shim_pids(bed: Testbed, host: str) -> list[int]:
    """The task supervisors (process driver shims, oci driver conmons) alive in `host`'s network
    namespace, whatever its agent knows: catches tasks left running behind the agent's back."""
    try:
        netns = os.readlink(f"/proc/{bed.holder_pid(host)}/ns/net")
    except OSError:
        return []
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            monitor = b"shoal.runtime.shim" in cmdline or cmdline.startswith(b"conmon\0") or b"/conmon\0" in cmdline
            if monitor and os.readlink(entry / "ns/net") == netns:
                out.append(int(entry.name))
        except OSError:
            continue
    return out


def runc_floor(bed: Testbed, host: str, n: int = 30, fifo: bool = False) -> dict[str, Any] | None:
    """The runtime alone (bench/_runc_floor.py in `host`): n sequential conmon + runc create + start
    (`fifo`: started through the exec FIFO as shoal's driver does), no shoal.
    {"n", "wall_s", "cpu_s", "proc_cpu_s"} or None (printed why)."""
    import json
    import subprocess

    script = str(Path(__file__).with_name("_runc_floor.py"))
    try:
        res = bed.run(host, [sys.executable, script, str(n), *(["fifo"] if fifo else [])], timeout=120)
    except subprocess.TimeoutExpired:
        print("  !! runc floor: timed out", flush=True)
        return None
    for line in res.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line)
    print(f"  !! runc floor: {res.stderr.strip()[-300:]}", flush=True)
    return None


def machine_note() -> str:
    """What else the shared machine is doing: the figures depend on it (2 CPUs for every host)."""
    one, five, _ = os.getloadavg()
    return f"machine: {os.cpu_count()} CPUs, load average {one:.2f} (1 min), {five:.2f} (5 min) before the run"
