"""The GIL's switch interval and a manager's event loop: heartbeat-sized HTTP requests answered
per second while a worker thread computes (the orchestrator's pass, a snapshot's indexing, the
Raft thread), at CPython's 5 ms, shoal's `gil_switch_interval` (1 ms) and 0.5 ms.

A thread that waits for the GIL gets it after the holder's switch interval; the event loop gives
the GIL up at every system call (select, recv, send), so with a computing thread beside it each of
those can cost it a whole interval. The server runs in a child process (its own GIL) on loopback;
the clients here. Prints requests/s, latency, and how much the worker got done, side by side.

    .venv/bin/python bench/gil.py [--seconds 3] [--clients 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time

import aiohttp
from _cluster import machine_note
from _figures import record

SERVER = r"""
import asyncio, json, sys, threading
from aiohttp import web

interval, worker = float(sys.argv[1]), sys.argv[2] == "1"
sys.setswitchinterval(interval)
rounds = [0]
stop = threading.Event()

def compute():  # pure Python work holding the GIL: dicts and lists, as an orchestrator pass
    while not stop.is_set():
        table = {f"t{i}": {"slot": i, "state": "running"} for i in range(200)}
        sum(1 for t in table.values() if t["state"] == "running")
        rounds[0] += 1

async def beat(request):
    body = await request.json()
    return web.json_response({"Period": 5.0, "Addr": body.get("Addr")})

async def main():
    app = web.Application()
    app.router.add_post("/beat", beat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=compute) if worker else None
    print(json.dumps({"port": port}), flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"
    if thread: thread.start()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "stop"
    stop.set()
    if thread: thread.join()
    print(json.dumps({"worker_rounds": rounds[0]}), flush=True)
    await runner.cleanup()

asyncio.run(main())
"""


async def load(port: int, clients: int, seconds: float) -> list[float]:
    """Each client sends a beat, waits for the answer, again; returns every answer's latency."""
    latencies: list[float] = []
    end = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client(n: int) -> None:
            while time.monotonic() < end:
                sent = time.monotonic()
                async with session.post(f"http://127.0.0.1:{port}/beat", json={"Addr": f"10.0.0.{n}"}) as r:
                    await r.read()
                latencies.append(time.monotonic() - sent)

        await asyncio.gather(*(client(n) for n in range(clients)))
    return latencies


def measure(interval: float, worker: bool, clients: int, seconds: float) -> dict[str, float]:
    argv = [sys.executable, "-c", SERVER, str(interval), "1" if worker else "0"]
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdin is not None and child.stdout is not None
        port = json.loads(child.stdout.readline())["port"]
        child.stdin.write("go\n")
        child.stdin.flush()
        started = time.monotonic()
        latencies = asyncio.run(load(port, clients, seconds))
        took = time.monotonic() - started
        child.stdin.write("stop\n")
        child.stdin.flush()
        rounds = json.loads(child.stdout.readline())["worker_rounds"]
    finally:
        child.wait(timeout=30)
    latencies.sort()
    return {
        "rps": len(latencies) / took,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
        "worker_rps": rounds / took,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    print(machine_note(), flush=True)
    cases = [
        ("no worker thread", 0.005, False),
        ("worker, 5 ms (CPython's default)", 0.005, True),
        ("worker, 1 ms (shoal's gil_switch_interval)", 0.001, True),
        ("worker, 0.5 ms", 0.0005, True),
    ]
    runs: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in cases}
    for _ in range(args.repeat):  # interleaved: the machine's other load moves between runs
        for label, interval, worker in cases:
            runs[label].append(measure(interval, worker, args.clients, args.seconds))
    print(f"medians of {args.repeat} runs of {args.seconds:g} s, {args.clients} clients")
    print(f"{'server':44}{'answers/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'worker rounds/s':>17}")
    for label, _, worker in cases:
        fig = {k: statistics.median(r[k] for r in runs[label]) for k in runs[label][0]}
        print(
            f"{label:44}{fig['rps']:>11.0f}{fig['p50_ms']:>9.1f}{fig['p99_ms']:>9.1f}"
            f"{fig['worker_rps'] if worker else 0:>17.0f}",
            flush=True,
        )
        record(f"answers/s: {label}", [r["rps"] for r in runs[label]], unit="n")
        record(f"p99 latency: {label}", [r["p99_ms"] for r in runs[label]], unit="ms")


if __name__ == "__main__":
    main()
