"""Simulated nodes on the testbed (bench/scale.py, tests/chaos/test_scale.py): three drained real
managers and `python -m shoal.sim` processes inside a testbed host, driven over their stdin/stdout
(`SimFleet`: several processes seen as one, so that no single event loop carries every node)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from integration.cluster_helpers import HOSTS, api, form_cluster, save_logs, wait_for
from shoal.sim.merge import merge_events
from testbed.bed import Testbed

SIM_HOST = "swarm02"  # the process runs in this host's namespace (beside its manager)
NET_SUBNET = "10.128.0.0/15"  # room for 100,000+ task addresses on the one overlay


class SimProcess:
    """`python -m shoal.sim` in a testbed host: JSON events on stdout, one command per line on stdin."""

    def __init__(self, bed: Testbed, host: str, args: list[str], log: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log
        with open(log, "ab") as err:
            self.proc = subprocess.Popen(
                bed.exec_argv(host, [sys.executable, "-m", "shoal.sim", *args]),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
            )
        self.pid = self.proc.pid
        self._buf = b""

    def sim_pid(self) -> int | None:
        """The Python process itself (nsenter and env exec into it: same pid), for RSS and CPU."""
        return self.pid if self.proc.poll() is None else None

    def event(self, name: str, timeout: float) -> dict[str, Any]:
        """The next event called `name` (others are skipped), or AssertionError after `timeout` s."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                with contextlib.suppress(ValueError):
                    obj = json.loads(line)
                    if obj.get("event") == name:
                        return obj
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"sim: no {name!r} event within {timeout} s (log {self.log_path})")
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise AssertionError(f"sim exited ({self.proc.poll()}); see {self.log_path}")
                self._buf += chunk

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def command(self, line: str, answer: str, timeout: float = 60.0) -> dict[str, Any]:
        self.send(line)
        return self.event(answer, timeout)

    def close(self, timeout: float = 30.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                assert self.proc.stdin is not None
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, 9)  # only the process this helper started
                self.proc.wait(10)


# Nodes per sim process: one event loop carrying 200 nodes through 5,000 task starts fell seconds
# behind at load 6-7 (its beats timed out and the leader marked nodes Down: docs/scale.md, run 27)
NODES_PER_PROCESS = 100


class SimFleet:
    """Several `python -m shoal.sim` processes, each with its own share of the nodes (`--first`),
    answering as one: events and commands fan out and their answers merge (sums, worst cases,
    unions); `intruder` and `probe` go to the first process only."""

    def __init__(self, parts: list[SimProcess]) -> None:
        self.parts = parts
        self.pid = parts[0].pid
        self._pending: dict[str, dict[int, dict[str, Any]]] = {}  # event name -> the parts' answers so far

    def sim_pids(self) -> list[int]:
        return [pid for part in self.parts if (pid := part.sim_pid()) is not None]

    def sim_pid(self) -> int | None:
        return self.parts[0].sim_pid()

    def event(self, name: str, timeout: float) -> dict[str, Any]:
        """Every process's next `name` event, merged; after a timeout the answers that did come are
        kept for the next call (a caller may poll with short timeouts)."""
        deadline = time.monotonic() + timeout
        got = self._pending.setdefault(name, {})
        for i, part in enumerate(self.parts):
            if i not in got:
                got[i] = part.event(name, max(0.0, deadline - time.monotonic()))
        del self._pending[name]
        return merge_events([got[i] for i in range(len(self.parts))])

    def send(self, line: str) -> None:
        """`line` to every process, split where it names a count of nodes (`lose K`, `flap K ...`)."""
        verb, _, rest = line.partition(" ")
        words = rest.split()
        for i, part in enumerate(self.parts):
            if verb in ("lose", "flap") and words:
                count = int(words[0])
                share = count // len(self.parts) + (1 if i < count % len(self.parts) else 0)
                part.send(" ".join([verb, str(share), *words[1:]]))
            else:
                part.send(line)

    def command(self, line: str, answer: str, timeout: float = 60.0) -> dict[str, Any]:
        if line.split(" ", 1)[0] in ("intruder", "probe"):
            return self.parts[0].command(line, answer, timeout)
        self.send(line)
        return self.event(answer, timeout)

    def close(self, timeout: float = 30.0) -> None:
        for part in self.parts:
            part.close(timeout)


ELECTION_TIMEOUT = 1.0  # notes/raft.md: 0.5-1.5 s on busy managers; 0.25 s flapped here under load


