"""Scale: three real managers (swarm00..02, drained) and N simulated nodes (`python -m shoal.sim`
in swarm02's namespace: real joins, TLS sessions, heartbeats, assignment long polls and status
reports; tasks only recorded), M tasks on one overlay network.

Prints, per size: time to all N nodes Ready; services totalling M tasks created -> all RUNNING;
10 % of the nodes lost at once -> their tasks RUNNING elsewhere; a forced rolling update of a
service holding a third of the tasks (10,000 of 30,000) with parallelism N/10 (100 at 1,000 nodes),
until it is completed; the leader killed -> the first
write a new leader acknowledges, and whether any task was restarted or lost; manager RSS, Raft
journal and snapshot sizes, the sim process's RSS per node, the leader's CPU per node per second
while every task runs (heartbeats, idle polls and passes). `--growth` runs N in {100, 300, 1000}
(30 tasks a node) and prints how each figure grows between sizes. Figures only, nothing asserted.

    .venv/bin/python bench/scale.py [--nodes N] [--tasks M] [--growth | --sizes N:M,...] [--heartbeat S]
                                    [--profile SECONDS] [--timeout S]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _cluster import HOSTS, api, locked_main, machine_note, process_cpu, rss_mb, until
from _figures import record
from _memory_sampler import MemorySampler

from integration.sim_helpers import (
    SimFleet,
    managers_cluster,
    overlay,
    raft_files,
    ready_count,
    running_total,
    sim_nodes,
    sim_services,
    start_sim,
    teardown,
)
from shoal.manager.assignments import NET_COALESCE_MAX
from shoal.manager.dispatcher import MISSED_BEATS, UNHEARD_GRACE_FACTOR
from shoal.model.ids import parse_rfc3339
from testbed.bed import Testbed

FOLLOWER = "swarm01"  # polls go to a follower's replica: the leader's CPU is what is measured
GROWTH = (100, 300, 1000)
STEADY_WINDOW = 10.0  # seconds the leader's CPU is read over once every task runs (heartbeats and idle polls)


def settle(bed: Testbed, quiet_bytes: float = 2**20, period: float = 2.0, limit: float = 30.0) -> float:
    """Seconds until the managers send less than `quiet_bytes` of assignments in `period` (at most `limit`)."""
    t0 = time.monotonic()
    before = assignment_totals(bed)["bytes"]
    while time.monotonic() - t0 < limit:
        time.sleep(period)
        now = assignment_totals(bed)["bytes"]
        if now - before < quiet_bytes:
            break
        before = now
    return time.monotonic() - t0


OVERLAY_QUIET = 2 * NET_COALESCE_MAX  # no node's overlay changed for this long: every change sent


def overlay_settled(sim: Any, since_wall: float) -> float | None:
    """Seconds from `since_wall` (time.time()) to the last change any live node applied to its
    overlay, once none has changed for OVERLAY_QUIET (a quiet cluster: the overlay is then the same
    everywhere); None before."""
    stats = sim.command("stats", "stats")
    last = float(stats.get("net_changed_last") or 0.0)
    if time.time() - last < OVERLAY_QUIET:
        return None
    held: dict[str, set[str]] = {}
    for pair in stats.get("net_versions") or []:
        net, _, version = pair.partition(":")
        held.setdefault(net, set()).add(version)
    stale = {net: len(versions) for net, versions in held.items() if len(versions) > 1}
    if stale:  # quiet, yet nodes hold different versions of one network: left on an old one
        print(f"  !! nodes on different versions of one network, quiet for {OVERLAY_QUIET:g} s: {stale}", flush=True)
    return max(0.001, last - since_wall)


def cpu_marks(bed: Testbed, sim: Any) -> dict[str, float]:
    """CPU seconds so far of each manager and of the simulated fleet (its processes together)."""
    marks = {h: process_cpu(bed.agent_pid(h)) for h in HOSTS}
    marks["sim"] = float(sim.command("stats", "stats").get("cpu_s", 0.0))
    return marks


def cpu_split(bed: Testbed, before: dict[str, float], after: dict[str, float], seconds: float) -> str:
    """Where the machine's CPU went in a phase: the fleet against the managers (both share the CPUs)."""
    lead = leader(bed)
    parts = [
        f"{'simulated fleet' if k == 'sim' else k + (' (leader)' if k == lead else '')} {after[k] - before[k]:.1f} s"
        for k in after
    ]
    return f"CPU in these {seconds:.1f} s ({os.cpu_count()} CPUs): " + ", ".join(parts)


def leader(bed: Testbed) -> str | None:
    for n in api(bed, FOLLOWER, 10).get("/nodes"):
        if (n.get("ManagerStatus") or {}).get("Leader"):
            return str(n["Description"]["Hostname"])
    return None


