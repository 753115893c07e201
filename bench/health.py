"""Health checks: CPU per check on the node, and how fast an unhealthy task leaves the VIP and mesh.

On the testbed (3 nodes, the `oci` driver, under the testbed lock):
1. CPU per check: the worker's CPU (agent process and the `runc exec` children it reaps, from
   /proc/<pid>/stat) over a window with N health-checked tasks, less the same window without
   checks, divided by the checks that ran (N x window / interval).
2. Unhealthy -> out of the VIP and the mesh: a 2-replica service (interval I, retries R); one task
   is made unhealthy (a file its check looks for); a client keeps asking (a loop inside a client
   task through the VIP, and curl from the controller namespace through the routing mesh) and the
   time from the file's creation to that task's last answer is what a client sees. Goal:
   <= I x R + 0.5 s.

Prints figures, asserts nothing. About a minute.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cluster import api, locked_main, services_cluster, wait_for, wipe

from integration.cluster_helpers import cli
from testbed import procs
from testbed.bed import Testbed
from testbed.layout import CONTROLLER_NS

MS = 1_000_000
INTERVAL_MS, RETRIES = 500, 2
CHECK = {
    "Test": ["CMD-SHELL", "[ ! -f /sick ]"],
    "Interval": INTERVAL_MS * MS,
    "Timeout": 2000 * MS,
    "Retries": RETRIES,
}
CPU_TASKS, CPU_WINDOW = 4, 10.0
PORT = 8091
HZ = os.sysconf("SC_CLK_TCK")


def agent_cpu(bed: Testbed, host: str) -> float:
    """CPU seconds of the host's agent and of the children it reaped (runc exec of each probe)."""
    pid = procs.read_pidfile(bed.host(host).agent_pidfile)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return (utime + stime + cutime + cstime) / HZ


def tasks(bed: Testbed, service: str, state: str = "running") -> list[dict[str, Any]]:
    return [
        t
        for t in api(bed, "swarm00").get("/tasks", filters={"service": [service]})
        if t["DesiredState"] == "running" and t["Status"]["State"] == state
    ]


def host_of(bed: Testbed, task: dict[str, Any]) -> str:
    return {n["ID"]: n["Description"]["Hostname"] for n in api(bed, "swarm00").get("/nodes")}[task["NodeID"]]


def create(bed: Testbed, name: str, replicas: int, hc: dict[str, Any] | None, **extra: Any) -> None:
    container: dict[str, Any] = {"Image": "shoal/hello", "StopSignal": "SIGKILL"}  # httpd as PID 1 ignores TERM
    if hc:
        container["HealthCheck"] = hc
    template = {
        "ContainerSpec": container,
        "Networks": [{"Target": "bnet"}],
        "Placement": {"Constraints": ["node.hostname==swarm01"]},
        "RestartPolicy": {"Condition": "any", "Delay": 5_000 * MS},
    }
    body = {"Name": name, "TaskTemplate": template, "Mode": {"Replicated": {"Replicas": replicas}}, **extra}
    api(bed, "swarm00").post("/services/create", body)
    wait_for(f"{name} {replicas}/{replicas} running", lambda: len(tasks(bed, name)) == replicas, timeout=60)


def remove(bed: Testbed, name: str) -> None:
    sid = api(bed, "swarm00").get(f"/services/{name}")["ID"]
    api(bed, "swarm00").delete(f"/services/{name}")

    def gone() -> bool:
        live = ("starting", "running")
        return not [
            t for t in api(bed, "swarm00").get("/tasks") if t["ServiceID"] == sid and t["Status"]["State"] in live
        ]

    wait_for(f"{name} gone", gone, timeout=30)
    time.sleep(1)