def managers_cluster(
    bed: Testbed, heartbeat: float, election_timeout: float = ELECTION_TIMEOUT, agent_args: list[str] | None = None
) -> str:
    """Three managers on swarm00..02, drained (every task goes to simulated nodes); the worker token.

    Three managers, the simulated nodes and the tests share two CPUs: with the default 0.25 s
    election timeout a leader busy starting thousands of tasks lost its term again and again."""
    bed.up(len(HOSTS))
    # flags, not shoald.yml: the modules that form clusters after this one keep their settings
    args = ["--heartbeat-period", f"{heartbeat:g}", "--election-timeout", f"{election_timeout:g}", *(agent_args or [])]
    form_cluster(bed, managers=3, agent_args=args)
    client = api(bed, "swarm00")
    for node in client.get("/nodes"):
        spec = dict(node["Spec"], Availability="drain")
        client.post(f"/nodes/{node['ID']}/update", spec, version=node["Version"]["Index"])
    return str(client.get("/swarm")["JoinTokens"]["Worker"])


def start_sim(bed: Testbed, token: str, nodes: int, log: Path, extra: list[str] | None = None) -> SimFleet:
    """`nodes` simulated nodes in processes of at most NODES_PER_PROCESS (logs sim.log, sim-1.log, ...)."""
    managers = ",".join(f"{bed.host(h).address}:2377" for h in HOSTS)
    procs = max(1, -(-nodes // NODES_PER_PROCESS))
    parts = []
    try:
        for i in range(procs):
            first, count = i * nodes // procs, (i + 1) * nodes // procs - i * nodes // procs
            args = ["--managers", managers, "--token", token, "--nodes", str(count), "--first", str(first)]
            part_log = log if i == 0 else log.with_name(f"{log.stem}-{i}{log.suffix}")
            parts.append(SimProcess(bed, SIM_HOST, [*args, "--advertise-addr", "eth0", *(extra or [])], part_log))
    except BaseException:
        for part in parts:
            part.close()
        raise
    return SimFleet(parts)


def overlay(bed: Testbed, name: str = "scale-net") -> str:
    body = {"Name": name, "Driver": "overlay", "IPAM": {"Config": [{"Subnet": NET_SUBNET}]}}
    return str(api(bed, "swarm00").post("/networks/create", body)["Id"])


def sim_services(
    bed: Testbed, total: int, network: str, per_service: int = 1000, reserve_cpus: float = 0.01
) -> list[str]:
    """Services of up to `per_service` replicas, `total` tasks in all, on `network`, each task
    reserving `reserve_cpus` CPUs and 8 MB (so that node resources are part of the placement)."""
    ids, left, i = [], total, 0
    while left > 0:
        n = min(per_service, left)
        template = {
            "ContainerSpec": {"Image": "shoal/host", "Command": ["sleep", "3600"]},
            "Networks": [{"Target": network}],
            "Resources": {"Reservations": {"NanoCPUs": int(reserve_cpus * 1e9), "MemoryBytes": 8 << 20}},
            "RestartPolicy": {"Condition": "any", "Delay": 0},
        }
        body = {"Name": f"scale-{i}", "TaskTemplate": template, "Mode": {"Replicated": {"Replicas": n}}}
        ids.append(str(api(bed, "swarm00", 60).post("/services/create", body)["ID"]))
        left, i = left - n, i + 1
    return ids


def running_total(bed: Testbed, via: str) -> tuple[int, int]:
    """(running, desired) summed over every service, as `via`'s replica counts them (tasks on
    Down nodes do not run)."""
    services = api(bed, via, 30).get("/services", status="true")
    running = sum((s.get("ServiceStatus") or {}).get("RunningTasks", 0) for s in services)
    desired = sum((s.get("ServiceStatus") or {}).get("DesiredTasks", 0) for s in services)
    return running, desired


def sim_nodes(bed: Testbed, via: str) -> list[dict[str, Any]]:
    return [n for n in api(bed, via, 30).get("/nodes") if n["Description"]["Hostname"].startswith("sim-")]


def ready_count(bed: Testbed, via: str) -> int:
    return sum(1 for n in sim_nodes(bed, via) if n["Status"]["State"] == "ready")


def raft_files(bed: Testbed, host: str) -> dict[str, int]:
    """Sizes in bytes of the manager's Raft journal and snapshot (its private /var/lib/shoal)."""
    res = bed.run(host, ["sh", "-c", "cd /var/lib/shoal/raft 2>/dev/null && stat -c '%n %s' raft.*"])
    out = {}
    for line in res.stdout.splitlines():
        name, _, size = line.rpartition(" ")
        if size.isdigit():
            out[name] = int(size)
    return out


def teardown(bed: Testbed, sim: SimProcess | None, name: str) -> None:
    """The sim stops first (its nodes would only beat against dying managers), then the managers."""
    if sim is not None:
        sim.close()
    with contextlib.suppress(Exception):
        save_logs(bed, name)
    for host in HOSTS:
        bed.stop_agent(host)
        bed.run(host, ["sh", "-c", "rm -rf /var/lib/shoal/*"])


def wait_ready(bed: Testbed, via: str, count: int, timeout: float) -> None:
    wait_for(f"{count} simulated nodes ready", lambda: ready_count(bed, via) >= count, timeout=timeout, interval=0.5)