def running_ids(bed: Testbed, via: str, alive: list[str] | None = None, skip_service: str | None = None) -> set[str]:
    """The running tasks as `via` counts them, or the next manager of `alive` when it does not answer
    (a manager held up at 1,000 nodes stopped a run here before its leader kill); without those of
    `skip_service` (a rolling update still replacing them)."""
    for host in [via, *(h for h in alive or [] if h != via)]:
        try:
            tasks = api(bed, host, 60).get("/tasks", filters={"desired-state": ["running"]})
        except Exception as exc:
            print(f"    ({host} did not list the tasks: {exc!r})", flush=True)
            continue
        return {t["ID"] for t in tasks if t["Status"]["State"] == "running" and t["ServiceID"] != skip_service}
    raise RuntimeError(f"no manager of {[via, *(alive or [])]} listed the tasks")


def updating_ids(bed: Testbed, via: str, service_id: str, running: bool = False) -> set[str]:
    """The task IDs (the running ones only, with `running`) of the service a rolling update is
    replacing, as `via` lists them."""
    tasks = api(bed, via, 60).get("/tasks", filters=json.dumps({"service": [service_id]}))
    return {t["ID"] for t in tasks if not running or t["Status"]["State"] == "running"}


def listen_drops(bed: Testbed, host: str) -> int:
    """Connections the host's kernel dropped or refused for a full listen queue (its own namespace)."""
    res = bed.run(host, ["nstat", "-asz", "TcpExtListenOverflows", "TcpExtListenDrops"])
    return sum(int(line.split()[1]) for line in res.stdout.splitlines() if line.startswith("TcpExt"))


def probe_write(bed: Testbed, hosts: list[str], seq: list[int]) -> bool:
    """One acknowledged write (a 0-replica service) on any of `hosts`."""
    for host in hosts:
        seq[0] += 1
        try:
            body = {
                "Name": f"probe-{seq[0]}",
                "TaskTemplate": {"ContainerSpec": {"Image": "shoal/host"}},
                "Mode": {"Replicated": {"Replicas": 0}},
            }
            api(bed, host, 2).post("/services/create", body)
            return True
        except Exception:
            continue
    return False


def assignment_totals(bed: Testbed) -> dict[str, float]:
    """Assignment answers sent so far, summed over the managers still running (each one's
    Prometheus counters, read inside its host): answers, bytes, overlay state sent whole and as
    changes, answers the node had given up on."""
    names = {
        "shoal_assignment_answers_total": "answers",
        "shoal_assignment_answer_bytes_total": "bytes",
        'shoal_assignment_network_bytes_total{form="whole"}': "net_whole",
        'shoal_assignment_network_bytes_total{form="change"}': "net_change",
        "shoal_assignment_answers_unread_total": "unread",
        "shoal_raft_commit_duration_seconds_sum": "commit_s",
        "shoal_raft_commit_duration_seconds_count": "commits",
        "shoal_orchestrator_pass_duration_seconds_sum": "pass_s",
        "shoal_orchestrator_pass_duration_seconds_count": "passes",
    }
    totals = dict.fromkeys(names.values(), 0.0)
    for host in HOSTS:
        for _attempt in range(3):  # a busy leader may not answer in time: a missing one made sums go negative
            res = bed.run(host, ["curl", "-s", "--max-time", "15", "http://127.0.0.1:9323/metrics"])
            if "shoal_assignment_answers_total" in res.stdout or res.returncode == 7:  # 7: not running
                break
        else:
            return dict.fromkeys(names.values(), math.nan)  # unreadable, not a wrong figure
        for line in res.stdout.splitlines():
            name, _, value = line.rpartition(" ")
            if name in names:
                totals[names[name]] += float(value)
    return totals


def fleet_lag(before: dict[str, Any], after: dict[str, Any], seconds: float) -> str:
    """How late the simulated fleet's event loops woke over a phase (summed over its processes): a
    held loop delays every answer its nodes read and every task they start."""
    late = after.get("loop_late_total_s", 0.0) - before.get("loop_late_total_s", 0.0)
    stalls = after.get("loop_stalls", 0) - before.get("loop_stalls", 0)
    return (
        f"the simulated fleet's loops woke {late:.1f} s late in all over {seconds:.0f} s "
        f"({stalls} stalls of 1 s or more)"
    )


def commit_pace(sent: dict[str, float]) -> str:
    """The managers' Raft writes in a phase (the leader's, proposing): how many, and the mean time
    from proposal to commit, which every batch of tasks waits once and its reports once more; and the
    orchestrator's passes, how many and how long each took (its decision in a thread, then its commit)."""
    mean = sent["commit_s"] / sent["commits"] if sent["commits"] > 0 else math.nan
    passes = sent["pass_s"] / sent["passes"] if sent["passes"] > 0 else math.nan
    return (
        f"Raft writes {sent['commits']:.0f}, {mean * 1000:.0f} ms each from proposal to commit; orchestrator "
        f"passes {sent['passes']:.0f}, {passes * 1000:.0f} ms each (wall: decision and commit)"
    )


