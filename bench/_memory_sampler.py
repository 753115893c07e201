"""What the managers hold while a benchmark runs: every few seconds each manager's resident memory
(anonymous and file-backed apart), its children's (pysyncobj writes snapshots in a forked child,
which copies the pages it touches) and its `shoal_manager_held` gauges (Raft log, watch queues,
the assignments' caches). One JSON line per manager per sample, tagged with the benchmark's phase,
so that a manager that grows shows which structure grew with it. Each line also carries the
manager's CPU time so far and its Raft term, leadership and commit index, and the heartbeats and
assignment answers it has served: the timeline of a takeover or a stall (which manager was busy,
whether anything committed) read beside its memory."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from _cluster import process_cpu, rss_kb
from prometheus_client.parser import text_string_to_metric_families

from testbed.bed import METRICS_ADDR, Testbed


def children(pid: int) -> list[int]:
    """Direct children of any of the process's threads (the Raft thread forks the snapshot writer)."""
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return out


# series kept as they are (a timeline, not a peak): /metrics name -> the row's key
TIMELINE = {
    "shoal_raft_term": "raft_term",
    "shoal_raft_leader": "raft_leader",
    "shoal_raft_commit_index": "raft_commit_index",
    "shoal_dispatcher_heartbeats_total": "heartbeats",
    "shoal_assignment_answers_total": "assignment_answers",
    "shoal_raft_commit_duration_seconds_sum": "commit_seconds",  # with _count: this manager's writes' latency
    "shoal_raft_commit_duration_seconds_count": "commits",
}


def held(text: str) -> dict[str, float]:
    """The `shoal_manager_held` gauges of a /metrics page, its failed TLS handshakes by error, and
    the TIMELINE series."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "shoal_manager_held":
                out[sample.labels["what"]] = sample.value
            elif sample.name == "shoal_tls_handshake_failures_total":
                out[f"tls_handshakes_failed_{sample.labels['error']}"] = sample.value
            elif sample.name in TIMELINE:
                out[TIMELINE[sample.name]] = sample.value
    return out


class MemorySampler(threading.Thread):
    def __init__(self, bed: Testbed, hosts: list[str], out: Path, period: float = 5.0) -> None:
        super().__init__(name="memory-sampler", daemon=True)
        self.bed, self.hosts, self.out, self.period = bed, hosts, out, period
        self.phase = "start"
        self.peaks: dict[str, dict[str, float]] = {}  # phase -> figure -> its highest value
        self._halt = threading.Event()  # not `_stop`: Thread.join calls its own

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)

    def _keep(self, figure: str, value: float) -> None:
        peaks = self.peaks.setdefault(self.phase, {})
        peaks[figure] = max(peaks.get(figure, 0.0), value)

    def sample(self, host: str, t0: float) -> dict[str, Any] | None:
        try:
            pid = self.bed.agent_pid(host)
        except Exception:  # stopped or killed: nothing to sample
            return None
        if not pid:
            return None
        anon, file = rss_kb(pid)
        kids = sum(sum(rss_kb(c)) for c in children(pid))
        try:  # the metrics address is the host's loopback (testbed.bed.METRICS_ADDR)
            scrape = ["curl", "-sS", "--max-time", "5", f"http://{METRICS_ADDR}/metrics"]
            gauges = held(self.bed.run(host, scrape, timeout=10).stdout)
        except Exception:  # a busy or closing manager: its memory still counts
            gauges = {}
        row = {"t": round(time.monotonic() - t0, 1), "host": host, "phase": self.phase}
        row |= {"anon_mb": anon // 1024, "file_mb": file // 1024, "children_mb": kids // 1024, **gauges}
        row["cpu_s"] = round(process_cpu(pid), 1)
        self._keep("manager RSS MB", (anon + file) / 1024)
        self._keep("manager anon MB", anon / 1024)
        self._keep("children RSS MB", kids / 1024)
        for what, value in gauges.items():
            if what not in TIMELINE.values():
                self._keep(what, value)
        return row

    def run(self) -> None:
        t0 = time.monotonic()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        with self.out.open("w") as fh:
            while not self._halt.is_set():
                for host in self.hosts:
                    row = self.sample(host, t0)
                    if row is not None:
                        fh.write(json.dumps(row) + "\n")
                fh.flush()
                self._halt.wait(self.period)

    def report(self) -> str:
        lines = [f"  managers' memory by phase (peaks over the three; every sample in {self.out}):"]
        for phase, peaks in self.peaks.items():
            shown = ", ".join(f"{k} {v:,.0f}" for k, v in peaks.items() if v)
            lines.append(f"    {phase}: {shown}")
        return "\n".join(lines)
