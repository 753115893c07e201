"""6. Soak: bounded churn (scale, kill tasks, update services, create/remove networks), then no leaks
(namespaces, links, nft tables, VXLAN FDB and permanent neighbour entries, cgroups, shim processes,
agent fds) and the agents' RSS growth."""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos._util import HELLO, SLEEPER, converged, set_replicas
from chaos.conftest import LONG, Summary
from integration.cluster_helpers import HOSTS, api, form_cluster, wait_for, wipe_cluster
from testbed.bed import Testbed

# CHAOS_SOAK_SECONDS overrides the length (e.g. 600 to see where memory levels off)
SECONDS = int(os.environ.get("CHAOS_SOAK_SECONDS") or (1800 if LONG else 120))
SAMPLE_PERIOD = 30.0  # agents' heap sampled this often during the churn
MAX_OPS = 20000 if LONG else 1500
PORT = 8083


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=1)
    yield bed
    wipe_cluster(bed, "chaos_soak")


def host_out(bed: Testbed, host: str, script: str) -> str:
    return bed.run(host, ["sh", "-c", script], timeout=30).stdout


def shims() -> int:
    """Task monitors: the process driver's Python shims and the oci driver's conmons."""
    count = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"shoal.runtime.shim" in cmdline or Path(f"/proc/{pid}/comm").read_text().strip() == "conmon":
                    count += 1
    return count


def rss_kb(pid: int | None) -> dict[str, int]:
    """The agent's resident memory by kind (RssAnon, RssFile, RssShmem) in kB."""
    status = Path(f"/proc/{pid}/status").read_text() if pid else ""
    return {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines() if line.startswith("Rss")}


def resources(bed: Testbed) -> dict[str, object]:
    out: dict[str, object] = {"shims": shims()}
    for host in HOSTS:
        pid = bed.agent_pid(host)
        kb = rss_kb(pid)
        out[host] = {
            "netns": sorted(host_out(bed, host, "ip netns list | cut -d' ' -f1").split()),
            "links": sorted(host_out(bed, host, "ip -o link show | cut -d: -f2 | cut -d@ -f1").split()),
            "nft": sorted(host_out(bed, host, "nft list tables").splitlines()),
            "fdb_neigh": sorted(
                host_out(
                    bed,
                    host,
                    "for ns in $(ip netns list | cut -d' ' -f1); do "
                    'echo "$ns fdb $(ip netns exec $ns bridge fdb show 2>/dev/null | grep -c dst)"; '
                    'echo "$ns neigh $(ip netns exec $ns ip neigh show nud permanent 2>/dev/null | wc -l)"; done',
                ).splitlines()
            ),
            "cgroups": sorted(host_out(bed, host, "ls /sys/fs/cgroup/shoal 2>/dev/null || true").split()),
            "fds": len(os.listdir(f"/proc/{pid}/fd")) if pid else 0,
            "rss_kb": kb.get("RssAnon", 0) + kb.get("RssFile", 0) + kb.get("RssShmem", 0),
            # the heap alone: managers also map their Raft journal file (pages the kernel may reclaim)
            "anon_kb": kb.get("RssAnon", 0),
        }
    return out


def clean_all(bed: Testbed, keep_networks: set[str]) -> None:
    client = api(bed, "swarm00")
    for svc in client.get("/services"):
        with contextlib.suppress(Exception):
            client.delete(f"/services/{svc['ID']}")
    wait_for("no tasks left", lambda: not client.get("/tasks"), timeout=60)
    wait_for("no local tasks", lambda: all(not api(bed, h).get("/shoal/local/tasks") for h in HOSTS), timeout=60)
    for net in client.get("/networks"):
        if net["Name"].startswith("soak") and net["Name"] not in keep_networks:
            with contextlib.suppress(Exception):
                client.delete(f"/networks/{net['Id']}")


def overlay_leftovers(bed: Testbed) -> dict[str, list[str]]:
    """Per host, the task namespaces, overlay sandboxes and ingress sandbox still present."""
    out = {}
    for host in HOSTS:
        names = host_out(bed, host, "ip netns list | cut -d' ' -f1").split()
        out[host] = [n for n in names if n.startswith(("1-", "task-")) or n == "ingress_sbox"]
    return out


def dataplane_idle(bed: Testbed) -> float:
    """With no service left, every node drops its overlay and ingress sandboxes: the baseline is
    taken only then (a baseline caught mid-teardown reads as a leak later). Returns how long it took."""
    started = time.monotonic()
    while any((left := overlay_leftovers(bed)).values()):
        assert time.monotonic() - started < 30, f"namespaces left 30 s after the last task went: {left}"
        time.sleep(0.2)
    return time.monotonic() - started


def create_services(bed: Testbed) -> None:
    client = api(bed, "swarm00")
    client.post(
        "/services/create",
        {
            "Name": "soakweb",
            "TaskTemplate": {**HELLO, "Networks": [{"Target": "soaknet"}]},
            "Mode": {"Replicated": {"Replicas": 2}},
            "EndpointSpec": {"Ports": [{"TargetPort": 8080, "PublishedPort": PORT}]},
        },
    )
    client.post(
        "/services/create",
        {"Name": "soaksleep", "TaskTemplate": SLEEPER, "Mode": {"Replicated": {"Replicas": 2}}},
    )


