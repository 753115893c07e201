"""Embedded DNS on the real kernel, inside a testbed host.

The test runs this file as a driver inside swarm01 (`python test_dns.py driver SUFFIX`): the
driver plays the agent (its own namespace is the host's), makes two task namespaces and a third
one for a stub upstream resolver (a tiny dnslib server on a veth, 192.168.250.0/30, all inside
the test host), serves EmbeddedDNS for both tasks from one asyncio loop, and resolves from the
task namespaces with glibc (`getent`) and a raw dnslib client over UDP and TCP. It prints what
it saw as JSON; the assertions are here in the test. Everything it made is removed by name/pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from testbed.bed import Testbed

HOST = "swarm01"
UPSTREAM_HOST_SIDE = "192.168.250.1"
UPSTREAM_ADDR = "192.168.250.2"
T = TypeVar("T")


# ---------------------------------------------------------------- the test (root namespace side)


def test_embedded_dns_in_task_namespaces(bed: Testbed) -> None:
    suffix = secrets.token_hex(3)
    res = bed.run(HOST, ["python", os.path.abspath(__file__), "driver", suffix], timeout=180)
    assert res.returncode == 0, f"driver failed:\n{res.stdout}\n{res.stderr}"
    seen: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])

    # without upstreams: our names, per network, and SERVFAIL at once for the rest
    assert seen["a web"] == [0, ["10.0.1.2"]]
    assert seen["a tasks.web"] == [0, ["10.0.1.3", "10.0.1.4"]]
    assert seen["a rr"] == [0, ["10.0.1.5", "10.0.1.6"]]
    assert seen["a web.1"] == [0, ["10.0.1.3"]]
    assert seen["a WEB.1.ABC123."] == [0, ["10.0.1.3"]]
    assert seen["a db"][0] == 2, "a task must not resolve names of a network it is not on"
    assert seen["b db"] == [0, ["10.0.2.2"]]
    assert seen["b web"][0] == 2
    assert seen["a reverse 10.0.1.3"] == [0, ["web.1.abc123"]]
    unknown = seen["a udp nosuch.example"]
    assert unknown["rcode"] == "SERVFAIL"  # answered (no upstream to wait for), not left to time out
    aaaa = seen["a udp web AAAA"]
    assert (aaaa["rcode"], aaaa["tc"], aaaa["answers"]) == ("NOERROR", 0, [])
    pipelined = [sorted(r["answers"]) for r in seen["a tcp pipelined"]]
    assert pipelined == [["10.0.1.2"], ["10.0.1.3", "10.0.1.4"], ["10.0.1.3"]]
    assert seen["a udp after garbage"]["answers"] == ["10.0.1.2"]
    assert seen["a tcp after garbage"]["answers"] == ["10.0.1.2"]
    # closed by the server, and not before its idle timeout (1 s); how late depends on the machine's load
    assert seen["a tcp idle closed after"] >= 0.9, seen["a tcp idle closed after"]
    assert seen["dropped"] == 5  # 4 datagrams and the TCP message
    assert seen["a api after update"] == [0, ["10.0.1.20"]]
    assert seen["a web after update"][0] == 2
    assert seen["b after remove_task"] == "no answer"
    assert seen["a still served after b removed"]["answers"] == ["10.0.1.20"]

    # with the stub upstream: forwarded from the host's namespace, UDP then TCP on truncation
    assert seen["a ext.example"] == [0, ["203.0.113.7"]]
    assert seen["a whoami.example"] == [0, [UPSTREAM_HOST_SIDE]], "forwarding must leave from the host namespace"
    assert seen["a db via upstream"][0] == 2  # other network's name: the upstream says NXDOMAIN
    assert seen["a web with upstream"] == [0, ["10.0.1.2"]]
    big_udp = seen["a udp big.example"]
    assert big_udp["rcode"] == "NOERROR" and big_udp["tc"] == 1
    assert len(seen["a tcp big.example"][0]["answers"]) == 40
    assert len(seen["a udp edns big.example"]["answers"]) == 40 and seen["a udp edns big.example"]["tc"] == 0
    assert seen["a getent big.example"][0] == 0 and len(seen["a getent big.example"][1]) == 40
    slow = seen["a udp slow.example"]
    # SERVFAIL once the upstream timeout (2 s) ran out, not before: the upstream was waited for
    assert slow["rcode"] == "SERVFAIL" and slow["ms"] >= 1900, slow
    assert seen["stub saw"] and set(seen["stub saw"]) == {UPSTREAM_HOST_SIDE}

    # nothing of the driver's is left in the host
    assert suffix not in bed.run(HOST, ["ip", "netns", "list"]).stdout
    assert suffix not in bed.run(HOST, ["ip", "-o", "link", "show"]).stdout
    assert UPSTREAM_HOST_SIDE not in bed.run(HOST, ["ip", "-o", "addr", "show"]).stdout


# ---------------------------------------------------------------- the driver (inside the test host)

RECORDS_V1 = [
    {
        "network_id": "net-one",
        "services": {"web": ["10.0.1.2"], "rr": ["10.0.1.5", "10.0.1.6"]},
        "tasks_of": {"web": ["10.0.1.3", "10.0.1.4"], "rr": ["10.0.1.5", "10.0.1.6"]},
        "names": {"web.1.abc123": "10.0.1.3", "web.1": "10.0.1.3", "web.2.def456": "10.0.1.4", "web.2": "10.0.1.4"},
    },
    {
        "network_id": "net-two",
        "services": {"db": ["10.0.2.2"]},
        "tasks_of": {"db": ["10.0.2.3"]},
        "names": {"db.1.xyz789": "10.0.2.3", "db.1": "10.0.2.3"},
    },
]


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


def in_netns(path: str, fn: Callable[[], T]) -> asyncio.Future[T]:
    """fn() in a fresh thread that entered the namespace: the driver's own threads never move."""
    from pyroute2.netns import setns

    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                setns(fd, flags=0)
            finally:
                os.close(fd)
            result = fn()
        except BaseException as exc:
            loop.call_soon_threadsafe(future.set_exception, exc)
        else:
            loop.call_soon_threadsafe(future.set_result, result)

    threading.Thread(target=run, daemon=True).start()
    return future