def cpu_per_check(bed: Testbed) -> None:
    create(bed, "idle", CPU_TASKS, None)
    time.sleep(2)
    before = agent_cpu(bed, "swarm01")
    time.sleep(CPU_WINDOW)
    baseline = agent_cpu(bed, "swarm01") - before
    remove(bed, "idle")
    create(bed, "checked", CPU_TASKS, CHECK)
    time.sleep(2)
    before = agent_cpu(bed, "swarm01")
    time.sleep(CPU_WINDOW)
    checked = agent_cpu(bed, "swarm01") - before
    checks = CPU_TASKS * CPU_WINDOW / (INTERVAL_MS / 1000)
    print(f"agent CPU over {CPU_WINDOW:g} s, {CPU_TASKS} tasks: {baseline * 1000:.0f} ms without checks, "
          f"{checked * 1000:.0f} ms with a check every {INTERVAL_MS} ms each")  # fmt: skip
    print(f"CPU per health check (runc exec in the task, worker side): {(checked - baseline) / checks * 1000:.1f} ms")
    remove(bed, "checked")


def uptime(bed: Testbed | None = None) -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def time_to_leave(bed: Testbed) -> None:
    create(bed, "web", 2, CHECK, EndpointSpec={"Ports": [{"TargetPort": 8080, "PublishedPort": PORT}]})
    create(bed, "client", 1, None)
    sick = sorted(tasks(bed, "web"), key=lambda t: t["Slot"])[0]
    sick_ips = {a.split("/")[0] for att in sick["NetworksAttachments"] for a in att["Addresses"]}
    client = tasks(bed, "client")[0]
    # the client task's loop: 0.01 s clock (/proc/uptime: the machine's, as this process reads it)
    get = "busybox timeout 2 wget -q -O - http://web:8080/ 2>/dev/null || echo FAILED"
    loop = (
        f"i=0; while [ $i -lt 120 ]; do a=$({get}); "
        'read up rest < /proc/uptime; echo "$up $a"; i=$((i+1)); sleep 0.05; done'
    )
    client_host = host_of(bed, client)
    vip = subprocess.Popen(
        [*bed.exec_argv(client_host, ["shoal", "exec", client["ID"][:12], "sh", "-c", loop])],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    t0 = uptime()
    rc, _, err = cli(bed, host_of(bed, sick), "exec", sick["ID"][:12], "sh", "-c", ": > /sick")
    t_exec = uptime() - t0
    mesh: list[tuple[float, str]] = []
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        res = subprocess.run(
            ["ip", "netns", "exec", CONTROLLER_NS, "curl", "-s", "--max-time", "1",
             f"http://{bed.host('swarm00').address}:{PORT}/"],
            capture_output=True, text=True, timeout=5,
        )  # fmt: skip
        mesh.append((uptime(), res.stdout.strip() or "FAILED"))
        time.sleep(0.02)
    out, _ = vip.communicate(timeout=60)
    through_vip = [(float(line.split(" ", 1)[0]), line.split(" ", 1)[1]) for line in out.splitlines() if " " in line]

    def report(name: str, answers: list[tuple[float, str]]) -> None:
        by_sick = [t for t, a in answers if a.removeprefix("Hello World! from ") in sick_ips and t >= t0]
        failed = sum(1 for t, a in answers if a == "FAILED" and t >= t0)
        last = max(by_sick, default=t0) - t0
        print(f"{name}: last answer from the unhealthy task {last:.2f} s after it turned unhealthy "
              f"({len([a for a in answers if a[0] >= t0])} requests after, {failed} failed)")  # fmt: skip

    goal = INTERVAL_MS / 1000 * RETRIES + 0.5
    print(f"check: interval {INTERVAL_MS} ms, retries {RETRIES}: goal <= {goal:.1f} s (marking it took {t_exec:.2f} s)")
    report("through the VIP (client task)", through_vip)
    report("through the routing mesh (controller)", mesh)
    if rc != 0:
        print(f"(exec failed: {err.strip()})")


def main() -> None:
    bed = services_cluster(managers=1, driver="oci")
    try:
        api(bed, "swarm00").post("/networks/create", {"Name": "bnet", "Driver": "overlay"})
        cpu_per_check(bed)
        time_to_leave(bed)
    finally:
        wipe(bed, "bench_health")


if __name__ == "__main__":
    locked_main(main)
