"""Time to program a task's VIP table: 1,000 services x 3 backends from scratch (goal <= 1 s),
then one backend changing among them (incremental), as Dataplane.program_task_lb does it.

Runs in a private network and mount namespace of its own (`unshare`): no testbed needed and
nothing outside is touched. Prints figures only.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICES, BACKENDS, ROUNDS = 1000, 3, 5


def services(changed: int | None = None, step: int = 0) -> list:
    from shoal.net.model import ServiceLB

    out = []
    for i in range(SERVICES):
        backends = [f"10.{1 + i // 250}.{i % 250}.{10 + b}" for b in range(BACKENDS)]
        if i == changed:
            backends[0] = f"10.200.{step // 250}.{step % 250 + 1}"
        vip = f"10.{1 + i // 250}.{i % 250}.2"
        out.append(
            ServiceLB(f"service{i:05d}xxxxxxxxxxxxxxx", "netaaaaaaaaaaaaaaaaaaaaaa", vip, [(80, "tcp")], backends)
        )
    return out


def run() -> None:
    sys.path.insert(0, str(ROOT / "agent" / "src"))
    from shoal.net import ns
    from shoal.net.dataplane import Dataplane

    netns_dir = "/run/netns"
    path = ns.create("bench-task", netns_dir)
    full_times, update_times = [], []
    for _ in range(ROUNDS):
        dp = Dataplane("127.0.0.1", netns_dir)  # no memory of the table: a full replacement
        t0 = time.perf_counter()
        dp.program_task_lb(path, services())
        full_times.append(time.perf_counter() - t0)
        for step in range(4):
            t0 = time.perf_counter()
            dp.program_task_lb(path, services(changed=step * 97, step=step))
            update_times.append(time.perf_counter() - t0)
    rules = subprocess.run(
        ["nsenter", f"--net={path}", "nft", "list", "table", "ip", "shoal_lb"], capture_output=True, text=True
    ).stdout
    chains = rules.count("\tchain ")
    print(f"services x backends          {SERVICES} x {BACKENDS} ({chains} chains)")
    print(f"program from scratch (s)     median {statistics.median(full_times):.3f}  max {max(full_times):.3f}")
    print(
        f"update one backend (ms)      median {1000 * statistics.median(update_times):.1f}"
        f"  max {1000 * max(update_times):.1f}"
    )
    ns.remove("bench-task", netns_dir)


if __name__ == "__main__":
    if os.environ.get("SHOAL_BENCH_INNER") != "1":
        script = f"mount -t tmpfs shoal-bench /run && exec {sys.executable} {Path(__file__).resolve()}"
        env = dict(os.environ, SHOAL_BENCH_INNER="1")
        argv = ["unshare", "--net", "--mount", "--propagation", "private", "sh", "-ec", script]
        sys.exit(subprocess.run(argv, env=env).returncode)
    run()