def summary(raw: bytes, started: float) -> dict[str, Any]:
    from dnslib import QTYPE, RCODE, DNSRecord

    reply = DNSRecord.parse(raw)
    return {
        "rcode": RCODE.get(reply.header.rcode),
        "tc": reply.header.tc,
        "answers": [str(rr.rdata) for rr in reply.rr if rr.rtype in (QTYPE.A, QTYPE.AAAA)],
        "ms": round((time.monotonic() - started) * 1000),
    }


def udp_ask(name: str, qtype: str = "A", edns: int | None = None, timeout: float = 5.0) -> dict[str, Any] | str:
    from dnslib import EDNS0, DNSRecord

    q = DNSRecord.question(name, qtype)
    if edns:
        q.add_ar(EDNS0(udp_len=edns))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        started = time.monotonic()
        s.sendto(q.pack(), ("127.0.0.11", 53))
        try:
            return summary(s.recv(65535), started)
        except (TimeoutError, ConnectionRefusedError):
            return "no answer"


def tcp_ask(names: list[str]) -> list[dict[str, Any]]:
    """Several queries on one connection, all sent before reading (pipelined)."""
    from dnslib import DNSRecord

    with socket.create_connection(("127.0.0.11", 53), timeout=5) as s:
        started = time.monotonic()
        for name in names:
            packet = DNSRecord.question(name).pack()
            s.sendall(struct.pack("!H", len(packet)) + packet)
        replies = []
        for _ in names:
            (length,) = struct.unpack("!H", recv_exactly(s, 2))
            replies.append(summary(recv_exactly(s, length), started))
        return replies


