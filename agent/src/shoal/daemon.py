"""shoald: reads its config, serves the local and cluster APIs, runs the node until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import ssl
import sys
from pathlib import Path

from aiohttp import web

from shoal import __version__, config, gcpauses, logs, memory, metrics, tls
from shoal.agent import Agent
from shoal.api import cluster as cluster_api
from shoal.api import local as local_api
from shoal.api import metrics as metrics_api
from shoal.api import ui as ui_api
from shoal.errors import ShoalError
from shoal.files import write_atomic
from shoal.model.objects import split_addr

log = logging.getLogger("shoal.daemon")

# The cluster port's listen queue: a new leader meets every node's reconnect at once (1,000 at the
# scale bench), and past aiohttp's 128 the kernel drops the connections it cannot queue; their
# clients try again after TCP's SYN backoff (1, 3, 7, 15 s), and their heartbeats come that late.
CLUSTER_BACKLOG = 4096


class ClusterServer:
    """The TLS listener on 2377; runs while this node is a manager."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        if self.runner is not None:
            return
        ident = self.agent.require_swarm()
        host, port = split_addr(ident.listen_addr)
        # nodes hold assignment long-polls open here: on shutdown, do not wait for them (a slow stop
        # of the leader would let the others mark nodes Down and reschedule their tasks)
        runner = web.AppRunner(
            cluster_api.build_app(self.agent), access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await runner.setup()
        await web.TCPSite(
            runner,
            host,
            port or ident.cluster_port,
            ssl_context=self._listener_context(),
            reuse_address=True,
            backlog=CLUSTER_BACKLOG,
        ).start()
        self.runner = runner
        log.info("cluster API listening on %s:%s (TLS)", host, port or ident.cluster_port)

    def _listener_context(self) -> ssl.SSLContext:
        """The node's context, switching each new connection to the node's latest one (renewals)."""
        first = self.agent.server_ctx
        assert first is not None
        # a refused certificate learns why (certificate_expired...); the failures are counted
        tls.send_handshake_alerts(lambda error: metrics.TLS_HANDSHAKE_FAILURES.labels(error=error).inc())
        return tls.switching_server_context(first, lambda: self.agent.server_ctx)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


async def start_tcp(app: web.Application, addr: str, what: str) -> web.AppRunner:
    """A plain-HTTP listener of its own (metrics, visualizer): the operator picks a loopback address."""
    host, port = split_addr(addr)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    log.info("%s on http://%s", what, addr)
    return runner


def write_pidfile(path: Path) -> None:
    """By a rename: `shoald_ctl.sh` polls the pidfile while shoald starts, and a file truncated
    before its write reads empty, as if shoald had exited (a failed start in CI). Not durable: a
    pid means nothing after a reboot, and the file lives in the run directory (/run/shoal by
    default, a tmpfs on most hosts)."""
    write_atomic(path, f"{os.getpid()}\n", 0o644, durable=False)


async def serve(cfg: config.Config) -> None:
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    agent = Agent(cfg)
    agent.cluster_server = ClusterServer(agent)
    # what a pull killed with the agent left behind goes before any client can list or pull images
    await asyncio.to_thread(agent.images.recover)
    local = web.AppRunner(local_api.build_app(agent), access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await local.setup()
    sock = cfg.socket_path
    sock.unlink(missing_ok=True)
    old_umask = os.umask(0o177)  # root only: the socket is created 0600
    try:
        await web.UnixSite(local, str(sock)).start()
    finally:
        os.umask(old_umask)
    extra: list[web.AppRunner] = []
    if cfg.metrics_addr:
        extra.append(await start_tcp(metrics_api.build_app(agent), cfg.metrics_addr, "Prometheus metrics"))
    if cfg.ui_addr:
        token = ui_api.load_token(cfg.ui_token_file)
        extra.append(await start_tcp(ui_api.build_app(agent, token), cfg.ui_addr, "visualizer"))
    write_pidfile(cfg.pidfile)
    log.info("shoald %s: control API on %s", __version__, sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    trimmer = loop.create_task(memory.trim_forever())
    collector = loop.create_task(gcpauses.keep_pauses_short(cfg.gc_full_period))
    try:
        await agent.start()
    except ShoalError as exc:  # a reason meant for the operator (e.g. an unreadable Raft state)
        log.exception("could not resume the node's swarm membership")
        agent.error = f"could not resume swarm membership: {exc.message}"
    except Exception:
        log.exception("could not resume the node's swarm membership")
        agent.error = "could not resume swarm membership (see the log)"
    await stop.wait()
    log.info("shutting down")
    trimmer.cancel()
    collector.cancel()
    await agent.stop()
    for runner in extra:
        await runner.cleanup()
    await local.cleanup()
    sock.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        if cfg.pidfile.read_text().strip() == str(os.getpid()):
            cfg.pidfile.unlink()


def tune_interpreter(cfg: config.Config) -> None:
    """A thread back from a system call waits up to the switch interval for the GIL while another
    computes (the convoy effect): in a manager the event loop (heartbeats, polls, the API) and the
    Raft thread wait so on the orchestrator's and the snapshots' threads, and in a worker the task
    starts (~40 file, mount and process calls each, in worker threads) slowed ~5x beside a busy
    thread at CPython's 5 ms, ~3x at 1 ms. `gil_switch_interval`, 1 ms by default (bench/gil.py).
    And TLS connections read through smaller buffers (`tls.READ_BUFFER`): a manager keeps thousands."""
    sys.setswitchinterval(cfg.gil_switch_interval)
    tls.lean_read_buffers()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shoald", description="The shoal agent (manager and worker).")
    parser.add_argument("--version", action="version", version=f"shoald {__version__}")
    config.add_flags(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = config.from_args(args)
    except config.ConfigError as exc:
        print(f"shoald: {exc}", file=sys.stderr)
        return 2
    logs.setup(cfg.log_level)
    memory.limit_arenas()  # before the first thread
    tune_interpreter(cfg)
    asyncio.run(serve(cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
