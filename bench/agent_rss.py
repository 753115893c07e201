"""Resident memory of idle agents: one manager and two workers (goal <= 40 MB each)."""

from __future__ import annotations

import time
from pathlib import Path

from _cluster import HOSTS, fresh_cluster, locked_main, teardown
from _figures import record


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    bed = fresh_cluster(managers=1)
    try:
        time.sleep(5)  # idle: heartbeats only
        for host in HOSTS:
            pid = bed.agent_pid(host)
            role = "manager" if host == "swarm00" else "worker"
            record(f"{host} ({role})", rss_mb(pid), unit="MB", goal=40.0)
            print(f"{host} ({role}): shoald RSS {rss_mb(pid):.1f} MB (goal <= 40 MB)")
    finally:
        teardown(bed)


if __name__ == "__main__":
    locked_main(main)
