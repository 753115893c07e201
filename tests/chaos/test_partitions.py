"""2. Partitions (`bed.set_link`): minority manager, cut leader, cut worker, majority of managers cut."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from chaos._util import HELLO, SLEEPER, converged, create_service, leader_host, leaders_seen, local_tasks
from chaos.conftest import Summary
from integration.cluster_helpers import HOSTS, api, curl, form_cluster, leader_of, nodes, wait_for, wipe_cluster
from shoal.cli.errors import APIError
from testbed.bed import Testbed


@pytest.fixture
def managers3(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=3)
    try:
        yield bed
    finally:
        for host in HOSTS:
            bed.set_link(host, up=True)
        wipe_cluster(bed, "chaos_partitions_managers")


@pytest.fixture
def managers1(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=1)
    try:
        yield bed
    finally:
        for host in HOSTS:
            bed.set_link(host, up=True)
        wipe_cluster(bed, "chaos_partitions_worker")


def label_write(bed: Testbed, via: str, target: str, key: str, timeout: float = 10) -> None:
    client = api(bed, via, timeout)
    node = client.get(f"/nodes/{target}")
    spec = dict(node["Spec"], Labels={**node["Spec"]["Labels"], key: "1"})
    client.post(f"/nodes/{target}/update", spec, version=node["Version"]["Index"])


def refuse_time(bed: Testbed, host: str, key: str) -> tuple[float, str]:
    """Seconds until a write on `host` is refused, and the message (AssertionError if it is accepted)."""
    started = time.monotonic()
    try:
        label_write(bed, host, host, key, timeout=10)
    except APIError as exc:
        return time.monotonic() - started, f"{exc.status} {exc.message}"
    raise AssertionError(f"a write on the partitioned {host} was accepted")


def test_manager_partitions(managers3: Testbed, summary: Summary) -> None:
    bed = managers3
    failures: list[str] = []
    figures: list[str] = []
    # a) a follower cut off: refuses writes with "no quorum" (not a hang: the client gives up after 10 s),
    # the majority goes on; how fast is a printed figure, not asserted
    leader = wait_for("a leader", lambda: leader_of(bed, "swarm00"))
    cut = next(h for h in HOSTS if h != leader)
    others = [h for h in HOSTS if h != cut]
    bed.set_link(cut, up=False)
    try:
        time.sleep(1.5)
        took, message = refuse_time(bed, cut, "minority")
        figures.append(f"minority refusal {took * 1000:.0f} ms")
        if "no quorum" not in message:
            failures.append(f"minority {cut}: refused after {took:.2f} s with {message!r}")
        assert api(bed, cut).get("/nodes")  # reads still answer
        label_write(bed, others[0], others[1], "majority")
    finally:
        bed.set_link(cut, up=True)
    wait_for(f"{cut} catches up", lambda: "majority" in nodes(bed, cut)[others[1]]["Spec"]["Labels"], timeout=20)
    # b) the leader cut off: the others elect a new one, the old one steps down; heal: one leader, same state
    leader = wait_for("a leader", lambda: leader_host(bed, others[0]))
    rest = [h for h in HOSTS if h != leader]
    bed.set_link(leader, up=False)
    started = time.monotonic()
    try:
        new = wait_for(
            "a new leader among the rest",
            lambda: (h := leader_host(bed, rest[0])) and h != leader and h,
            timeout=20,
            interval=0.05,
        )
        figures.append(f"cut leader -> new leader {(time.monotonic() - started) * 1000:.0f} ms")
        label_write(bed, new, rest[1], "after-cut")
        stepped = wait_for(
            f"{leader} steps down",
            lambda: leader_host(bed, leader) != leader or None,
            timeout=10,
        )
        del stepped
        took, message = refuse_time(bed, leader, "old-leader")
        if "no quorum" not in message:
            failures.append(f"old leader {leader}: {message!r}")
    finally:
        bed.set_link(leader, up=True)
    wait_for(f"{leader} catches up", lambda: "after-cut" in nodes(bed, leader)[rest[1]]["Spec"]["Labels"], timeout=20)
    wait_for(
        "one leader everywhere",
        lambda: (
            all(len(leaders_seen(bed, h)) == 1 for h in HOSTS)
            and len({tuple(leaders_seen(bed, h)) for h in HOSTS}) == 1
        ),
        timeout=20,
    )
    states = {h: {n: x["Spec"] for n, x in nodes(bed, h).items()} for h in HOSTS}
    if any(states[h] != states[HOSTS[0]] for h in HOSTS):
        failures.append(f"divergent node specs after heal: {states}")
    # c) two of three managers cut: writes refused everywhere, running tasks keep running and serving
    #    (the mesh through swarm00 to its own backend; backends on the cut nodes are unreachable by design)
    api(bed, "swarm00").post(
        "/services/create",
        {
            "Name": "pweb",
            "TaskTemplate": {**HELLO, "Placement": {"Constraints": ["node.hostname==swarm00"]}},
            "Mode": {"Replicated": {"Replicas": 1}},
            "EndpointSpec": {"Ports": [{"TargetPort": 8080, "PublishedPort": 8081}]},
        },
    )
    create_service(bed, "psleep", replicas=3, template=SLEEPER)
    converged(bed, "pweb", 1)
    converged(bed, "psleep", 3)
    wait_for("mesh answers", lambda: curl(bed, "swarm00", 8081, max_time=2).startswith("Hello"), timeout=30)
    cut2 = HOSTS[1:]
    before = {h: {t["ID"]: t["Pid"] for t in ts} for h, ts in local_tasks(bed, "p").items()}
    for h in cut2:
        bed.set_link(h, up=False)
    answered = 0
    try:
        time.sleep(2)
        took, message = refuse_time(bed, "swarm00", "no-majority")
        figures.append(f"no-majority refusal {took * 1000:.0f} ms")
        if "no quorum" not in message:
            failures.append(f"swarm00 without majority: refused after {took:.2f} s with {message!r}")
        for h in cut2:
            _, message = refuse_time(bed, h, "no-majority")
            if "no quorum" not in message:
                failures.append(f"{h} without majority: {message!r}")
        for _ in range(10):
            answered += curl(bed, "swarm00", 8081, max_time=2).startswith("Hello")
        if answered < 10:
            failures.append(f"mesh through swarm00 without quorum: {answered}/10 answered")
        during = {h: {t["ID"]: t["Pid"] for t in ts} for h, ts in local_tasks(bed, "p").items()}
        if during != before:
            failures.append(f"tasks changed without quorum: {before} -> {during}")
    finally:
        for h in cut2:
            bed.set_link(h, up=True)
    wait_for("a leader again", lambda: leader_host(bed, "swarm00"), timeout=30)
    label_write(bed, "swarm00", "swarm01", "healed")
    summary.add("partitions: managers", 3, len(failures), "; ".join(figures) + f"; mesh w/o quorum {answered}/10")
    assert not failures, failures


def test_worker_partition(managers1: Testbed, summary: Summary) -> None:
    bed = managers1
    n = 3
    create_service(bed, "pw", replicas=n, template=SLEEPER)
    converged(bed, "pw", n)
    names = {x["ID"]: x["Description"]["Hostname"] for x in api(bed, "swarm00").get("/nodes")}
    on = {
        h: [
            t
            for t in api(bed, "swarm00").get("/tasks", filters={"service": ["pw"]})
            if t["DesiredState"] == "running" and names[t["NodeID"]] == h
        ]
        for h in HOSTS
    }
    victim = "swarm02" if on["swarm02"] else "swarm01"
    failures: list[str] = []
    bed.set_link(victim, up=False)
    started = time.monotonic()
    try:
        wait_for(
            f"replicas rescheduled off {victim}",
            lambda: (
                len(
                    ts := [
                        t
                        for t in api(bed, "swarm00").get("/tasks", filters={"service": ["pw"]})
                        if t["DesiredState"] == "running" and t["Status"]["State"] == "running"
                    ]
                )
                == n
                and all(names[t["NodeID"]] != victim for t in ts)
            ),
            timeout=40,
        )
        moved = time.monotonic() - started
        orphans = len(api(bed, victim).get("/shoal/local/tasks"))
    finally:
        bed.set_link(victim, up=True)
    try:
        counts = wait_for(
            "exactly N real tasks after heal",
            lambda: (c := {h: len(v) for h, v in local_tasks(bed, "pw.").items()}) and sum(c.values()) == n and c,
            timeout=40,
        )
    except AssertionError as exc:
        counts = {h: len(v) for h, v in local_tasks(bed, "pw.").items()}
        failures.append(f"{exc}; local counts {counts}")
    summary.add(
        "partitions: worker cut",
        1,
        len(failures),
        f"rescheduled in {moved:.1f} s; {orphans} orphan(s) ran on the cut node; after heal {counts}",
    )
    assert not failures, failures
