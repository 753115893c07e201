"""A fleet of simulated nodes in one process: joins them, starts them, loses some, reports."""

from __future__ import annotations

import asyncio
import logging
import random
import resource
import time
from pathlib import Path
from typing import Any

from shoal.agent.join import JoinRequest
from shoal.aio import LagMeter
from shoal.errors import ShoalError
from shoal.model.ids import parse_rfc3339
from shoal.sim.node import NodeShape, SimNode
from shoal.worker.taskloop import POLL_COUNTERS

log = logging.getLogger("shoal.sim")

JOIN_ATTEMPTS = 5


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def cpu_seconds() -> float:
    """User + system CPU time of this process (with its threads): the fleet's whole cost."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def raise_nofile() -> int:
    """Soft RLIMIT_NOFILE up to the hard one: each node keeps two or three TLS connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Fleet:
    def __init__(
        self,
        count: int,
        shape: NodeShape,
        port_base: int = 30000,
        state_dir: Path | None = None,
        first: int = 0,
        join: JoinRequest | None = None,
    ) -> None:
        self.nodes = [
            SimNode(i, port_base + i, shape, state_dir / f"node-{i:05d}" if state_dir else None)
            for i in range(first, first + count)
        ]
        self.lost: list[SimNode] = []
        self.join_request = join
        self.intruder: SimNode | None = None  # not one of `nodes`: joined on demand, never started
        self.lag = LagMeter()  # the fleet's one event loop: beats wait while it is held
        self.rss_start = rss_bytes()  # the interpreter and its modules: not a cost of the nodes

    async def join_all(self, req: JoinRequest, concurrency: int = 16) -> tuple[int, list[str]]:
        """Each node joins (or loads its saved identity) and starts at once; (joined, errors)."""
        gate = asyncio.Semaphore(concurrency)
        errors: list[str] = []

        async def one(node: SimNode) -> None:
            if not node.load():
                async with gate:
                    for attempt in range(JOIN_ATTEMPTS):
                        try:
                            await node.join(req)
                            break
                        except ShoalError as exc:  # a busy manager: try again, a little later
                            if attempt == JOIN_ATTEMPTS - 1:
                                errors.append(f"{node.hostname}: {exc.message}")
                                return
                            await asyncio.sleep(0.5 * (attempt + 1))
            node.start()

        await asyncio.gather(*(one(n) for n in self.nodes))
        return sum(1 for n in self.nodes if n.running), errors

    async def lose(self, count: int) -> list[str]:
        """The first `count` running nodes vanish at once (their connections close, nothing more)."""
        victims = [n for n in self.nodes if n.running][:count]
        await asyncio.gather(*(n.stop() for n in victims))
        self.lost += victims
        return [n.node_id for n in victims]

    async def flap(self, count: int, rounds: int, down: float, up: float, seed: int = 17) -> list[str]:
        """`rounds` times: `count` running nodes picked at random disconnect (their sessions and
        connections end, as a flaky link would), come back `down` seconds later with the tasks
        they run, and stay up `up` seconds. The IDs of the nodes that flapped, in order."""
        rng = random.Random(seed)
        flapped: list[str] = []
        for _ in range(rounds):
            victims = rng.sample([n for n in self.nodes if n.running], min(count, len(self.nodes)))
            await asyncio.gather(*(n.stop() for n in victims))
            flapped += [n.node_id for n in victims]
            await asyncio.sleep(down)
            for node in victims:
                node.start()
            await asyncio.sleep(up)
        return flapped

    async def join_intruder(self) -> SimNode:
        """One more node, after the fleet's last: joins with the token and is never started."""
        assert self.join_request is not None
        if self.intruder is None:
            last = self.nodes[-1]
            node = SimNode(last.index + 1, last.port + 1, last.shape)
            await node.join(self.join_request)
            self.intruder = node
        return self.intruder

    async def stop(self) -> None:
        await asyncio.gather(*(n.stop() for n in self.nodes if n.running))
        await self.lag.stop()

    def stats(self) -> dict[str, Any]:
        live = [n for n in self.nodes if n.running]
        running = sum(len(n.driver.running_ids()) for n in live)
        rss = rss_bytes()
        return {
            "event": "stats",
            "time": time.time(),
            "nodes": len(live),
            "lost": len(self.lost),
            "running": running,
            "starts": sum(n.driver.starts for n in self.nodes),
            "rss_bytes": rss,
            "rss_start_bytes": self.rss_start,
            "rss_per_node_bytes": (rss - self.rss_start) // max(len(self.nodes), 1),
            "connected": sum(1 for n in live if n.session is not None and n.session.connected),
            "beats_unreachable": sum(n.session.unreachable for n in live if n.session is not None),
            "beats_timed_out": sum(n.session.timeouts for n in live if n.session is not None),
            "connections_made": sum(n.pool.connections_made for n in self.nodes),
            **{name: sum(getattr(n.tasks, name) for n in self.nodes if n.tasks is not None) for name in POLL_COUNTERS},
            "beat_slowest_s": max((n.session.slowest for n in live if n.session is not None), default=0.0),
            "cpu_s": cpu_seconds(),
            # when a live node last applied a change to a network it holds (the latest of all
            # processes): once the cluster is quiet, the moment its overlay was the same everywhere
            "net_changed_last": max((n.tasks.net_changed_at for n in live if n.tasks is not None), default=0.0),
            # "network:version" of every network a live node holds (joined across processes): in a
            # quiet cluster, one version per network, or a node was left on an old one
            "net_versions": sorted(
                {f"{net}:{v}" for n in live if n.tasks is not None for net, v in n.tasks.held.have().items()}
            ),
            "loop_late_worst_s": self.lag.worst,
            "loop_stalls": self.lag.stalls,
            "loop_late_total_s": self.lag.total,
        }

    def started(self, since_ns: int) -> dict[str, Any]:
        """Task ID -> when its node's driver started it (RFC 3339), for the tasks started at or after
        `since_ns`: when the answer that carried it reached its node (the sim driver starts a task
        as soon as it is read), which tells a task's delivery from its start and report; and, in
        "delivered", when a manager took its RUNNING report (seconds since the epoch)."""
        started = {
            tid: task.handle.started_at
            for n in self.nodes
            for tid, task in n.driver.tasks.items()
            if parse_rfc3339(task.handle.started_at) >= since_ns
        }
        delivered = {tid: at for n in self.nodes for tid, at in n.driver.running_delivered.items() if tid in started}
        return {"event": "started", "tasks": started, "delivered": delivered}

    def tasks(self) -> dict[str, Any]:
        """Node ID -> the task IDs its driver runs, and every start it ever made (restarts show)."""
        return {
            "event": "tasks",
            "running": {n.node_id: n.driver.running_ids() for n in self.nodes if n.running},
            "starts": {n.node_id: n.driver.starts for n in self.nodes},
        }
