"""`python -m shoal.sim --managers ADDR[,ADDR] --token TOKEN --nodes N`: N simulated nodes in one
process (one event loop), each joining with the token over TLS like a real worker.

It prints one JSON object per line on stdout (`joined`, then the answer to each command) and
reads commands on stdin, one per line: `stats`, `tasks` (node ID -> running task IDs), `flap K
ROUNDS DOWN_S UP_S` (K random nodes disconnect and come back, ROUNDS times), `intruder` (one
more node joins and never beats), `probe` (it sends garbage and malformed calls: sim/intruder.py),
`lose K`
(K nodes vanish at once), `quit` (also on end of input or SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from pathlib import Path

from shoal import gcpauses, hostinfo, tls
from shoal.agent.join import parse_join_request
from shoal.sim.fleet import Fleet, raise_nofile
from shoal.sim.intruder import probe
from shoal.sim.node import NodeShape


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m shoal.sim", description=__doc__.split("\n\n")[0])
    p.add_argument("--managers", required=True, help="manager cluster addresses, comma separated (HOST[:PORT])")
    p.add_argument("--token", required=True, help="worker join token")
    p.add_argument("--nodes", type=int, required=True, help="how many simulated nodes")
    p.add_argument("--state-dir", type=Path, help="keep each node's identity here (a rerun rejoins nothing)")
    p.add_argument("--advertise-addr", help="IP or interface the nodes advertise (default: the only one)")
    p.add_argument("--port-base", type=int, default=30000, help="node i advertises port BASE+i (default 30000)")
    p.add_argument("--first", type=int, default=0, help="index of the first node (hostnames sim-NNNNN)")
    p.add_argument("--cpus", type=float, default=2.0, help="CPUs each node offers (default 2)")
    p.add_argument("--memory", type=int, default=4 << 30, help="bytes of memory each node offers (default 4 GiB)")
    p.add_argument("--heartbeat-period", type=float, default=5.0, help="until the leader names its own (s)")
    p.add_argument("--start-delay", type=float, default=0.0, help="seconds from a task's start to running")
    p.add_argument("--fail-rate", type=float, default=0.0, help="share of task starts that fail (0-1)")
    p.add_argument("--join-concurrency", type=int, default=16, help="joins in flight at once")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    args = p.parse_args(argv)
    if args.nodes < 1 or not 0 <= args.fail_rate <= 1 or args.start_delay < 0:
        p.error("--nodes must be >= 1, --fail-rate in 0..1, --start-delay >= 0")
    return args


def emit(obj: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def commands(fleet: Fleet) -> None:
    """Answer stdin commands until `quit` or end of input."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().strip()
        if not line or line == "quit":
            return
        verb, _, arg = line.partition(" ")
        if verb == "stats":
            emit(fleet.stats())
        elif verb == "tasks":
            emit(fleet.tasks())
        elif verb == "started" and arg.isdigit():
            emit(fleet.started(int(arg)))
        elif verb == "lose" and arg.isdigit():
            t0 = time.monotonic()
            lost = await fleet.lose(int(arg))
            emit({"event": "lost", "time": time.time(), "nodes": lost, "seconds": time.monotonic() - t0})
        elif verb == "flap" and _numbers(arg, 4):
            count, rounds, down, up = arg.split()
            t0 = time.monotonic()
            flapped = await fleet.flap(int(count), int(rounds), float(down), float(up))
            emit({"event": "flapped", "time": time.time(), "nodes": flapped, "seconds": time.monotonic() - t0})
        elif verb == "intruder":  # one more node joins, never beats: the refusals' subject
            intruder = await fleet.join_intruder()
            emit({"event": "intruder", "node": intruder.node_id, "hostname": intruder.hostname})
        elif verb == "probe" and fleet.intruder is not None:
            emit({"event": "probed", "node": fleet.intruder.node_id, "answers": await probe(fleet.intruder)})
        else:
            emit({"event": "error", "message": f"unknown command {line!r}"})


def _numbers(arg: str, count: int) -> bool:
    parts = arg.split()
    return len(parts) == count and all(p.replace(".", "", 1).isdigit() for p in parts)


async def main(args: argparse.Namespace) -> int:
    nofile = raise_nofile()
    tls.lean_read_buffers()  # as shoald: hundreds of connections, one read buffer each
    remotes = [a.strip() for a in args.managers.split(",") if a.strip()]
    req = parse_join_request({"JoinToken": args.token, "RemoteAddrs": remotes})
    shape = NodeShape(
        advertise_ip=args.advertise_ip,
        nano_cpus=int(args.cpus * 1e9),
        memory_bytes=args.memory,
        period=args.heartbeat_period,
        start_delay=args.start_delay,
        fail_rate=args.fail_rate,
    )
    fleet = Fleet(args.nodes, shape, args.port_base, args.state_dir, args.first, join=req)
    fleet.lag.start()
    # as shoald, whatever the heap: a fleet's heap is mostly its answers' bytes, under the floor in
    # blocks, and CPython's own full collections held its 100 nodes 0.5-0.9 s some 50 times in 5 min
    collector = asyncio.get_running_loop().create_task(gcpauses.keep_pauses_short(floor=0))
    t0 = time.monotonic()
    joined, errors = await fleet.join_all(req, args.join_concurrency)
    emit(
        {"event": "joined", "nodes": joined, "errors": errors[:20], "seconds": time.monotonic() - t0, "nofile": nofile}
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    waiter = loop.create_task(stop.wait())
    reader = loop.create_task(commands(fleet))
    await asyncio.wait([waiter, reader], return_when=asyncio.FIRST_COMPLETED)
    for task in (waiter, reader, collector):
        task.cancel()
    await fleet.stop()
    return 0 if joined else 1


if __name__ == "__main__":
    arguments = parse_args()
    # before the event loop starts: pyroute2 runs a loop of its own to read the interface
    arguments.advertise_ip = hostinfo.resolve_advertise(arguments.advertise_addr)
    logging.basicConfig(level=arguments.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from shoal.manager import ca  # noqa: F401  (in-process key generation: no child process per node)

    sys.exit(asyncio.run(main(arguments)))
