"""6. Soak: bounded churn (scale, kill tasks, update services, create/remove networks), then no leaks
(namespaces, links, nft tables, VXLAN FDB and permanent neighbour entries, cgroups, shim processes,
agent fds) and the agents' RSS growth."""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos._util import HELLO, SLEEPER, converged, set_replicas
from chaos.conftest import LONG, Summary
from integration.cluster_helpers import HOSTS, api, form_cluster, wait_for, wipe_cluster
from testbed.bed import Testbed

# CHAOS_SOAK_SECONDS overrides the length (e.g. 600 to see where memory levels off); the churn runs for
# that long. Its op count is bounded too (network-safety rule), by what the pacing allows: at most one op
# per MIN_PAUSE, so the bound can never end the run before the time does.
SECONDS = int(os.environ.get("CHAOS_SOAK_SECONDS") or (1800 if LONG else 120))
SAMPLE_PERIOD = 30.0  # agents' heap sampled this often during the churn
MIN_PAUSE = 0.05
# The manager's heap (RssAnon) must stop growing: in a soak long enough to have HEAP_SLOPE_MIN_SAMPLES
# samples in its last third (>= 15 min), the least-squares slope over that third stays under
# HEAP_SLOPE_BOUND. Measured (tests/chaos/README.md): the heap levels off after ~2 min and then
# wanders by ±0.4 MB, which reads as up to +0.3 MB/min over a short window; the growth issue 10
# reported was +1 MB/min. The bound sits between the two.
HEAP_SLOPE_MIN_SAMPLES = 10
HEAP_SLOPE_BOUND = 0.5  # MB/min
MAX_OPS = int(SECONDS / MIN_PAUSE) + 1
PORT = 8083


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=1)
    yield bed
    wipe_cluster(bed, "chaos_soak")


def host_out(bed: Testbed, host: str, script: str) -> str:
    return bed.run(host, ["sh", "-c", script], timeout=30).stdout


def shims() -> int:
    """Task monitors: the oci driver's conmons."""
    count = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == "conmon":
                    count += 1
    return count


def rss_kb(pid: int | None) -> dict[str, int]:
    """The agent's resident memory by kind (RssAnon, RssFile, RssShmem) in kB."""
    status = Path(f"/proc/{pid}/status").read_text() if pid else ""
    return {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines() if line.startswith("Rss")}


NFT_DUMP = (
    'echo "== host"; nft -j list ruleset; '
    'for ns in $(ip netns list | cut -d" " -f1); do echo "== $ns"; ip netns exec "$ns" nft -j list ruleset; done'
)


def nft_item(kind: str, body: dict) -> str:
    """One table, chain, rule, set or map as a comparable line: no handles (they count up for ever)
    and no counter values (traffic); set and map elements sorted."""
    body = {k: v for k, v in body.items() if k != "handle"}
    if kind == "rule":
        body["expr"] = [{"counter": None} if "counter" in e else e for e in body.get("expr", [])]
    if "elem" in body:
        body["elem"] = sorted(json.dumps(e, sort_keys=True) for e in body["elem"])
    return f"{kind} {json.dumps(body, sort_keys=True)}"


def nft_ruleset(bed: Testbed, host: str) -> list[str]:
    """Every table, chain, rule, set and map (with its elements) in the host and in each of its
    network namespaces, one line each, prefixed by the namespace."""
    out: list[str] = []
    where = "host"
    for line in host_out(bed, host, NFT_DUMP).splitlines():
        if line.startswith("== "):
            where = line[3:]
        elif line.strip():
            for item in json.loads(line).get("nftables", []):
                for kind, body in item.items():
                    if kind != "metainfo":
                        out.append(f"{where} {nft_item(kind, body)}")
    return sorted(out)


def resources(bed: Testbed) -> dict[str, object]:
    out: dict[str, object] = {"shims": shims()}
    for host in HOSTS:
        pid = bed.agent_pid(host)
        kb = rss_kb(pid)
        out[host] = {
            "netns": sorted(host_out(bed, host, "ip netns list | cut -d' ' -f1").split()),
            "links": sorted(host_out(bed, host, "ip -o link show | cut -d: -f2 | cut -d@ -f1").split()),
            "nft": nft_ruleset(bed, host),
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


def anon_mb(bed: Testbed) -> list[float]:
    return [round(rss_kb(bed.agent_pid(host)).get("RssAnon", 0) / 1024, 1) for host in HOSTS]


def slope_mb_per_min(values: list[float], period: float = SAMPLE_PERIOD) -> float:
    """Least-squares slope of heap samples taken every `period` seconds, in MB per minute."""
    minutes = [i * period / 60 for i in range(len(values))]
    return statistics.linear_regression(minutes, values).slope


def churn(
    bed: Testbed, rng: random.Random, deadline: float, samples: list[list[float]]
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
        time.sleep(rng.uniform(MIN_PAUSE, 0.4))
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
    samples: list[list[float]] = []
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
                and r["shims"] <= before["shims"]
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
    # fewer is no leak: the baseline can still count an earlier module's tasks on their way out (CI saw 4 -> 0)
    if final["shims"] > before["shims"]:
        leaks.append(f"shim processes {before['shims']} -> {final['shims']}")
    growth = []
    for h in HOSTS:
        b, a = before[h], final[h]  # type: ignore[index]
        for key in ("netns", "links", "nft", "fdb_neigh", "cgroups"):
            if a[key] != b[key]:
                added = sorted((Counter(a[key]) - Counter(b[key])).elements())  # duplicates count too
                gone = sorted((Counter(b[key]) - Counter(a[key])).elements())
                leaks.append(f"{h} {key}: +{len(added)} {added[:5]} -{len(gone)} {gone[:5]}")
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
    last_third = samples[len(samples) - len(samples) // 3 :]
    slopes = [slope_mb_per_min([row[i] for row in last_third]) if len(last_third) >= 2 else 0.0 for i in range(3)]
    for i, host in enumerate(HOSTS):  # where the heap levels off tells growth from a leak
        print(
            f"soak: {host} heap every {SAMPLE_PERIOD:.0f} s (MB): {[row[i] for row in samples]}; "
            f"slope over the last third {slopes[i]:+.2f} MB/min"
        )
    # a long soak: the manager's heap must have levelled off
    if len(last_third) >= HEAP_SLOPE_MIN_SAMPLES and slopes[0] > HEAP_SLOPE_BOUND:
        leaks.append(
            f"manager heap still growing {slopes[0]:+.2f} MB/min over the last {len(last_third)} samples "
            f"(bound {HEAP_SLOPE_BOUND} MB/min): {[row[0] for row in last_third]}"
        )
    print(f"soak: {n} ops in {took:.0f} s {ops}; errors {len(errors)} {errors[:5]}; RSS {'; '.join(growth)}")
    summary.add(
        "soak churn",
        n,
        len(leaks) + len(errors),
        f"{took:.0f} s {ops}; RSS {'; '.join(growth)}",
    )
    assert not leaks, leaks
    assert not errors, errors[:10]