def recv_exactly(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def tcp_garbage_then_query() -> dict[str, Any]:
    """A malformed message costs only itself: the same connection answers the next one."""
    from dnslib import DNSRecord

    with socket.create_connection(("127.0.0.11", 53), timeout=5) as s:
        started = time.monotonic()
        packet = DNSRecord.question("web").pack()
        s.sendall(b"\x00\x05hello" + struct.pack("!H", len(packet)) + packet)
        (length,) = struct.unpack("!H", recv_exactly(s, 2))
        return summary(recv_exactly(s, length), started)


def tcp_idle_close() -> float:
    """Seconds until the server closes a connection that sends nothing."""
    with socket.create_connection(("127.0.0.11", 53), timeout=10) as s:
        started = time.monotonic()
        with contextlib.suppress(OSError):  # EOF and reset both mean closed
            s.recv(1)
        return round(time.monotonic() - started, 2)


def send_garbage() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        cut_question = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03we"
        for packet in (b"", b"\x01\x02\x03", cut_question, b"\x12\x34\x81\x80" + bytes(8)):
            s.sendto(packet, ("127.0.0.11", 53))


async def getent(ns: str, resolv: str, *args: str) -> tuple[int, list[str]]:
    """glibc's resolver in the task namespace, with the task's resolv.conf bound over
    /etc/resolv.conf in the private mount namespace `ip netns exec` makes."""
    script = 'mount --bind "$0" /etc/resolv.conf && exec getent "$@"'
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, "sh", "-c", script, resolv, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, _ = await proc.communicate()
    # ahostsv4 lists "ADDRESS STREAM NAME" per address and socket type; hosts ADDRESS -> "ADDRESS NAME"
    column = 1 if args[0] == "hosts" else 0
    found = {line.split()[column] for line in out.decode().splitlines() if line.strip()}
    return proc.returncode or 0, sorted(found)


async def checks(ns_a: str, ns_b: str, resolv: str, stub_log: str) -> dict[str, Any]:
    from shoal.net.dns import DNSRecordSet, EmbeddedDNS

    path_a, path_b = f"/run/netns/{ns_a}", f"/run/netns/{ns_b}"
    seen: dict[str, Any] = {}
    dns = EmbeddedDNS(tcp_idle_timeout=1.0)
    dns.update([DNSRecordSet(**r) for r in RECORDS_V1])
    await dns.add_task("task-a", path_a, ["net-one"])
    await dns.add_task("task-b", path_b, ["net-two"])
    try:
        for name in ("web", "tasks.web", "rr", "web.1", "WEB.1.ABC123.", "db"):
            seen[f"a {name}"] = await getent(ns_a, resolv, "ahostsv4", name)
        seen["b db"] = await getent(ns_b, resolv, "ahostsv4", "db")
        seen["b web"] = await getent(ns_b, resolv, "ahostsv4", "web")
        seen["a reverse 10.0.1.3"] = await getent(ns_a, resolv, "hosts", "10.0.1.3")
        seen["a udp nosuch.example"] = await in_netns(path_a, lambda: udp_ask("nosuch.example"))
        seen["a udp web AAAA"] = await in_netns(path_a, lambda: udp_ask("web", "AAAA"))
        seen["a tcp pipelined"] = await in_netns(path_a, lambda: tcp_ask(["web", "tasks.web", "web.1"]))
        seen["a tcp after garbage"] = await in_netns(path_a, tcp_garbage_then_query)
        seen["a tcp idle closed after"] = await in_netns(path_a, tcp_idle_close)
        await in_netns(path_a, send_garbage)
        seen["a udp after garbage"] = await in_netns(path_a, lambda: udp_ask("web"))
        seen["dropped"] = dns.stats.dropped
        dns.update([DNSRecordSet("net-one", {"api": ["10.0.1.20"]}, {"api": ["10.0.1.21"]}, {})])
        seen["a api after update"] = await getent(ns_a, resolv, "ahostsv4", "api")
        seen["a web after update"] = await getent(ns_a, resolv, "ahostsv4", "web")
        await dns.remove_task("task-b")
        seen["b after remove_task"] = await in_netns(path_b, lambda: udp_ask("db", timeout=0.5))
        seen["a still served after b removed"] = await in_netns(path_a, lambda: udp_ask("api"))
    finally:
        await dns.close()

    # a second server in the same namespace: close() must have released 127.0.0.11:53
    dns = EmbeddedDNS(upstreams=[UPSTREAM_ADDR])
    dns.update([DNSRecordSet(**r) for r in RECORDS_V1])
    await dns.add_task("task-a", path_a, ["net-one"])
    try:
        seen["a ext.example"] = await getent(ns_a, resolv, "ahostsv4", "ext.example")
        seen["a whoami.example"] = await getent(ns_a, resolv, "ahostsv4", "whoami.example")
        seen["a db via upstream"] = await getent(ns_a, resolv, "ahostsv4", "db")
        seen["a web with upstream"] = await getent(ns_a, resolv, "ahostsv4", "web")
        seen["a udp big.example"] = await in_netns(path_a, lambda: udp_ask("big.example"))
        seen["a tcp big.example"] = await in_netns(path_a, lambda: tcp_ask(["big.example"]))
        seen["a udp edns big.example"] = await in_netns(path_a, lambda: udp_ask("big.example", edns=4096))
        seen["a getent big.example"] = await getent(ns_a, resolv, "ahostsv4", "big.example")
        seen["a udp slow.example"] = await in_netns(path_a, lambda: udp_ask("slow.example"))
    finally:
        await dns.close()
    with open(stub_log) as log:
        seen["stub saw"] = sorted({line.split()[0] for line in log if line.strip()})
    return seen


def driver(suffix: str) -> None:
    ns_a, ns_b, ns_up = f"dnsa-{suffix}", f"dnsb-{suffix}", f"dnsu-{suffix}"
    veth_host, veth_up = f"dnsu{suffix}h", f"dnsu{suffix}n"
    workdir = tempfile.mkdtemp(prefix=f"shoal-dns-{suffix}-")
    resolv = os.path.join(workdir, "resolv.conf")
    stub_log = os.path.join(workdir, "stub.log")
    with open(resolv, "w") as f:
        f.write("nameserver 127.0.0.11\noptions attempts:1 timeout:4\n")
    made: list[str] = []
    stub: subprocess.Popen[str] | None = None
    try:
        for ns in (ns_a, ns_b, ns_up):
            sh("ip", "netns", "add", ns)
            made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        for ns, address in ((ns_a, "10.0.1.10/24"), (ns_b, "10.0.2.10/24")):
            # a task has an eth0: without a non-loopback address getaddrinfo (AI_ADDRCONFIG)
            # returns nothing before asking DNS. Both veth ends stay inside the task namespace.
            sh("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
            sh("ip", "-n", ns, "addr", "add", address, "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0p", "up")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "link", "add", veth_host, "type", "veth", "peer", "name", veth_up, "netns", ns_up)
        sh("ip", "addr", "add", f"{UPSTREAM_HOST_SIDE}/30", "dev", veth_host)
        sh("ip", "link", "set", veth_host, "up")
        sh("ip", "-n", ns_up, "addr", "add", f"{UPSTREAM_ADDR}/30", "dev", veth_up)
        sh("ip", "-n", ns_up, "link", "set", veth_up, "up")
        stub = subprocess.Popen(
            ["ip", "netns", "exec", ns_up, sys.executable, os.path.abspath(__file__), "stub", UPSTREAM_ADDR, stub_log],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert stub.stdout is not None and stub.stdout.readline().strip() == "ready"
        seen = asyncio.run(checks(ns_a, ns_b, resolv, stub_log))
    finally:
        if stub is not None:
            stub.kill()
            stub.wait()
        subprocess.run(["ip", "link", "del", veth_host], capture_output=True)
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for name in (resolv, stub_log):
            if os.path.exists(name):
                os.unlink(name)
        os.rmdir(workdir)
    print(json.dumps(seen))


# ---------------------------------------------------------------- the stub upstream resolver


def stub_answer(packet: bytes, client: str, tcp: bool) -> bytes | None:
    from dnslib import RCODE, RR, A, DNSRecord

    q = DNSRecord.parse(packet)
    name = str(q.q.qname).rstrip(".").lower()
    reply = q.reply()
    if name == "slow.example":
        return None
    if name == "whoami.example":
        reply.add_answer(RR(q.q.qname, rdata=A(client), ttl=0))
    elif name == "ext.example":
        reply.add_answer(RR(q.q.qname, rdata=A("203.0.113.7"), ttl=60))
    elif name == "big.example" and not tcp:
        reply.header.tc = 1  # as a real server does when 40 addresses do not fit
    elif name == "big.example":
        for i in range(1, 41):
            reply.add_answer(RR(q.q.qname, rdata=A(f"198.51.100.{i}"), ttl=60))
    else:
        reply.header.rcode = RCODE.NXDOMAIN
    return reply.pack()


def stub(address: str, log_path: str) -> None:
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((address, 53))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((address, 53))
    tcp.listen(16)

    def serve_tcp() -> None:
        while True:
            conn, peer = tcp.accept()
            with conn:
                try:
                    (length,) = struct.unpack("!H", recv_exactly(conn, 2))
                    log.write(f"{peer[0]} tcp\n")
                    reply = stub_answer(recv_exactly(conn, length), peer[0], tcp=True)
                    if reply:
                        conn.sendall(struct.pack("!H", len(reply)) + reply)
                except (EOFError, OSError):
                    pass

    threading.Thread(target=serve_tcp, daemon=True).start()
    print("ready", flush=True)
    while True:
        packet, peer = udp.recvfrom(65535)
        log.write(f"{peer[0]} udp\n")
        reply = stub_answer(packet, peer[0], tcp=False)
        if reply:
            udp.sendto(reply, peer)


if __name__ == "__main__":
    if sys.argv[1] == "driver":
        driver(sys.argv[2])
    elif sys.argv[1] == "stub":
        stub(sys.argv[2], sys.argv[3])