def anon_mb(bed: Testbed) -> list[int]:
    return [rss_kb(bed.agent_pid(host)).get("RssAnon", 0) // 1024 for host in HOSTS]


def churn(
    bed: Testbed, rng: random.Random, deadline: float, samples: list[list[int]]
) -> tuple[int, dict[str, int], list[str]]:
    ops: dict[str, int] = {}
    errors: list[str] = []
    n = 0
    nets: list[str] = []
    next_sample = time.monotonic()
    while time.monotonic() < deadline and n < MAX_OPS:
        if time.monotonic() >= next_sample:
            samples.append(anon_mb(bed))
            next_sample += SAMPLE_PERIOD
        n += 1
        op = rng.choice(["scale", "scale", "kill", "update", "net"])
        try:
            if op == "scale":
                set_replicas(bed, rng.choice(["soakweb", "soaksleep"]), rng.randint(0, 5))
            elif op == "kill":
                host = rng.choice(HOSTS)
                tasks = api(bed, host).get("/shoal/local/tasks")
                if tasks:
                    api(bed, host).post(f"/shoal/local/tasks/{rng.choice(tasks)['ID']}/kill")
            elif op == "update":
                name = rng.choice(["soakweb", "soaksleep"])
                svc = api(bed, "swarm00").get(f"/services/{name}")
                spec = svc["Spec"]
                spec["TaskTemplate"]["ContainerSpec"]["Env"] = [f"ROUND={n}"]
                api(bed, "swarm00").post(f"/services/{name}/update", spec, version=svc["Version"]["Index"])
            elif op == "net":
                if nets and (len(nets) > 3 or rng.random() < 0.5):
                    api(bed, "swarm00").delete(f"/networks/{nets.pop(0)}")
                else:
                    name = f"soak-{n}"
                    api(bed, "swarm00").post("/networks/create", {"Name": name, "Driver": "overlay"})
                    nets.append(name)
            ops[op] = ops.get(op, 0) + 1
        except Exception as exc:  # 409s from racing the orchestrator are expected now and then
            if getattr(exc, "status", None) != 409:
                errors.append(f"{op}: {exc}")
        time.sleep(rng.uniform(0.05, 0.4))
    return n, ops, errors


def test_soak_churn_leaves_nothing_behind(cluster: Testbed, summary: Summary) -> None:
    bed = cluster
    client = api(bed, "swarm00")
    client.post("/networks/create", {"Name": "soaknet", "Driver": "overlay", "Attachable": True})
    # warm-up: every kind of object once, then removed, so that lazily made objects are in the baseline
    create_services(bed)
    converged(bed, "soakweb", 2)
    converged(bed, "soaksleep", 2)
    clean_all(bed, {"soaknet"})
    idle = dataplane_idle(bed)
    before = resources(bed)
    create_services(bed)
    rng = random.Random(7)
    started = time.monotonic()
    samples: list[list[int]] = []
    n, ops, errors = churn(bed, rng, started + SECONDS, samples)
    took = time.monotonic() - started
    set_replicas(bed, "soakweb", 2)
    converged(bed, "soakweb", 2, timeout=60)
    clean_all(bed, {"soaknet"})
    time.sleep(5)
    with contextlib.suppress(AssertionError):  # the differences are reported below
        wait_for(
            "resources back to the baseline",
            lambda: (
                (r := resources(bed))
                and r["shims"] == before["shims"]
                and all(
                    r[h][k] == before[h][k]  # type: ignore[index]
                    for h in HOSTS
                    for k in ("netns", "links", "nft", "fdb_neigh", "cgroups")
                )
                and r
            ),
            timeout=30,
        )
    leaks: list[str] = []
    final = resources(bed)
    if final["shims"] != before["shims"]:
        leaks.append(f"shim processes {before['shims']} -> {final['shims']}")
    growth = []
    for h in HOSTS:
        b, a = before[h], final[h]  # type: ignore[index]
        for key in ("netns", "links", "nft", "fdb_neigh", "cgroups"):
            if a[key] != b[key]:
                leaks.append(f"{h} {key}: +{sorted(set(a[key]) - set(b[key]))} -{sorted(set(b[key]) - set(a[key]))}")
        if a["fds"] > b["fds"] + 10:
            leaks.append(f"{h} agent fds {b['fds']} -> {a['fds']}")
        pct_ = (a["rss_kb"] - b["rss_kb"]) * 100 / max(b["rss_kb"], 1)
        anon = (a["anon_kb"] - b["anon_kb"]) * 100 / max(b["anon_kb"], 1)
        growth.append(
            f"{h} {b['rss_kb'] // 1024}->{a['rss_kb'] // 1024} MB ({pct_:+.0f}%, "
            f"anon {b['anon_kb'] // 1024}->{a['anon_kb'] // 1024} MB {anon:+.0f}%)"
        )
    for leak in leaks:
        print(f"soak leak: {leak}")
    print(f"soak: dataplane idle {idle:.1f} s after the warm-up")
    for i, host in enumerate(HOSTS):  # where the heap levels off tells growth from a leak
        print(f"soak: {host} heap every {SAMPLE_PERIOD:.0f} s (MB): {[row[i] for row in samples]}")
    print(f"soak: {n} ops in {took:.0f} s {ops}; errors {len(errors)} {errors[:5]}; RSS {'; '.join(growth)}")
    summary.add(
        "soak churn",
        n,
        len(leaks) + len(errors),
        f"{took:.0f} s {ops}; RSS {'; '.join(growth)}",
    )
    assert not leaks, leaks
    assert not errors, errors[:10]
