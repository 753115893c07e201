"""Dispatcher (leader only): node sessions, heartbeats and liveness.

Shaped after SwarmKit's dispatcher: nodes beat every `period`; a node that misses 3 beats is
Down, one that beats again is Ready. A node not heard from yet in this leader's term (every node,
right after a leader change) gets twice that grace, as SwarmKit gives its nodes in "unknown" state:
a new leader meets every node's reconnect, TLS handshake and first poll at once, and its first beats
come late. Only the leader decides, and it writes a node's status only when it changes, so
heartbeats cost no Raft traffic.

The period is the cluster's `Spec.Dispatcher.HeartbeatPeriod` (`swarm update --dispatcher-heartbeat`),
read at each beat: the answer tells the node the period to use (as SwarmKit's heartbeat response
does), and the node's grace is counted from the period it was told at its last beat, so that a
shorter period never makes a node Down before it had the chance to hear of it.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections import deque
from typing import Any

from shoal import metrics
from shoal.aio import BackgroundLoop
from shoal.model.ids import now_rfc3339
from shoal.store.changes import Change
from shoal.store.protocol import Store

log = logging.getLogger("shoal.dispatcher")

MISSED_BEATS = 3
# SwarmKit's gracePeriodMultiplierUnknown: twice the normal grace for a node this leader has not
# heard from yet. At 1,000 nodes, a new leader's first beats came behind 1,000 reconnects and first
# polls; with the normal grace it marked 424 live nodes Down at once (docs/scale.md).
UNHEARD_GRACE_FACTOR = 2
# Liveness rounds wake when the first live node's grace ends (SwarmKit arms a timer per node), at
# most every half period and at least this far apart: rounds once every half period made a lost
# node Down up to 2.5 s after its grace (at 1,000 nodes, 100 lost: the last Down 17.9 s after the
# loss, where 15 s of grace ends by 15.0 at the latest).
MIN_ROUND = 0.25


def grace(node_id: str, period: float, told: dict[str, float]) -> float:
    """Seconds a node may go unheard: 3 times the period it was told at its last beat in this
    term, or twice 3 times the current period while it has not beaten in this term."""
    if node_id in told:
        return MISSED_BEATS * told[node_id]
    return UNHEARD_GRACE_FACTOR * MISSED_BEATS * period


def first_expiry(last_seen: dict[str, float], told: dict[str, float], period: float, now: float) -> float | None:
    """Pure: seconds until the grace of the first node still within it ends; None if none is."""
    left = (seen + grace(nid, period, told) - now for nid, seen in last_seen.items())
    return min((t for t in left if t >= 0), default=None)


def next_round_in(last_seen: dict[str, float], told: dict[str, float], period: float, now: float) -> float:
    """Pure: how long the liveness loop sleeps: until just after the first live node's grace ends,
    at most half a period, at least MIN_ROUND (or half a period, if shorter)."""
    first = first_expiry(last_seen, told, period, now)
    longest = period / 2
    # a hair past the end: the round must find the node past its grace, not on it
    return longest if first is None else min(longest, max(MIN_ROUND, first + 0.01))


def liveness_changes(
    nodes: list[dict[str, Any]],
    last_seen: dict[str, float],
    now: float,
    period: float,
    self_id: str,
    addrs: dict[str, str],
    told: dict[str, float] | None = None,
) -> list[Change]:
    """Pure: which nodes turn Down or Ready given when each was last heard from and the period
    each was told at that beat (`told`: the nodes that beat in this term; `grace`)."""
    changes = []
    stamp = now_rfc3339()
    told = told or {}
    for node in nodes:
        nid = node["ID"]
        seen = last_seen.get(nid)
        alive = nid == self_id or (seen is not None and now - seen <= grace(nid, period, told))
        state = node["Status"].get("State")
        want = "ready" if alive else "down"
        addr = addrs.get(nid)
        if state == want and (not addr or node["Status"].get("Addr") == addr):
            continue
        updated = copy.deepcopy(node)
        updated["Status"]["State"] = want
        updated["Status"].pop("Message", None)
        if want == "down":
            updated["Status"]["Message"] = (
                f"heartbeat failure: no heartbeat for {MISSED_BEATS} periods"
                if nid in told
                else "heartbeat failure for node in unknown state: not heard from since this leader took office"
            )
        if addr:
            updated["Status"]["Addr"] = addr
        updated["UpdatedAt"] = stamp
        changes.append(
            Change(op="update", kind="node", obj=updated, obj_id=nid, expected_version=node["Version"]["Index"])
        )
    return changes


def spec_period(cluster: dict[str, Any] | None, fallback: float) -> float:
    """The cluster's heartbeat period in seconds (the spec holds nanoseconds); `fallback` while the
    cluster object is not there yet (the first manager, before its initial commit)."""
    nanos = (((cluster or {}).get("Spec") or {}).get("Dispatcher") or {}).get("HeartbeatPeriod")
    return nanos / 1e9 if isinstance(nanos, int) and nanos > 0 else fallback


class Dispatcher:
    def __init__(self, store: Store, self_id: str, period: float, cluster_id: str | None = None) -> None:
        self.store = store
        self.self_id = self_id
        self.cluster_id = cluster_id
        self._fallback = period
        self._period: tuple[int, float] = (-1, period)  # (applied index, period) read once per index
        self.last_seen: dict[str, float] = {}
        self.told: dict[str, float] = {}  # node → the period its last heartbeat answer named
        self.addrs: dict[str, str] = {}
        self.epoch = 0
        self.beats = 0  # heartbeats received in this term
        # (monotonic time, beats so far, how late the round woke) per liveness round, for the last
        # minute: when many nodes turn Down at once, the log says whether beats stopped arriving
        # (the nodes, or the network) or this leader's loop was held (beats unread in its sockets)
        self.rounds: deque[tuple[float, int, float]] = deque(maxlen=64)
        self._failed: str | None = None  # the last liveness round's failure, said once
        self._loop = BackgroundLoop("dispatcher-liveness", self._run)

    @property
    def period(self) -> float:
        """The heartbeat period in effect: the cluster spec's, as of the last applied Raft entry."""
        if self.cluster_id is None:
            return self._fallback
        index = self.store.applied_index
        if self._period[0] != index:
            self._period = (index, spec_period(self.store.get("cluster", self.cluster_id), self._fallback))
        return self._period[1]

    def heartbeat(self, node_id: str, addr: str | None) -> float:
        """Record a beat; returns the period the node is to use until its next beat."""
        metrics.DISPATCHER_HEARTBEATS.inc()
        self.beats += 1
        period = self.period
        self.last_seen[node_id] = time.monotonic()
        self.told[node_id] = period
        if addr:
            self.addrs[node_id] = addr
        return period

    def live_sessions(self) -> int:
        """Nodes heard from within the grace period (a metric)."""
        now, period = time.monotonic(), self.period
        told = dict(self.told)
        return sum(1 for nid, seen in list(self.last_seen.items()) if now - seen <= grace(nid, period, told))

    def start(self) -> None:
        # what this manager heard in an earlier term is stale: kept, the nodes that beat to it back
        # then were Down at once in the new term and their tasks restarted elsewhere (a leader kill
        # at 200 nodes, after elections had flapped while the nodes joined)
        self.last_seen.clear()
        self.told.clear()
        self.rounds.clear()
        self.liveness_round(time.monotonic())  # the grace period of every node starts now
        self.epoch = self.store.epoch  # writes are fenced: a newer leader makes them fail
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    def liveness_round(self, now: float) -> list[Change]:
        """Every node gets its grace period from when this leader first knows of it (a new
        leader's nodes, and a node that joins later: it has not sent its first heartbeat yet)."""
        nodes = self.store.list_shared("node")  # read-only; liveness_changes copies what it changes
        for node in nodes:
            self.last_seen.setdefault(node["ID"], now)
        return liveness_changes(nodes, self.last_seen, now, self.period, self.self_id, self.addrs, self.told)

    def forgive(self, stall: float, now: float) -> None:
        """The leader's own loop was held `stall` seconds past its round (a busy new leader: 200
        nodes' polls and reports at once on two shared CPUs): heartbeats that came meanwhile may
        still sit unread in its sockets, so no node is blamed for that time."""
        if stall < self.period / 4:
            return
        for nid, seen in list(self.last_seen.items()):
            self.last_seen[nid] = min(now, seen + stall)

    def _explain_downs(self, changes: list[Change], now: float) -> None:
        """A tenth of the nodes or more Down in one round: log what this leader saw meanwhile."""
        downs = sum(1 for c in changes if c.obj["Status"]["State"] == "down")
        if downs < 3 or downs * 10 < len(self.last_seen):
            return
        metrics.DISPATCHER_DOWN_BURSTS.inc()
        span = MISSED_BEATS * self.period
        window = [r for r in self.rounds if now - r[0] <= span]
        beats = self.beats - window[0][1] if window else 0
        unheard = sum(1 for c in changes if c.obj["Status"]["State"] == "down" and c.obj_id not in self.told)
        log.warning(
            "%d of %d nodes Down at once (%d of them not heard from in this term): %d heartbeats received "
            "in the last %.0f s; this leader's liveness rounds woke up to %.2f s late meanwhile (%.1f s in all)",
            downs,
            len(self.last_seen),
            unheard,
            beats,
            span,
            max((r[2] for r in window), default=0.0),
            sum(max(0.0, r[2]) for r in window),
        )

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            pause = next_round_in(self.last_seen, self.told, self.period, before)
            await asyncio.sleep(pause)
            now = time.monotonic()
            late = now - before - pause
            metrics.DISPATCHER_ROUND_LATE.observe(max(0.0, late))
            self.rounds.append((now, self.beats, late))
            self.forgive(late, now)
            try:
                changes = self.liveness_round(now)
                self._explain_downs(changes, now)
                if changes:
                    await self.store.acommit(changes, epoch=self.epoch)
                    for c in changes:
                        log.info("node %s is now %s", c.obj_id, c.obj["Status"]["State"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a conflict or lost quorum: the next round retries
                # said once per distinct failure: a new leader whose Down marks did not commit for
                # minutes (docs/scale.md, session 19) logged nothing at the default level
                said = f"{exc.__class__.__name__}: {exc}"
                log.log(logging.DEBUG if said == self._failed else logging.WARNING, "liveness round failed: %s", said)
                self._failed = said
            else:
                self._failed = None