def since(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after}


def spread(xs: list[float]) -> str:
    xs.sort()
    return f"{len(xs)}: first {xs[0]:.1f} s, median {xs[len(xs) // 2]:.1f} s, last {xs[-1]:.1f} s" if xs else "0"


def buckets(xs: list[float], width: float = 2.0) -> str:
    counts: dict[int, int] = {}
    for x in xs:
        counts[int(x // width)] = counts.get(int(x // width), 0) + 1
    return ", ".join(f"{k * width:.0f}-{(k + 1) * width:.0f} s: {n}" for k, n in sorted(counts.items()))


def down_times(bed: Testbed, lost: set[str], since_ns: int) -> str:
    """When the leader marked the lost nodes Down (their UpdatedAt), in seconds after `since_ns`: the
    grace period's part of the loss (3 missed beats of 5 s, from each node's last beat)."""
    downs = [
        (parse_rfc3339(n["UpdatedAt"]) - since_ns) / 1e9
        for n in sim_nodes(bed, FOLLOWER)
        if n["ID"] in lost and n["Status"]["State"] == "down"
    ]
    return f"lost nodes marked Down {spread(downs)}\n      Down by 2 s: {buckets(downs)}"


def replacement_times(bed: Testbed, since_ns: int) -> str:
    """When the tasks created after `since_ns` (the lost nodes' replacements) were created and reported
    RUNNING, in seconds after it: tells the orchestrator's delay from the delivery and start's."""
    created, running = [], []
    for t in api(bed, FOLLOWER, 60).get("/tasks"):
        at = parse_rfc3339(t["CreatedAt"])
        if at < since_ns:
            continue
        created.append((at - since_ns) / 1e9)
        if t["Status"]["State"] == "running":
            running.append((parse_rfc3339(t["Status"]["Timestamp"]) - since_ns) / 1e9)
    return (
        f"tasks created after the loss {spread(created)}; of them RUNNING {spread(running)}\n"
        f"      created by 2 s: {buckets(created)}\n      RUNNING by 2 s: {buckets(running)}"
    )


def rolling_update(bed: Testbed, service_id: str, parallelism: int) -> int:
    """A forced rolling update of the service (every task replaced, stop-first, no delay, no monitor
    window: the orchestrator's pace, not a timer's); how many tasks it replaces."""
    client = api(bed, "swarm00", 60)
    service = client.get(f"/services/{service_id}")
    spec = dict(service["Spec"])
    template = dict(spec["TaskTemplate"])
    template["ForceUpdate"] = int(template.get("ForceUpdate", 0)) + 1
    spec["TaskTemplate"] = template
    spec["UpdateConfig"] = {"Parallelism": parallelism, "Delay": 0, "Monitor": 0, "Order": "stop-first"}
    client.post(f"/services/{service_id}/update", spec, version=service["Version"]["Index"])
    return int(spec["Mode"]["Replicated"]["Replicas"])


def update_pace(bed: Testbed, sim: Any, service_id: str, since_ns: int) -> str:
    """Where a rolling update's time goes, from its new tasks: batches (tasks created within 0.2 s of
    each other), how long a batch took from its creation to its last task started on its node (the
    leader's part: the entry's commit, the assignments snapshot, the answers, and the fleet reading
    them), from there to its last task RUNNING (the node's start), to the last RUNNING report taken by a
    manager (the report's way and its commit), and from there to the next batch's creation (the
    orchestrator's turn)."""
    new = sorted(
        (
            (parse_rfc3339(t["CreatedAt"]), t)
            for t in api(bed, FOLLOWER, 60).get("/tasks", filters=json.dumps({"service": [service_id]}))
            if parse_rfc3339(t["CreatedAt"]) >= since_ns
        ),
        key=lambda pair: pair[0],
    )
    fleet = sim.command(f"started {since_ns}", "started")
    started = {tid: parse_rfc3339(at) for tid, at in fleet["tasks"].items()}
    delivered = {tid: int(at * 1e9) for tid, at in fleet.get("delivered", {}).items()}
    batches: list[list[tuple[int, dict[str, Any]]]] = []
    for at, t in new:
        if batches and at - batches[-1][-1][0] <= 200_000_000:
            batches[-1].append((at, t))
        else:
            batches.append([(at, t)])
    to_started, to_running, to_taken, to_next = [], [], [], []
    for i, batch in enumerate(batches):
        runs = [parse_rfc3339(t["Status"]["Timestamp"]) for _, t in batch if t["Status"]["State"] == "running"]
        starts = [started[t["ID"]] for _, t in batch if t["ID"] in started]
        taken = [delivered[t["ID"]] for _, t in batch if t["ID"] in delivered]
        if len(runs) < len(batch) or len(starts) < len(batch) or len(taken) < len(batch):
            continue
        to_started.append((max(starts) - batch[0][0]) / 1e9)
        to_running.append((max(runs) - max(starts)) / 1e9)
        to_taken.append((max(taken) - max(runs)) / 1e9)
        if i + 1 < len(batches):
            to_next.append((batches[i + 1][0][0] - max(taken)) / 1e9)

    def median(xs: list[float]) -> str:
        return f"{sorted(xs)[len(xs) // 2]:.2f} s" if xs else "-"

    return (
        f"{len(new)} new tasks in {len(batches)} batches; medians: a batch's creation to its last task started on "
        f"its node {median(to_started)}, to its last RUNNING {median(to_running)} more, to the last RUNNING report "
        f"taken (committed) {median(to_taken)} more, from there to the next batch {median(to_next)}"
    )


def update_done(bed: Testbed, service_id: str) -> bool:
    service = api(bed, FOLLOWER, 30).get(f"/services/{service_id}")
    return (service.get("UpdateStatus") or {}).get("State") == "completed"


def profile(pid: int | None, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy (a dev requirement, installed by `make setup`) samples the leader for `seconds`, without pausing it."""
    spy = Path(sys.executable).with_name("py-spy")
    if not pid or not spy.exists():
        print("  (no profile: py-spy is not installed in the venv)" if pid else "  (no leader pid)")
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [str(spy), "record", "-p", str(pid), "-f", "raw", "-o", str(out), "-d", str(int(seconds)), "--nonblocking"]
    argv.append("--threads")  # which thread: the Raft tick thread's share is what an election waits on
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def finish_profile(spying: subprocess.Popen[bytes] | None, seconds: float) -> bool:
    """Wait for a py-spy `profile` started to its end; True when it wrote its profile."""
    if spying is None:
        return False
    try:
        spying.wait(seconds + 30)
        return True
    except subprocess.TimeoutExpired:
        spying.kill()  # the one py-spy this run started
        return False


def show_garbage(bed: Testbed) -> None:
    """Each manager's cyclic garbage by origin (a full collection each: seconds at 1,000 nodes)."""
    for host in HOSTS:
        try:
            found = api(bed, host, 120).get("/shoal/debug/garbage", top=12)
        except Exception as exc:
            print(f"  garbage on {host}: {exc!r}", flush=True)
            continue
        origins = ", ".join(f"{o['Origin']} {o['Count']}" for o in found["Origins"])
        print(f"  cyclic garbage on {host}: {found['Objects']:,} objects; {origins}", flush=True)


def run(
    nodes: int,
    tasks: int,
    heartbeat: float,
    timeout: float,
    spy: float = 0.0,
    spy_takeover: float = 0.0,
    agent_flags: tuple[str, ...] = (),
    garbage: bool = False,
    spy_steady: bool = False,
    spy_lose: float = 0.0,
    spy_update: float = 0.0,
) -> dict[str, Any]:
    """One size, start to end; returns its figures (None where a step did not finish)."""
    fig: dict[str, Any] = {"nodes": nodes, "tasks": tasks}
    bed = Testbed()
    sim: SimFleet | None = None
    memory: MemorySampler | None = None
    name = f"bench_scale_{nodes}"
    try:
        token = managers_cluster(bed, heartbeat, agent_args=list(agent_flags))
        memory = MemorySampler(bed, list(HOSTS), bed.state_dir.parent / "bench" / f"scale-{nodes}n-memory.jsonl")
        memory.start()
        memory.phase = "join"
        log = bed.state_dir.parent / "test-logs" / name / "sim.log"
        t0 = time.monotonic()
        sim = start_sim(bed, token, nodes, log, ["--heartbeat-period", str(heartbeat)])
        joined = sim.event("joined", timeout)
        fig["join_s"] = joined["seconds"]
        _, fig["ready_s"] = until("nodes ready", lambda: ready_count(bed, FOLLOWER) >= nodes, timeout, 0.5, t0)
        print(
            f"  {nodes} nodes joined in {joined['seconds']:.1f} s, all Ready after {fig['ready_s']:.1f} s", flush=True
        )

        net = overlay(bed)
        spying = None
        if spy:
            lead = leader(bed)
            out = bed.state_dir.parent / "bench" / f"scale-{nodes}n-leader.pyspy.txt"
            spying = profile(bed.agent_pid(lead) if lead else None, spy, out)
        sent0 = assignment_totals(bed)
        polls0 = sim.command("stats", "stats")
        cpu0 = cpu_marks(bed, sim)
        memory.phase = "create"
        t0, t0_wall = time.monotonic(), time.time()
        services = sim_services(bed, tasks, net, per_service=max(1000, tasks // 3))
        fig["create_calls_s"] = time.monotonic() - t0
        done, fig["running_s"] = until(
            "tasks running", lambda: running_total(bed, FOLLOWER) == (tasks, tasks), timeout, 1.0, t0
        )
        print(f"  {tasks} tasks RUNNING after {fig['running_s']:.1f} s{'' if done else ' (NOT REACHED)'}", flush=True)
        print(f"    {cpu_split(bed, cpu0, cpu_marks(bed, sim), time.monotonic() - t0)}", flush=True)
        # a node's tasks may start before the overlay's large changes reach it (assignments.DEFER_NET_BYTES)
        fig["net_converged_s"], _ = until("overlay settled", lambda: overlay_settled(sim, t0_wall), timeout, 1.0)
        print(f"  the overlay the same on every node after {fig['net_converged_s'] or 0:.1f} s", flush=True)
        sent = since(assignment_totals(bed), sent0)
        polls1 = sim.command("stats", "stats")
        fig["assign_answers"] = sent["answers"]
        fig["assign_kb_per_answer"] = sent["bytes"] / max(1.0, sent["answers"]) / 1024
        fig["assign_mb"] = sent["bytes"] / 2**20
        print(
            f"  assignment answers while they started: {fig['assign_answers']:.0f}, {fig['assign_mb']:.1f} MB, "
            f"{fig['assign_kb_per_answer']:.0f} KB each (the leader's counters: tasks and network state as "
            f"changes since what each node holds, whole in a node's first answer); {commit_pace(sent)}",
            flush=True,
        )
        fig["net_whole_mb"] = sent["net_whole"] / 2**20
        fig["net_change_mb"] = sent["net_change"] / 2**20
        floor = nodes * tasks  # every node hears of every endpoint once (one overlay, every node on it)
        print(
            f"    overlay state in them: {fig['net_whole_mb']:.1f} MB whole networks, {fig['net_change_mb']:.1f} MB "
            f"changes ({(sent['net_whole'] + sent['net_change']) / floor:.0f} bytes per node per endpoint); "
            f"answers ready after the node gave up: {sent['unread']:.0f}; the nodes' polls without an answer "
            f"{polls1['polls_failed'] - polls0['polls_failed']}, late answers waited for "
            f"{polls1['polls_late'] - polls0['polls_late']}, stale answers "
            f"{polls1['answers_stale'] - polls0['answers_stale']}, increments not following what the node held "
            f"{polls1['answers_unfit'] - polls0['answers_unfit']}",
            flush=True,
        )
        if finish_profile(spying, spy):
            print(f"  leader profile (py-spy raw): {out}", flush=True)
        stats = sim.command("stats", "stats")
        fig["sim_rss_per_node_kb"] = stats["rss_per_node_bytes"] / 1024
        # steady state: heartbeats, long polls waiting, the orchestrator's idle passes; not the tail
        # of the start (the last tasks' RUNNING sent to every node, coalesced up to 5 s), which the
        # window took in when it began at the last RUNNING
        settled_s = settle(bed)
        lead_pid = bed.agent_pid(leader(bed) or "swarm00")
        steady_out = bed.state_dir.parent / "bench" / f"scale-{nodes}n-steady.pyspy.txt"
        steady_spy = profile(lead_pid, STEADY_WINDOW, steady_out) if spy_steady else None
        cpu0, w0 = process_cpu(lead_pid), time.monotonic()
        time.sleep(STEADY_WINDOW)
        if finish_profile(steady_spy, STEADY_WINDOW):
            print(f"  leader profile while steady (py-spy raw): {steady_out}", flush=True)
        fig["steady_cpu_us"] = (process_cpu(lead_pid) - cpu0) / (time.monotonic() - w0) / nodes * 1e6
        print(
            f"  leader CPU with every task RUNNING, {STEADY_WINDOW:.0f} s from {settled_s:.0f} s after the last "
            f"one (its answers sent): {fig['steady_cpu_us']:.0f} us per node "
            f"per s ({fig['steady_cpu_us'] * nodes / 1e4:.1f} % of a CPU)",
            flush=True,
        )
        fig["sim_rss_mb"] = stats["rss_bytes"] / 2**20

        lose = max(1, nodes // 10)
        memory.phase = "lose"
        cpu0, lose_sent0 = cpu_marks(bed, sim), assignment_totals(bed)
        lose_out = bed.state_dir.parent / "bench" / f"scale-{nodes}n-lose.pyspy.txt"
        lose_spy = profile(bed.agent_pid(leader(bed) or "swarm00"), spy_lose, lose_out) if spy_lose else None
        t0, lost_ns = time.monotonic(), time.time_ns()
        lost = set(sim.command(f"lose {lose}", "lost")["nodes"])

        def lost_down() -> bool:
            return all(n["Status"]["State"] == "down" for n in sim_nodes(bed, FOLLOWER) if n["ID"] in lost)

        _, fig["lost_down_s"] = until("lost nodes down", lost_down, timeout, 0.5, t0)
        seen: list[tuple[int, int]] = []  # (running, desired) as last counted: printed when not reached

        def all_running() -> bool:
            seen[:] = [running_total(bed, FOLLOWER)]
            return seen[0] == (tasks, tasks)

        def moved() -> bool:
            # replaced first: in the moment between the nodes' Down and the orchestrator's pass the
            # counts still read every task running (a "back after 0.2 s" that moved nothing)
            left = api(bed, FOLLOWER, 60).get("/tasks", filters={"node": sorted(lost), "desired-state": ["running"]})
            return not left and all_running()

        back, fig["lost_moved_s"] = until("lost tasks running elsewhere", moved, timeout, 0.5, t0)
        if not back:
            print(f"    (running, desired) last counted on {FOLLOWER}: {seen}", flush=True)
        print(
            f"  {lose} nodes lost: Down after {fig['lost_down_s']:.1f} s, tasks back after {fig['lost_moved_s']:.1f} s"
        )
        print(f"    {down_times(bed, lost, lost_ns)}", flush=True)
        print(f"    {replacement_times(bed, lost_ns)}", flush=True)
        print(f"    {cpu_split(bed, cpu0, cpu_marks(bed, sim), time.monotonic() - t0)}", flush=True)
        fig["lost_net_converged_s"], _ = until(
            "overlay settled", lambda: overlay_settled(sim, lost_ns / 1e9), timeout, 1.0
        )
        print(f"    the overlay the same on every live node after {fig['lost_net_converged_s'] or 0:.1f} s", flush=True)
        lose_sent = since(assignment_totals(bed), lose_sent0)
        print(
            f"    assignment answers from the loss: {lose_sent['answers']:.0f}, {lose_sent['bytes'] / 2**20:.1f} MB; "
            f"{commit_pace(lose_sent)}",
            flush=True,
        )
        if finish_profile(lose_spy, spy_lose):
            print(f"  leader profile from the loss (py-spy raw): {lose_out}", flush=True)

        parallelism = max(1, nodes // 10)
        memory.phase = "rolling"
        sent0 = assignment_totals(bed)
        update_out = bed.state_dir.parent / "bench" / f"scale-{nodes}n-update.pyspy.txt"
        update_spy = profile(bed.agent_pid(leader(bed) or "swarm00"), spy_update, update_out) if spy_update else None
        fleet0 = sim.command("stats", "stats")
        t0, update_ns = time.monotonic(), time.time_ns()
        try:
            replaced = rolling_update(bed, services[0], parallelism)
        except Exception as exc:  # its write lost (an election): the leader kill is still measured
            print(f"  !! rolling update not started: {exc!r}", flush=True)
            replaced = 0
        updating: str | None = None  # a service whose update has not completed: its batches go on at the kill
        if replaced:
            done, fig["rolling_s"] = until(
                "rolling update completed", lambda: update_done(bed, services[0]), timeout, 1.0, t0
            )
            fig["rolling_tasks"] = replaced
            print(
                f"  rolling update of {replaced} tasks, parallelism {parallelism}, monitor 0: completed after "
                f"{fig['rolling_s']:.1f} s{'' if done else ' (NOT REACHED)'}",
                flush=True,
            )
            print(f"    {update_pace(bed, sim, services[0], update_ns)}", flush=True)
            print(f"    {fleet_lag(fleet0, sim.command('stats', 'stats'), time.monotonic() - t0)}", flush=True)
            updating = None if done else services[0]
        if finish_profile(update_spy, spy_update):
            print(f"  leader profile from the update's start (py-spy raw): {update_out}", flush=True)
            until("tasks running after the update", all_running, timeout, 1.0)
        sent = since(assignment_totals(bed), sent0)
        fig["rolling_kb_per_answer"] = sent["bytes"] / max(1.0, sent["answers"]) / 1024
        print(
            f"  assignment answers during the update: {sent['answers']:.0f}, {sent['bytes'] / 2**20:.1f} MB, "
            f"{fig['rolling_kb_per_answer']:.1f} KB each (increments: the node's changed tasks and endpoints); "
            f"{commit_pace(sent)}",
            flush=True,
        )

        if garbage:
            show_garbage(bed)
        memory.phase = "kill"
        old = leader(bed)
        before = running_ids(bed, FOLLOWER, HOSTS, updating)
        own_before = updating_ids(bed, FOLLOWER, updating, running=True) if updating else set()
        starts = sim.command("stats", "stats")["starts"]
        survivors = [h for h in HOSTS if h != old]
        fig["rss_leader_mb"] = rss_mb(bed.agent_pid(old)) if old else None
        fig["rss_followers_mb"] = [rss_mb(bed.agent_pid(h)) for h in survivors]
        fig["raft"] = raft_files(bed, old) if old else {}
        seq = [0]
        drops0 = {h: listen_drops(bed, h) for h in survivors}
        spies = [
            profile(
                bed.agent_pid(h),
                spy_takeover,
                bed.state_dir.parent / "bench" / f"scale-{nodes}n-takeover-{h}.pyspy.txt",
            )
            for h in (survivors if spy_takeover else [])
        ]
        t0, kill_ns = time.monotonic(), time.time_ns()
        bed.stop_agent(old or "swarm00", kill=True)
        _, fig["failover_write_s"] = until(
            "a write after the leader kill", lambda: probe_write(bed, survivors, seq), timeout, 0.05, t0
        )
        # a missed beat or a lost assignment would show by now: the new leader's grace for a node it
        # has not heard from yet is 2 x 3 periods (SwarmKit's "unknown" state), and one round more
        time.sleep(max(0.0, (UNHEARD_GRACE_FACTOR * MISSED_BEATS + 1) * heartbeat - (time.monotonic() - t0)))
        via = next(h for h in survivors if h != FOLLOWER) if old == FOLLOWER else FOLLOWER
        after = running_ids(bed, via, survivors, updating)
        fig["tasks_lost_at_kill"] = len(before - after)
        fig["tasks_new_at_kill"] = len(after - before)
        starts_all = sim.command("stats", "stats")["starts"] - starts
        # a rolling update not complete within its bound goes on replacing its own tasks across the
        # kill (new tasks, started once each): those starts are the update's, not restarts
        own = updating_ids(bed, via, updating) - own_before if updating else set()
        fig["update_starts_at_kill"] = len(set(sim.command(f"started {kill_ns}", "started")["tasks"]) & own)
        fig["restarts_at_kill"] = starts_all - fig["update_starts_at_kill"]
        fig["listen_drops_at_kill"] = sum(listen_drops(bed, h) - drops0[h] for h in survivors)
        fig["down_at_kill"] = sum(
            1 for n in sim_nodes(bed, via) if n["ID"] not in lost and n["Status"]["State"] == "down"
        )
        print(
            f"  leader {old} killed: write after {fig['failover_write_s']:.2f} s; tasks lost "
            f"{fig['tasks_lost_at_kill']}, new {fig['tasks_new_at_kill']}, started again "
            f"{fig['restarts_at_kill']} (and {fig['update_starts_at_kill']} new tasks of the update started); "
            f"live nodes Down {fig['down_at_kill']} ({time.monotonic() - t0:.0f} s after the kill); connections "
            f"dropped by a full listen queue on the survivors {fig['listen_drops_at_kill']}"
            + (" (lost, new: the services not being updated, the update still replacing its own)" if updating else ""),
            flush=True,
        )
        for spying in spies:
            finish_profile(spying, spy_takeover)
        if spies:
            print(
                f"  takeover profiles (py-spy raw): {bed.state_dir.parent / 'bench'}/scale-{nodes}n-takeover-*",
                flush=True,
            )
    finally:
        try:
            if memory is not None:
                memory.stop()
                print(memory.report(), flush=True)
                fig["rss_peak_mb"] = max((p.get("manager RSS MB", 0.0) for p in memory.peaks.values()), default=None)
        finally:
            teardown(bed, sim, name)
    return fig


ROWS = [
    ("join_s", "all nodes joined (sim)", "s"),
    ("ready_s", "all nodes Ready", "s"),
    ("create_calls_s", "service create calls", "s"),
    ("running_s", "all tasks RUNNING", "s"),
    ("net_converged_s", "the overlay the same on every node", "s"),
    ("lost_down_s", "10 % lost -> Down", "s"),
    ("lost_moved_s", "10 % lost -> tasks RUNNING again", "s"),
    ("lost_net_converged_s", "10 % lost -> the overlay the same everywhere", "s"),
    ("rolling_s", "rolling update of a third, parallel N/10", "s"),
    ("rolling_kb_per_answer", "assignment bytes per answer (rolling)", "KB"),
    ("failover_write_s", "leader kill -> write acknowledged", "s"),
    ("tasks_lost_at_kill", "tasks lost at the leader kill", ""),
    ("restarts_at_kill", "tasks started again at the leader kill", ""),
    ("down_at_kill", "live nodes Down after the leader kill", ""),
    ("assign_answers", "assignment answers while tasks start", ""),
    ("assign_kb_per_answer", "assignment bytes per answer (update)", "KB"),
    ("net_whole_mb", "overlay state sent whole (start)", "MB"),
    ("net_change_mb", "overlay state sent as changes (start)", "MB"),
    ("steady_cpu_us", "leader CPU per node per s, steady", "us"),
    ("rss_leader_mb", "leader RSS", "MB"),
    ("rss_peak_mb", "a manager's highest RSS (sampled)", "MB"),
    ("sim_rss_per_node_kb", "sim RSS per node", "KB"),
]


def show(figs: list[dict[str, Any]]) -> None:
    print("\n" + f"{'figure':40}" + "".join(f"{f['nodes']:>7}n/{f['tasks']:<7}" for f in figs))
    for key, label, unit in ROWS:
        cells = []
        for f in figs:
            v = f.get(key)
            cells.append(f"{v:>15.2f}" if isinstance(v, (int, float)) else f"{'-':>15}")
        print(f"{label + (f' ({unit})' if unit else ''):40}" + "".join(cells))
    for f in figs:
        print(f"raft files of the leader at {f['nodes']} nodes: {f.get('raft')}")
    if len(figs) > 1:
        print("\ngrowth from the smallest size (figure ratio / size ratio; ~1 = linear, >>1 = superlinear):")
        first = figs[0]
        for key, label, _ in ROWS:
            for f in figs[1:]:
                a, b = first.get(key), f.get(key)
                if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > 0:
                    size = f["nodes"] / first["nodes"]
                    print(f"  {label:38} x{b / a:6.2f} for x{size:.0f} nodes ({(b / a) / size:.2f})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--tasks", type=int, default=30000)
    p.add_argument("--growth", action="store_true", help="nodes in 100, 300, 1000 (30 tasks a node)")
    p.add_argument("--sizes", help="NODES:TASKS,... instead (e.g. 50:500,100:3000)")
    p.add_argument("--profile", type=float, default=0.0, help="py-spy the leader this many s from the creates")
    p.add_argument("--heartbeat", type=float, default=5.0, help="the managers' heartbeat period (SwarmKit: 5 s)")
    p.add_argument("--timeout", type=float, default=600.0, help="bound of each step (s)")
    p.add_argument(
        "--agent-args",
        default="",
        help="more shoald flags for the managers: '--gc-full-period 0 --gil-switch-interval 0.005'",
    )
    p.add_argument("--garbage", action="store_true", help="each manager's cyclic garbage before the leader kill")
    p.add_argument(
        "--profile-steady", action="store_true", help="py-spy the leader over the steady window (every task running)"
    )
    p.add_argument("--profile-lose", type=float, default=0.0, help="py-spy the leader this many s from the loss")
    p.add_argument(
        "--profile-update", type=float, default=0.0, help="py-spy the leader this many s from the rolling update"
    )
    p.add_argument(
        "--profile-takeover", type=float, default=0.0, help="py-spy both survivors this many s from the kill"
    )
    args = p.parse_args()
    print(machine_note(), flush=True)
    sizes = [(n, 30 * n) for n in GROWTH] if args.growth else [(args.nodes, args.tasks)]
    if args.sizes:
        sizes = [(int(a), int(b)) for a, b in (pair.split(":") for pair in args.sizes.split(","))]
    figs = []
    for nodes, tasks in sizes:
        print(f"== {nodes} simulated nodes, {tasks} tasks", flush=True)
        try:
            fig = run(
                nodes,
                tasks,
                args.heartbeat,
                args.timeout,
                args.profile,
                args.profile_takeover,
                tuple(shlex.split(args.agent_args)),
                args.garbage,
                args.profile_steady,
                args.profile_lose,
                args.profile_update,
            )
        except Exception as exc:  # one size failing still leaves the others' figures
            print(f"  !! {nodes} nodes / {tasks} tasks: {exc!r}", flush=True)
            fig = {"nodes": nodes, "tasks": tasks, "error": repr(exc)}
        figs.append(fig)
        for key, label, unit in ROWS:
            if isinstance(fig.get(key), (int, float)):
                record(f"{nodes}n: {label}", fig[key], unit=unit or "n")
    show(figs)
    last = figs[-1]
    print(
        f"scale: {last['nodes']} nodes / {last['tasks']} tasks: Ready {last.get('ready_s', 0):.0f} s, RUNNING "
        f"{last.get('running_s', 0):.0f} s, 10 % lost moved {last.get('lost_moved_s', 0):.0f} s, failover write "
        f"{last.get('failover_write_s', 0):.2f} s, tasks lost {last.get('tasks_lost_at_kill')}, restarts "
        f"{last.get('restarts_at_kill')}, live nodes Down {last.get('down_at_kill')}; {machine_note()}"
    )


if __name__ == "__main__":
    locked_main(main)
