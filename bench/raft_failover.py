"""Kill the leader's agent (-9) 20 times under a steady writer.

Prints p50/p99 of the time to a new leader and to the first acknowledged write after the kill, and
how many acknowledged writes were lost (must be 0). Goal p99 <= 1 s (SwarmKit's defaults: 10-19 s).
"""

from __future__ import annotations

import statistics
import sys
import threading
import time

from _cluster import HOSTS, api, fresh_cluster, locked_main, start_agent, teardown, wait_for

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
TARGET = "swarm02"  # the node whose labels carry the writes


def leader_host(bed, ask: str) -> str | None:
    info = api(bed, ask, 2).get("/info")["Swarm"].get("Raft") or {}
    addr = info.get("Leader") or ""
    for host in HOSTS:
        if addr.startswith(bed.host(host).address + ":"):
            return host
    return None


class Writer(threading.Thread):
    """One write at a time (node label w<n>), on whichever manager answers; records acknowledged ones."""

    def __init__(self, bed) -> None:
        super().__init__(daemon=True)
        self.bed = bed
        self.acked: list[str] = []
        self.ack_times: list[float] = []
        self.stop = threading.Event()
        self.avoid: str | None = None
        self.seq = 0

    def run(self) -> None:
        while not self.stop.is_set():
            for host in [h for h in HOSTS if h != self.avoid]:
                try:
                    client = api(self.bed, host, 3)
                    node = client.get(f"/nodes/{TARGET}")
                    key = f"w{self.seq}"
                    spec = dict(node["Spec"], Labels={**node["Spec"]["Labels"], key: "1"})
                    client.post(f"/nodes/{node['ID']}/update", spec, version=node["Version"]["Index"])
                except Exception:
                    continue
                self.acked.append(key)
                self.ack_times.append(time.monotonic())
                self.seq += 1
                break
            time.sleep(0.02)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def kill_round(bed, writer: Writer) -> tuple[str, str, float, float, int]:
    """Kill the leader once: (old, new, seconds to new leader, seconds to first commit, writes lost)."""
    old = wait_for("a leader", lambda: leader_host(bed, "swarm00") or leader_host(bed, "swarm01"))
    others = [h for h in HOSTS if h != old]
    writer.avoid = old
    time.sleep(0.3)
    killed_at = time.monotonic()
    bed.stop_agent(old, kill=True)
    new = wait_for(
        "a new leader", lambda: (h := leader_host(bed, others[0])) and h != old and h, timeout=30, interval=0.005
    )
    elected = time.monotonic() - killed_at
    wait_for(
        "a write after the kill",
        lambda: writer.ack_times and writer.ack_times[-1] > killed_at,
        timeout=30,
        interval=0.005,
    )
    committed = next(t for t in writer.ack_times if t > killed_at) - killed_at
    start_agent(bed, old)
    wait_for(
        f"{old} reachable",
        lambda: api(bed, new).get(f"/nodes/{old}")["ManagerStatus"]["Reachability"] == "reachable",
        timeout=30,
    )
    acked = list(writer.acked)
    lost = 0
    for host in HOSTS:
        labels = wait_for(
            f"{host} caught up",
            lambda h=host: (lab := api(bed, h).get(f"/nodes/{TARGET}")["Spec"]["Labels"]) and acked[-1] in lab and lab,
            timeout=30,
        )
        lost += sum(1 for k in acked if k not in labels)
    return old, new, elected, committed, lost


def main() -> None:
    bed = fresh_cluster(managers=3)
    writer = Writer(bed)
    writer.start()
    elections, commits, lost_total = [], [], 0
    try:
        for round_ in range(ROUNDS):
            old, new, elected, committed, lost = kill_round(bed, writer)
            elections.append(elected)
            commits.append(committed)
            lost_total += lost
            print(
                f"round {round_ + 1:2d}: killed {old}, new leader {new} after {elected * 1000:.0f} ms, "
                f"first commit after {committed * 1000:.0f} ms, lost {lost}",
                flush=True,
            )
    finally:
        writer.stop.set()
        writer.join(5)
        teardown(bed)
    print(f"\nleader kills: {ROUNDS}, acknowledged writes: {len(writer.acked)}, lost: {lost_total}")
    print(
        f"failover as a writing client sees it (kill -9 of the leader -> its next write acknowledged): "
        f"p50 {statistics.median(commits) * 1000:.0f} ms, p99 {pct(commits, 0.99) * 1000:.0f} ms, "
        f"max {max(commits) * 1000:.0f} ms (goal p99 <= 1000 ms; SwarmKit defaults 10-19 s)"
    )
    print(
        f"  of which until a new leader was elected: p50 {statistics.median(elections) * 1000:.0f} ms, "
        f"p99 {pct(elections, 0.99) * 1000:.0f} ms, max {max(elections) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    locked_main(main)
