"""What a task costs its node in memory (oci driver: conmon + runc), and the worker agent's RSS.

On a 1 manager + 2 workers cluster, a service `shoal/host sleep 3600` constrained to swarm01:
VmRSS of swarm01's shoald with 0, 1, 100 and 300 tasks, and after the service is removed; each
task's monitor (conmon, the parent of the task's process) and the tasks themselves as RSS and PSS
sums (RSS counts shared pages once per process). The figure: PSS a task adds on its node besides
its own process = (shoald growth + its conmon) per task (goal <= 1 MB; Docker here: 2.6 MB;
the process driver's Python supervisor: ~4.45 MB). Figures only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from _cluster import (
    api,
    create_service,
    local_tasks,
    locked_main,
    machine_note,
    ppid,
    rss_mb,
    running_tasks,
    scale_service,
    service_tasks,
    services_cluster,
    until,
    wipe,
)
from _figures import record

WORKER, TASKS, MANY = "swarm01", 100, 300
SETTLE = 3.0  # seconds after a change before sampling (the agent's loops go idle)


def pss_mb(pid: int | None) -> float:
    if not pid:
        return 0.0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def agent_mb(bed: Any) -> float:
    """The agent's VmRSS: the largest of three samples 0.5 s apart (it moves with garbage collection)."""
    samples = []
    for _ in range(3):
        samples.append(rss_mb(bed.agent_pid(WORKER)))
        time.sleep(0.5)
    return max(samples)


def converge(bed: Any, service: str, n: int) -> bool:
    def probe() -> bool:
        store = running_tasks(service_tasks(bed, service))
        return len(store) == n and len(local_tasks(bed, WORKER, service)) == n

    ok, _ = until(f"{n} tasks RUNNING on {WORKER}", probe, 120, 0.1)
    return bool(ok)


def main() -> None:
    print(f"cluster: 1 manager + 2 workers, oci driver; measured: {WORKER}'s shoald (a worker) and its conmons")
    print(machine_note(), flush=True)
    bed = services_cluster(managers=1, driver="oci", heartbeat=3.0)  # no node loss faked by the machine's load
    try:
        time.sleep(SETTLE)
        idle = agent_mb(bed)
        print(f"  0 tasks:   shoald RSS {idle:.1f} MB")
        template = {
            "ContainerSpec": {"Image": "shoal/host", "Command": ["sleep", "3600"], "StopSignal": "SIGKILL"},
            "RestartPolicy": {"Condition": "any", "Delay": 0},
            "Placement": {"Constraints": [f"node.hostname=={WORKER}"]},
        }
        service = create_service(bed, "rss", 1, template)
        if not converge(bed, service, 1):
            return
        time.sleep(SETTLE)
        one = agent_mb(bed)
        print(f"  1 task:    shoald RSS {one:.1f} MB")
        scale_service(bed, service, TASKS)
        if not converge(bed, service, TASKS):
            return
        time.sleep(SETTLE)
        full = agent_mb(bed)
        tasks = local_tasks(bed, WORKER, service)
        pids = [t["Pid"] for t in tasks if t.get("Pid")]
        shims = [p for p in (ppid(pid) for pid in pids) if p]
        shim_rss, shim_pss = sum(rss_mb(p) for p in shims), sum(pss_mb(p) for p in shims)
        task_rss, task_pss = sum(rss_mb(p) for p in pids), sum(pss_mb(p) for p in pids)
        print(f"  {TASKS} tasks: shoald RSS {full:.1f} MB (goal <= 60 MB)")
        record("shoald RSS", [idle, one, full], unit="MB")
        print(
            f"  per extra task in shoald: {(full - one) / (TASKS - 1) * 1024:.0f} KB from 1 to {TASKS} tasks, "
            f"{(full - idle) / TASKS * 1024:.0f} KB from 0 (goal <= 300 KB)"
        )
        print(
            f"  {len(shims)} conmons: RSS sum {shim_rss:.0f} MB ({shim_rss / max(len(shims), 1):.1f} MB each), "
            f"PSS sum {shim_pss:.0f} MB ({shim_pss / max(len(shims), 1):.2f} MB each)"
        )
        print(
            f"  {len(pids)} task processes (sleep): RSS sum {task_rss:.0f} MB, PSS sum {task_pss:.0f} MB; "
            f"node total for {TASKS} tasks (shoald growth + shims + tasks, PSS): "
            f"{full - idle + shim_pss + task_pss:.0f} MB"
        )
        print(
            f"  PSS per task besides its own process (shoald growth + its conmon): "
            f"{(full - idle + shim_pss) / TASKS:.2f} MB (goal <= 1 MB; Docker here: 2.6 MB)"
        )
        record("PSS per task besides its process", (full - idle + shim_pss) / TASKS, unit="MB", goal=1.0)
        record("conmon PSS each", shim_pss / max(len(shims), 1), unit="MB")
        scale_service(bed, service, MANY)
        if converge(bed, service, MANY):
            time.sleep(SETTLE)
            many = agent_mb(bed)
            record(f"shoald RSS, {MANY} tasks", many, unit="MB")
            print(f"  {MANY} tasks: shoald RSS {many:.1f} MB ({(many - idle) / MANY * 1024:.0f} KB per task from 0)")
        api(bed, "swarm00").delete(f"/services/{service}")
        _, elapsed = until(f"no task on {WORKER}", lambda: not local_tasks(bed, WORKER), 60, 0.1)
        time.sleep(SETTLE)
        left = [p for p in shims if rss_mb(p)]
        after = agent_mb(bed)
        print(
            f"  service removed: {WORKER} ran no task after {elapsed:.1f} s, {len(left)} conmons still alive; "
            f"shoald RSS {after:.1f} MB"
        )
    finally:
        wipe(bed, "bench_task_rss")


if __name__ == "__main__":
    locked_main(main)
