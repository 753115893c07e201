"""Embedded DNS: queries per second and latency through 127.0.0.11 inside a task namespace.

Runs inside testbed host swarm01 (under the testbed lock): this process plays the agent and
serves EmbeddedDNS from its asyncio loop for one task namespace it makes; the load comes from a
separate process inside that namespace (as a task's would), so client and server do not share
a GIL. Each case is bounded by a query count and a time limit. Also prints the agent's CPU time
per query, the figure that matters when one loop serves every task. Prints figures only.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import secrets
import selectors
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "agent" / "src")]

HOST = "swarm01"
COUNT = 50_000  # queries per case at most …
SECONDS = 4.0  # … and at most this long
LOST_AFTER = 1.0  # a UDP query without answer after this is counted lost and sent again

TASK_IPS = [f"10.0.1.{i}" for i in range(3, 13)]
NOERROR, SERVFAIL = 0, 2
# (label, transport, name, in flight, expected rcode, expected A records): an answer counts only when
# it is this answer (ID, rcode and exactly these addresses); anything else is counted as wrong
CASES = [
    ("service VIP, UDP, 1 in flight", "udp", "web", 1, NOERROR, ["10.0.1.2"]),
    ("service VIP, UDP, 16 in flight", "udp", "web", 16, NOERROR, ["10.0.1.2"]),
    ("tasks.<svc> (10 IPs, shuffled), UDP, 16 in flight", "udp", "tasks.web", 16, NOERROR, TASK_IPS),
    ("task name, UDP, 16 in flight", "udp", "web.1", 16, NOERROR, ["10.0.1.3"]),
    ("unknown name -> SERVFAIL (no upstream), UDP, 16", "udp", "nosuch.example", 16, SERVFAIL, []),
    ("service VIP, TCP, 1 connection, 16 pipelined", "tcp", "web", 16, NOERROR, ["10.0.1.2"]),
]


# ---------------------------------------------------------------- root namespace side


def main() -> None:
    from testbed.bed import Testbed
    from testbed.lock import testbed_lock

    bed = Testbed()
    with testbed_lock():
        bed.up(3)
        res = bed.run(HOST, ["python", str(Path(__file__).resolve()), "server"], timeout=600)
    sys.stdout.write(res.stdout)
    if res.returncode != 0:
        sys.stderr.write(res.stderr)
        sys.exit(res.returncode)


# ---------------------------------------------------------------- inside the test host: the "agent"


def server() -> None:
    ns = f"dnsbench-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        results = asyncio.run(run_cases(ns))
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    print(f"embedded DNS through 127.0.0.11 in a task namespace ({os.cpu_count()} CPUs; client in its own process)")
    print("answered = right answers only (ID, rcode and exactly the expected A records); wrong = the others")
    print(
        f"{'case':52} {'answered':>8} {'qps':>8} {'p50 ms':>7} {'p99 ms':>7} {'lost':>5} {'wrong':>5} "
        f"{'agent CPU/query':>16}"
    )
    for label, r in results:
        print(
            f"{label:52} {r['answered']:>8} {r['qps']:>8.0f} {r['p50_ms']:>7.3f} {r['p99_ms']:>7.3f}"
            f" {r['lost']:>5} {r['wrong']:>5} {r['server_cpu_us']:>13.1f} µs"
        )
    if any(r["wrong"] or not r["answered"] for _, r in results):
        sys.exit("embedded DNS gave wrong answers (or none): the figures above do not count them")


async def run_cases(ns: str) -> list[tuple[str, dict[str, Any]]]:
    from shoal.net.dns import DNSRecordSet, EmbeddedDNS

    dns = EmbeddedDNS()
    task_ips = TASK_IPS
    dns.update(
        [
            DNSRecordSet(
                "net-one",
                {"web": ["10.0.1.2"]},
                {"web": task_ips},
                {f"web.{i}.{secrets.token_hex(12)}": ip for i, ip in enumerate(task_ips, 1)}
                | {f"web.{i}": ip for i, ip in enumerate(task_ips, 1)},
            )
        ]
    )
    await dns.add_task("bench", f"/run/netns/{ns}", ["net-one"])
    results = []
    try:
        for label, transport, name, inflight, rcode, ips in CASES:
            before = resource.getrusage(resource.RUSAGE_SELF)
            queries_before = dns.stats.queries
            proc = await asyncio.create_subprocess_exec(
                "ip",
                "netns",
                "exec",
                ns,
                sys.executable,
                str(Path(__file__).resolve()),
                "client",
                transport,
                name,
                str(inflight),
                str(rcode),
                ",".join(ips),
                stdout=subprocess.PIPE,
            )
            out, _ = await proc.communicate()
            after = resource.getrusage(resource.RUSAGE_SELF)
            result = json.loads(out.decode().strip().splitlines()[-1])
            served = max(1, dns.stats.queries - queries_before)
            cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            result["server_cpu_us"] = cpu / served * 1e6
            results.append((label, result))
    finally:
        await dns.close()
    return results


# ---------------------------------------------------------------- inside the task namespace: the load


def query(name: str) -> tuple[bytes, int]:
    ident = random.randrange(65536)
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + b"\0\0\x01\0\x01", ident


def answer_of(data: bytes) -> tuple[int, int, list[str]]:
    """(ID, rcode, the A records' addresses) of a DNS response; rcode -1 when it is not a response."""
    ident, flags, qdcount, ancount = struct.unpack_from("!HHHH", data)
    pos = 12
    for _ in range(qdcount):
        pos = skip_name(data, pos) + 4
    addresses = []
    for _ in range(ancount):
        pos = skip_name(data, pos)
        rtype, _, _, length = struct.unpack_from("!HHIH", data, pos)
        pos += 10
        if rtype == 1 and length == 4:
            addresses.append(socket.inet_ntoa(data[pos : pos + 4]))
        pos += length
    return ident, (flags & 0xF) if flags & 0x8000 else -1, addresses


def skip_name(data: bytes, pos: int) -> int:
    while data[pos]:
        if data[pos] & 0xC0 == 0xC0:  # a compression pointer ends the name
            return pos + 2
        pos += 1 + data[pos]
    return pos + 1


class Expected:
    """What every answer must be; `wrong` counts the others (they are not counted as answered)."""

    def __init__(self, rcode: int, ips: list[str]) -> None:
        self.rcode, self.ips, self.wrong = rcode, sorted(ips), 0

    def right(self, data: bytes, ident: int | None) -> bool:
        try:
            got_ident, rcode, addresses = answer_of(data)
        except (struct.error, IndexError, OSError):
            got_ident, rcode, addresses = -1, -1, []
        ok = (ident is None or got_ident == ident) and rcode == self.rcode and sorted(addresses) == self.ips
        self.wrong += not ok
        return ok


def client(transport: str, name: str, inflight: int, rcode: int, ips: list[str]) -> None:
    expected = Expected(rcode, ips)
    load = udp_load if transport == "udp" else tcp_load
    latencies = load(name, inflight, expected)
    lost = latencies.pop()
    ordered = sorted(latencies[1:])
    elapsed = latencies[0]
    print(
        json.dumps(
            {
                "answered": len(ordered),
                "qps": len(ordered) / elapsed,
                "p50_ms": ordered[len(ordered) // 2] * 1000 if ordered else float("nan"),
                "p99_ms": ordered[int(len(ordered) * 0.99)] * 1000 if ordered else float("nan"),
                "lost": int(lost),
                "wrong": expected.wrong,
            }
        )
    )


def udp_load(name: str, inflight: int, expected: Expected) -> list[float]:
    """Closed loop: `inflight` sockets, each with one query outstanding. Returns [elapsed,
    latencies..., lost]."""
    sel = selectors.DefaultSelector()
    sent: dict[socket.socket, tuple[float, int]] = {}
    latencies: list[float] = []
    lost = 0
    start = time.monotonic()
    deadline = start + SECONDS
    issued = 0

    def send(s: socket.socket) -> None:
        nonlocal issued
        packet, ident = query(name)
        sent[s] = (time.monotonic(), ident)
        s.send(packet)
        issued += 1

    for _ in range(inflight):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("127.0.0.11", 53))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        send(s)
    while sent and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            assert isinstance(s, socket.socket)
            data = s.recv(65535)
            t0, ident = sent.pop(s)
            if expected.right(data, ident):
                latencies.append(time.monotonic() - t0)
            if issued < COUNT:
                send(s)
        now = time.monotonic()
        for s, (t0, _) in list(sent.items()):
            if now - t0 > LOST_AFTER:
                lost += 1
                send(s)
    elapsed = time.monotonic() - start
    for key in list(sel.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    return [elapsed, *latencies, float(lost)]


def tcp_load(name: str, inflight: int, expected: Expected) -> list[float]:
    """One connection, `inflight` queries pipelined; answers come back in order for local names."""
    s = socket.create_connection(("127.0.0.11", 53), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pending: list[float] = []
    latencies: list[float] = []
    buffer = b""
    start = time.monotonic()
    deadline = start + SECONDS
    issued = 0

    idents: list[int] = []

    def send() -> None:
        nonlocal issued
        packet, ident = query(name)
        pending.append(time.monotonic())
        idents.append(ident)
        s.sendall(struct.pack("!H", len(packet)) + packet)
        issued += 1

    for _ in range(inflight):
        send()
    while pending and time.monotonic() < deadline:
        buffer += s.recv(65536)
        while len(buffer) >= 2 and len(buffer) >= 2 + struct.unpack_from("!H", buffer)[0]:
            length = struct.unpack_from("!H", buffer)[0]
            message, buffer = buffer[2 : 2 + length], buffer[2 + length :]
            sent_at, ident = pending.pop(0), idents.pop(0)
            if expected.right(message, ident):
                latencies.append(time.monotonic() - sent_at)
            if issued < COUNT:
                send()
    elapsed = time.monotonic() - start
    s.close()
    return [elapsed, *latencies, 0.0]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "server":
        server()
    elif len(sys.argv) > 1 and sys.argv[1] == "client":
        client(
            sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), [ip for ip in sys.argv[6].split(",") if ip]
        )
    else:
        main()
