"""The agent's Prometheus metrics (prometheus_client, Prometheus naming: `shoal_` prefix, base
units, `_total` counters, `_seconds` durations). Every layer records into these; nothing here
imports the rest of shoal, so any layer may. Served on `metrics_addr` (api/metrics.py), off by
default as Docker's `metrics-addr`.

Gauges of cluster objects and Raft are read from the store at scrape time (manager/metrics.py);
what happens over time (passes, requests, starts, pulls) is counted here as it happens.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # the agent's own CPU, memory, open fds
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

# short operations (a commit, a pass, a request): 1 ms .. 10 s
FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

TLS_HANDSHAKE_FAILURES = Counter(
    "shoal_tls_handshake_failures_total",
    "TLS handshakes of this agent that failed (its cluster port's and its own calls'), by error "
    "(ConnectionResetError on the cluster port: the client gave up).",
    ["error"],
    registry=REGISTRY,
)

RAFT_COMMIT_SECONDS = Histogram(
    "shoal_raft_commit_duration_seconds",
    "Time from proposing a batch to its commit being acknowledged (this manager's writes).",
    buckets=FAST,
    registry=REGISTRY,
)
RAFT_TICK_STALL_SECONDS = Histogram(
    "shoal_raft_tick_stall_seconds",
    "Raft ticks that came over 0.25 s after the previous one (its thread short of the GIL or the CPU).",
    buckets=(0.25, 0.5, 1.0, 2.0, 5.0, 10.0),
    registry=REGISTRY,
)
GC_PAUSE_SECONDS = Histogram(
    "shoal_gc_pause_seconds",
    "Collections of Python's cyclic garbage collector, by generation: every thread waits meanwhile.",
    ["generation"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0),
    registry=REGISTRY,
)
GC_HEAP_BLOCKS = Gauge(
    "shoal_gc_heap_blocks",
    "Blocks of Python's small-object allocator in use (sys.getallocatedblocks): what full collections are timed by.",
    registry=REGISTRY,
)
ORCHESTRATOR_PASS_SECONDS = Histogram(
    "shoal_orchestrator_pass_duration_seconds",
    "One orchestrator pass: reconcile, allocate, schedule and commit.",
    buckets=FAST,
    registry=REGISTRY,
)
SCHEDULER_PASS_SECONDS = Histogram(
    "shoal_scheduler_pass_duration_seconds",
    "One scheduling decision over every pending task.",
    buckets=FAST,
    registry=REGISTRY,
)
DISPATCHER_HEARTBEATS = Counter(
    "shoal_dispatcher_heartbeats_total", "Node heartbeats received by this leader's dispatcher.", registry=REGISTRY
)
ASSIGNMENT_ANSWERS = Counter(
    "shoal_assignment_answers_total", "Assignment answers this manager sent to nodes (full sets).", registry=REGISTRY
)
ASSIGNMENT_BYTES = Counter(
    "shoal_assignment_answer_bytes_total", "Bytes of the assignment answers this manager sent.", registry=REGISTRY
)
ASSIGNMENT_NETWORK_BYTES = Counter(
    "shoal_assignment_network_bytes_total",
    "Bytes of overlay state in assignment answers: whole networks (a node's first, or one whose version "
    "this manager no longer keeps) or changes since the version the node holds.",
    ["form"],
    registry=REGISTRY,
)
ASSIGNMENT_UNREAD = Counter(
    "shoal_assignment_answers_unread_total",
    "Assignment answers the node gave up waiting for before it had read them (its connection closed).",
    registry=REGISTRY,
)
DISPATCHER_ROUND_LATE = Histogram(
    "shoal_dispatcher_round_late_seconds",
    "How late the leader's liveness rounds woke up (its event loop held by other work).",
    buckets=FAST,
    registry=REGISTRY,
)
DISPATCHER_DOWN_BURSTS = Counter(
    "shoal_dispatcher_down_bursts_total",
    "Liveness rounds that marked a tenth of the nodes or more Down at once.",
    registry=REGISTRY,
)
HEARTBEAT_PERIOD = Gauge(
    "shoal_node_heartbeat_period_seconds",
    "The heartbeat period this node uses: the one the leader named in its last heartbeat answer.",
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "shoal_api_requests_total",
    "API requests by listener, method, route (the path template) and status code.",
    ["listener", "method", "route", "code"],
    registry=REGISTRY,
)
API_REQUEST_SECONDS = Histogram(
    "shoal_api_request_duration_seconds",
    "API request latency by listener, method and route (streams count until their headers are sent).",
    ["listener", "method", "route"],
    buckets=FAST,
    registry=REGISTRY,
)
TASK_STARTS = Counter("shoal_task_starts_total", "Tasks this node started (reached running).", registry=REGISTRY)
TASK_FAILURES = Counter(
    "shoal_task_failures_total", "Tasks on this node that failed or were rejected.", ["state"], registry=REGISTRY
)
IMAGE_PULLS = Counter(
    "shoal_image_pulls_total", "Image pulls by result (success, error).", ["result"], registry=REGISTRY
)
IMAGE_PULL_SECONDS = Histogram(
    "shoal_image_pull_duration_seconds",
    "Time to pull an image into the node's store.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)
DATAPLANE_PROGRAM_SECONDS = Histogram(
    "shoal_dataplane_program_duration_seconds",
    "Time to program one dataplane change (overlay peers, load balancer rules, mesh) by operation.",
    ["operation"],
    buckets=FAST,
    registry=REGISTRY,
)
EVENT_SUBSCRIBERS = Gauge("shoal_events_subscribers", "Clients following GET /events.", registry=REGISTRY)
EVENT_OVERFLOWS = Counter(
    "shoal_events_dropped_subscribers_total",
    "Event streams cut off because their client read too slowly.",
    registry=REGISTRY,
)


@contextmanager
def timed(histogram: Histogram) -> Iterator[None]:
    """Observe the block's duration (also when it raises)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        histogram.observe(time.perf_counter() - start)


def image_pulled(seconds: float, ok: bool) -> None:
    """The hook the image store calls after each pull."""
    IMAGE_PULLS.labels(result="success" if ok else "error").inc()
    if ok:
        IMAGE_PULL_SECONDS.observe(seconds)


def task_state(state: str) -> None:
    """The executor's task state changes: starts and failures."""
    if state == "running":
        TASK_STARTS.inc()
    elif state in ("failed", "rejected"):
        TASK_FAILURES.labels(state=state).inc()
