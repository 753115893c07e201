"""1. Leader kill under load: a writer creates and updates services while the leader is killed -9."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from chaos._util import leader_host, leaders_seen, p50, pct
from chaos.conftest import Summary, rounds
from integration.cluster_helpers import HOSTS, api, form_cluster, start_agent, wait_for, wipe_cluster
from testbed.bed import Testbed

ROUNDS = rounds(3, 20)
COUNTER = "lk-counter"


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=3)
    yield bed
    wipe_cluster(bed, "chaos_leader_kill")


class Writer(threading.Thread):
    """One write at a time on whichever manager answers: create `lk-<n>` (0 replicas) or bump the
    counter service's label. Only acknowledged writes are recorded."""

    def __init__(self, bed: Testbed) -> None:
        super().__init__(daemon=True)
        self.bed = bed
        self.created: list[str] = []
        self.counter = 0  # last acknowledged counter value
        self.ack_times: list[float] = []
        self.errors = 0
        self.stop = threading.Event()
        self.avoid: str | None = None
        self.seq = 0

    def write(self, host: str) -> None:
        client = api(self.bed, host, 3)
        self.seq += 1
        if self.seq % 2:
            name = f"lk-{self.seq}"
            client.post(
                "/services/create",
                {
                    "Name": name,
                    "TaskTemplate": {"ContainerSpec": {"Image": "shoal/host", "Command": ["true"]}},
                    "Mode": {"Replicated": {"Replicas": 0}},
                },
            )
            self.created.append(name)
        else:
            svc = client.get(f"/services/{COUNTER}")
            spec = dict(svc["Spec"], Labels={"seq": str(self.seq)})
            client.post(f"/services/{svc['ID']}/update", spec, version=svc["Version"]["Index"])
            self.counter = self.seq

    def run(self) -> None:
        deadline = time.monotonic() + 3600
        while not self.stop.is_set() and time.monotonic() < deadline:
            for host in [h for h in HOSTS if h != self.avoid]:
                try:
                    self.write(host)
                except Exception:
                    self.errors += 1
                    continue
                self.ack_times.append(time.monotonic())
                break
            time.sleep(0.02)


def check_acknowledged(bed: Testbed, writer: Writer) -> int:
    """Every acknowledged write on every manager; returns how many are missing (summed)."""
    created, counter = list(writer.created), writer.counter
    missing = 0
    for host in HOSTS:

        def caught_up(h: str = host) -> dict | None:
            services = {s["Spec"]["Name"]: s for s in api(bed, h).get("/services")}
            seq = int((services.get(COUNTER, {}).get("Spec", {}).get("Labels") or {}).get("seq", "0"))
            return services if seq >= counter and (not created or created[-1] in services) else None

        try:
            services = wait_for(f"{host} caught up", caught_up, timeout=30)
        except AssertionError:
            services = {s["Spec"]["Name"]: s for s in api(bed, host).get("/services")}
        missing += sum(1 for name in created if name not in services)
        seq = int((services.get(COUNTER, {}).get("Spec", {}).get("Labels") or {}).get("seq", "0"))
        missing += seq < counter
    return missing


def kill_round(cluster: Testbed, writer: Writer) -> tuple[str, str, float, float]:
    """Kill the leader -9 once: (old, new, seconds to a new leader, seconds to the first acknowledged write)."""
    old = wait_for("a leader", lambda: leader_host(cluster, "swarm00") or leader_host(cluster, "swarm01"))
    others = [h for h in HOSTS if h != old]
    writer.avoid = old
    time.sleep(0.5)
    killed_at = time.monotonic()
    cluster.stop_agent(old, kill=True)
    new = wait_for(
        "a new leader",
        lambda: (h := leader_host(cluster, others[0])) and h != old and h,
        timeout=30,
        interval=0.01,
    )
    elected = time.monotonic() - killed_at
    wait_for(
        "a write after the kill",
        lambda: writer.ack_times and writer.ack_times[-1] > killed_at,
        timeout=30,
        interval=0.01,
    )
    committed = next(t for t in writer.ack_times if t > killed_at) - killed_at
    return old, new, elected, committed


def test_leader_kill_under_load(cluster: Testbed, summary: Summary) -> None:
    api(cluster, "swarm00").post(
        "/services/create",
        {
            "Name": COUNTER,
            "TaskTemplate": {"ContainerSpec": {"Image": "shoal/host", "Command": ["true"]}},
            "Mode": {"Replicated": {"Replicas": 0}},
        },
    )
    writer = Writer(cluster)
    writer.start()
    elections: list[float] = []
    commits: list[float] = []
    lost_total = 0
    failures: list[str] = []
    try:
        for round_ in range(ROUNDS):
            old, new, elected, committed = kill_round(cluster, writer)
            elections.append(elected)
            commits.append(committed)
            start_agent(cluster, old)
            wait_for(
                f"{old} reachable",
                lambda old=old, new=new: (
                    api(cluster, new).get(f"/nodes/{old}")["ManagerStatus"]["Reachability"] == "reachable"
                ),
                timeout=30,
            )
            time.sleep(0.5)
            lost = check_acknowledged(cluster, writer)
            lost_total += lost
            views = {h: sorted(leaders_seen(cluster, h)) for h in HOSTS}
            if any(len(v) != 1 for v in views.values()) or len({tuple(v) for v in views.values()}) != 1:
                failures.append(f"round {round_ + 1}: leaders seen {views}")
            print(
                f"leader kill round {round_ + 1}: killed {old}, new {new} after {elected * 1000:.0f} ms, "
                f"first commit {committed * 1000:.0f} ms, lost {lost}",
                flush=True,
            )
    finally:
        writer.stop.set()
        writer.join(10)
    acked = len(writer.created) + writer.counter // 2
    figures = (
        f"leader p50 {p50(elections) * 1000:.0f} ms p99 {pct(elections, 0.99) * 1000:.0f} ms; "
        f"commit p50 {p50(commits) * 1000:.0f} ms p99 {pct(commits, 0.99) * 1000:.0f} ms; "
        f"~{acked} acked, {lost_total} lost, {writer.errors} write errors"
    )
    print(f"leader kill: {figures}")
    summary.add("leader kill under load", ROUNDS, lost_total + len(failures), figures)
    assert lost_total == 0, f"acknowledged writes lost: {lost_total}"
    assert not failures, failures
