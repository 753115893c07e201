"""Throughput of the paths shoal's dataplane programs, as ratios to same-host task -> task
(compare with the hand-built kernel path of notes/dataplane.md). Prints figures only.

Paths: same-host task -> task (br0), cross-host task -> task (VXLAN), task -> VIP over two
remote backends (nft DNAT), task -> VIP over one same-host backend (the DNAT cost alone),
controller -> routing mesh through a node that runs no backend of the service.
iperf3 (5 s) and wrk (5 s, 2 threads, 50 connections) against a small asyncio HTTP server in
each backend task (this file, `--serve`). Per-connection round robin would split iperf3's
control and data connections (notes #8): its VIP and mesh runs use one-backend services.
ROUNDS (env, default 3) rounds, medians. The mesh headline is also given per round, and once more
from a direct-mesh-mesh-direct sequence per round (the machine is shared: ratios of paths measured
back to back are what to compare).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HTTP_PORT, IPERF_PORT = 8080, 5201
MESH_HTTP, MESH_IPERF = 30080, 30201
SECONDS = 5


# ---- the HTTP server run inside a backend task (stdlib only, keep-alive, fixed answer)
def serve(port: int) -> None:
    import socket

    ip = _first_ip()
    body = f"Hello World! from {ip}\n".encode()
    response = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    class Http(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = transport
            self.buf = b""
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # notes #11

        def data_received(self, data: bytes) -> None:
            self.buf += data
            n = self.buf.count(b"\r\n\r\n")
            if n:
                self.buf = self.buf[self.buf.rfind(b"\r\n\r\n") + 4 :]
                self.t.write(response * n)  # type: ignore[attr-defined]

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Http, "0.0.0.0", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _first_ip() -> str:
    out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        name, addr = line.split()[1], line.split()[3]
        if name != "lo":
            return addr.split("/")[0]
    return "127.0.0.1"


# ---- the benchmark
def run() -> None:
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "agent" / "src")]
    from integration.test_dataplane_driver import Driver
    from shoal.net.model import NetAttachment, Peer, Published, ServiceLB
    from testbed.bed import Testbed
    from testbed.lock import testbed_lock

    missing = [t for t in ("iperf3", "wrk") if not shutil.which(t)]
    if missing:
        print(f"needs {' and '.join(missing)} (apt-get install -y iperf3 wrk)")
        return
    rounds = int(os.environ.get("ROUNDS", "3"))
    hosts = {"swarm00": "10.213.0.10", "swarm01": "10.213.0.11", "swarm02": "10.213.0.12"}
    net = {"network_id": "benchnetaaaaaaaaaaaaaaaaa", "vni": 4097, "subnet": "10.0.1.0/24", "gateway": "10.0.1.1"}
    ing = {
        "network_id": "benchingressxxxxxxxxxxxxx",
        "vni": 4096,
        "subnet": "10.255.0.0/16",
        "gateway": "10.255.0.1",
        "ingress": True,
    }
    sbox = {"swarm00": "10.255.0.2", "swarm01": "10.255.0.3", "swarm02": "10.255.0.4"}

    def a(n: dict, ip: str) -> NetAttachment:
        return NetAttachment(address=f"{ip}/{n['subnet'].split('/')[1]}", **n)

    # task: (host, attachments, serves)
    tasks = {
        "c0": ("swarm00", [a(net, "10.0.1.20")], False),
        "s1": ("swarm00", [a(net, "10.0.1.11"), a(ing, "10.255.0.11")], True),
        "s2": ("swarm01", [a(net, "10.0.1.12"), a(ing, "10.255.0.12")], True),
        "s3": ("swarm02", [a(net, "10.0.1.13"), a(ing, "10.255.0.13")], True),
    }
    with testbed_lock():
        bed = Testbed()
        bed.up(3)
        drivers = {h: Driver(bed, h, ip) for h, ip in hosts.items()}
        procs: list[subprocess.Popen[bytes]] = []

        def in_task(t: str, argv: list[str]) -> list[str]:
            return bed.exec_argv(tasks[t][0], ["ip", "netns", "exec", f"task-{t}", *argv])

        try:
            for t, (h, atts, _) in tasks.items():
                bed.run(h, ["ip", "netns", "add", f"task-{t}"], check=True)
                drivers[h].call("attach", task_id=t, task_netns=f"/run/netns/task-{t}", attachments=atts)
            for h, d in drivers.items():
                for n in (net, ing):
                    peers = [
                        Peer(n["network_id"], x.ip, x.mac, hosts[th])
                        for _, (th, atts, _) in tasks.items()
                        for x in atts
                        if x.network_id == n["network_id"] and th != h
                    ]
                    if n is ing:
                        peers += [Peer(n["network_id"], ip, a(ing, ip).mac, hosts[sh]) for sh, ip in sbox.items()]
                        peers = [p for p in peers if p.node_ip != hosts[h]]
                    d.call("set_peers", network_id=n["network_id"], peers=peers)
            mesh_http = Published(MESH_HTTP, "tcp", HTTP_PORT, "ingress", ["10.255.0.11", "10.255.0.12"])
            mesh_iperf = Published(MESH_IPERF, "tcp", IPERF_PORT, "ingress", ["10.255.0.11"])
            for h, d in drivers.items():
                d.call("program_ingress", published=[mesh_http, mesh_iperf], ingress=a(ing, sbox[h]))
            nid = net["network_id"]
            drivers["swarm00"].call(
                "program_task_lb",
                task_netns="/run/netns/task-c0",
                services=[
                    ServiceLB("remote2", nid, "10.0.1.2", [(HTTP_PORT, "tcp")], ["10.0.1.12", "10.0.1.13"]),
                    ServiceLB("remote1", nid, "10.0.1.3", [(IPERF_PORT, "tcp")], ["10.0.1.12"]),
                    ServiceLB("local1", nid, "10.0.1.4", [(HTTP_PORT, "tcp"), (IPERF_PORT, "tcp")], ["10.0.1.11"]),
                ],
            )
            for t, (_, _, serves) in tasks.items():
                if serves:
                    for argv in (
                        ["python", str(Path(__file__).resolve()), "--serve", str(HTTP_PORT)],
                        ["iperf3", "-s", "-p", str(IPERF_PORT)],
                    ):
                        procs.append(
                            subprocess.Popen(
                                in_task(t, argv),
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL,
                                start_new_session=True,
                            )
                        )
            time.sleep(1.0)

            def from_c0(argv: list[str]) -> list[str]:
                return in_task("c0", argv)

            def from_ctl(argv: list[str]) -> list[str]:
                return ["ip", "netns", "exec", "shoal-ctl", *argv]

            paths = [
                ("same-host task -> task", from_c0, "10.0.1.11", HTTP_PORT, IPERF_PORT),
                ("cross-host task -> task", from_c0, "10.0.1.12", HTTP_PORT, IPERF_PORT),
                ("task -> VIP, 2 remote backends", from_c0, "10.0.1.2", HTTP_PORT, None),
                ("task -> VIP, 1 remote backend", from_c0, "10.0.1.3", None, IPERF_PORT),
                ("task -> VIP, 1 same-host backend", from_c0, "10.0.1.4", HTTP_PORT, IPERF_PORT),
                ("mesh via node without backend", from_ctl, "10.213.0.12", MESH_HTTP, MESH_IPERF),
            ]
            for _, via, ip, hp, _ in paths:
                if hp:
                    check = subprocess.run(via(["curl", "-s", "-m", "3", f"http://{ip}:{hp}/"]), capture_output=True)
                    if b"Hello" not in check.stdout:
                        raise RuntimeError(f"no answer from {ip}:{hp}")
            gbps: dict[str, list[float]] = {p[0]: [] for p in paths}
            rps: dict[str, list[float]] = {p[0]: [] for p in paths}
            abba: list[float] = []
            for _ in range(rounds):
                for name, via, ip, hp, ip_port in paths:
                    if ip_port:
                        gbps[name].append(iperf(via, ip, ip_port))
                    if hp:
                        rps[name].append(wrk(via, ip, hp))
                # the mesh headline again, its two paths back to back in the order direct, mesh,
                # mesh, direct: a load that drifts during the round weighs on both sides alike
                _, d_via, d_ip, _, d_port = paths[1]
                _, m_via, m_ip, _, m_port = paths[5]
                d1 = iperf(d_via, d_ip, d_port)
                m1 = iperf(m_via, m_ip, m_port)
                m2 = iperf(m_via, m_ip, m_port)
                d2 = iperf(d_via, d_ip, d_port)
                abba.append((m1 + m2) / (d1 + d2))
            report(paths, gbps, rps, rounds)
            print(
                "  routing mesh vs direct, iperf3 paired direct-mesh-mesh-direct per round: "
                + ", ".join(f"{r:.2f}" for r in abba)
                + f" (median {statistics.median(abba):.2f})"
            )
        finally:
            for p in procs:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                    p.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            for d in drivers.values():
                try:
                    d.call("cleanup")
                finally:
                    d.close()
            for t, (h, _, _) in tasks.items():
                bed.run(h, ["ip", "netns", "del", f"task-{t}"])


def iperf(via: object, ip: str, port: int) -> float:
    argv = ["iperf3", "-c", ip, "-p", str(port), "-t", str(SECONDS), "-J"]
    out = subprocess.run(via(argv), capture_output=True, text=True, timeout=SECONDS + 30)  # type: ignore[operator]
    try:
        return json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9
    except (ValueError, KeyError):
        return float("nan")


def wrk(via: object, ip: str, port: int) -> float:
    argv = ["wrk", "-t", "2", "-c", "50", "-d", f"{SECONDS}s", f"http://{ip}:{port}/"]
    out = subprocess.run(via(argv), capture_output=True, text=True, timeout=SECONDS + 30).stdout  # type: ignore[operator]
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    return float("nan")


def report(paths: list, gbps: dict[str, list[float]], rps: dict[str, list[float]], rounds: int) -> None:
    def med(xs: list[float]) -> float | None:
        return statistics.median(xs) if xs else None

    base_g, base_r = med(gbps[paths[0][0]]), med(rps[paths[0][0]])
    print(f"medians of {rounds} rounds, {SECONDS} s each; ratio = to same-host task -> task")
    print(f"{'path':34} {'iperf3 Gbit/s':>14} {'ratio':>6} {'HTTP req/s':>11} {'ratio':>6}")
    for name, *_ in paths:
        g, r = med(gbps[name]), med(rps[name])
        gs = f"{g:14.2f} {g / base_g:6.2f}" if g is not None and base_g else f"{'-':>14} {'':6}"
        rs = f"{r:11,.0f} {r / base_r:6.2f}" if r is not None and base_r else f"{'-':>11} {'':6}"
        print(f"{name:34} {gs} {rs}")
    cross_g, cross_r = med(gbps[paths[1][0]]), med(rps[paths[1][0]])
    vip_g, vip_r = med(gbps[paths[3][0]]), med(rps[paths[2][0]])
    local_g, local_r = med(gbps[paths[4][0]]), med(rps[paths[4][0]])
    mesh_g, mesh_r = med(gbps[paths[5][0]]), med(rps[paths[5][0]])
    print("headline ratios (each against the same traffic without shoal's load balancing in the way):")
    if cross_g and cross_r and vip_g and vip_r:
        print(
            f"  VIP vs direct, across hosts: iperf3 {vip_g / cross_g:.2f} (VIP over 1 remote backend / the 1-backend "
            f"baseline: cross-host task -> task)  HTTP {vip_r / cross_r:.2f} (VIP over 2 remote backends / the same "
            "baseline)  (goal >= 0.9)"
        )
    if base_g and base_r and local_g and local_r:
        print(
            f"  VIP vs direct, same host (the DNAT alone): iperf3 {local_g / base_g:.2f}  HTTP {local_r / base_r:.2f} "
            "(VIP over 1 same-host backend / same-host task -> task)"
        )
    if cross_g and cross_r and mesh_g and mesh_r:
        print(
            f"  routing mesh vs direct: iperf3 {mesh_g / cross_g:.2f}  HTTP {mesh_r / cross_r:.2f} (controller -> "
            "published port of a node without a backend / cross-host task -> task)  (goal >= 0.85)"
        )
    # a round measures the two paths a few seconds apart: its own ratio is steadier on a shared
    # machine than the ratio of medians taken over the whole run
    for unit, series in (("iperf3", gbps), ("HTTP", rps)):
        pairs = list(zip(series[paths[5][0]], series[paths[1][0]], strict=False))
        per_round = [m / c for m, c in pairs if c and m == m and c == c]
        if per_round:
            spread = ", ".join(f"{r:.2f}" for r in per_round)
            print(
                f"  routing mesh vs direct per round, {unit}: {spread} "
                f"(median {statistics.median(per_round):.2f}, spread {max(per_round) - min(per_round):.2f})"
            )
    print(f"  load average at the end (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
    else:
        run()
