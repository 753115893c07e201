"""Embedded DNS: 127.0.0.11:53 (UDP and TCP) inside every task's network namespace, served
from the agent's own asyncio loop (DESIGN.md §5).

Sockets are created by a short-lived thread that entered the task's namespace (setns is per
thread, notes/dataplane.md #1) and then served from the loop, where they keep the namespace
they were made in (#2). One loop serves every task; nothing runs inside the task.

Answers are per network: a task sees the names of the networks it is attached to, the first
of its networks that knows a name wins. Service name -> VIP (TTL 600, like Docker) or, for
dnsrr, the task addresses in random order; `tasks.<service>` -> every task address; a service's
network aliases answer as its name does, on the networks they were given for (the manager puts
them in that network's record set, after every service name); task names
-> the task's address; a PTR for each of those addresses. Anything else goes to the upstream
resolvers from the agent's own (host) namespace — a task namespace has no route to them — and
without upstreams it is a SERVFAIL at once rather than a client-side timeout.

A socket holds its namespace: the agent must call remove_task() when a task ends, or the
namespace lives on after `ip netns del`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import random
import secrets
import socket
import struct
import threading
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar, cast

from pyroute2.netns import setns

from shoal.net import dns_wire as wire

log = logging.getLogger("shoal.net.dns")

DNS_ADDRESS = ("127.0.0.11", 53)
VIP_TTL = 600  # a VIP lives as long as its service: cache it like Docker does
TASK_TTL = 0  # task addresses come and go with tasks: never let a client cache them
UPSTREAM_TIMEOUT = 2.0  # per upstream and transport; well inside glibc's 5 s per try
TCP_IDLE_TIMEOUT = 10.0
MAX_TCP_PER_TASK = 32  # a task cannot pin an unbounded number of agent file descriptors
MAX_PIPELINED = 16  # forwarded queries in flight per TCP connection before we stop reading
MAX_FORWARDS = 512  # forwarded queries in flight for the whole agent; beyond: SERVFAIL at once

T = TypeVar("T")


@dataclass(frozen=True)
class DNSRecordSet:
    """What the agent hands over per network, rebuilt whenever tasks or services change."""

    network_id: str
    services: dict[str, list[str]]  # service name -> [VIP] (vip mode) or its task IPs (dnsrr)
    tasks_of: dict[str, list[str]]  # service name -> task IPs (for `tasks.<service>`)
    names: dict[str, str]  # task names ("web.1.<taskid>", "web.1", the task's hostname) -> IP


@dataclass(frozen=True, slots=True)
class _Entry:
    by_type: dict[int, tuple[bytes, ...]]  # qtype -> pre-encoded answer RRs
    shuffle: bool  # several addresses of which none is preferred: vary the order per answer

    def answers(self, qtype: int) -> tuple[bytes, ...]:
        if qtype == wire.ANY:
            return tuple(rr for rrs in self.by_type.values() for rr in rrs)
        return self.by_type.get(qtype, ())


def _normal(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _address_rrs(ips: Iterable[str], ttl: int) -> dict[int, tuple[bytes, ...]]:
    v4: list[bytes] = []
    v6: list[bytes] = []
    seen: set[str] = set()
    for text in ips:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            log.warning("dns: ignoring bad address %r", text)
            continue
        if str(ip) in seen:
            continue
        seen.add(str(ip))
        if ip.version == 4:
            v4.append(wire.rr_to_question_name(wire.A, ttl, ip.packed))
        else:
            v6.append(wire.rr_to_question_name(wire.AAAA, ttl, ip.packed))
    return {wire.A: tuple(v4), wire.AAAA: tuple(v6)}


class RecordIndex:
    """Immutable lookup tables, one per network, built once per update() so that answering a
    query is two dict lookups and a join."""

    def __init__(self, records: Iterable[DNSRecordSet] = ()) -> None:
        self.networks: dict[str, dict[str, _Entry]] = {}
        for record_set in records:
            self.networks[record_set.network_id] = self._table(record_set)

    @staticmethod
    def _table(rs: DNSRecordSet) -> dict[str, _Entry]:
        table: dict[str, _Entry] = {}

        def put(name: str, entry: _Entry) -> None:
            key = _normal(name)
            # first come first served: services, then tasks.<svc>, then task names, then PTRs
            if key and key not in table:
                table[key] = entry

        ptr: dict[str, str] = {}
        for service, ips in rs.services.items():
            tasks = set(rs.tasks_of.get(service, ()))
            is_vip = bool(ips) and not tasks.intersection(ips)
            put(service, _Entry(_address_rrs(ips, VIP_TTL if is_vip else TASK_TTL), shuffle=True))
            if is_vip:
                for ip in ips:
                    ptr.setdefault(ip, service)
        for service, ips in rs.tasks_of.items():
            put(f"tasks.{service}", _Entry(_address_rrs(ips, TASK_TTL), shuffle=True))
        for name, ip in rs.names.items():
            put(name, _Entry(_address_rrs([ip], TASK_TTL), shuffle=False))
            ptr.setdefault(ip, name)  # the first name listed for a task is its full name
        for ip, name in ptr.items():
            try:
                reverse = ipaddress.ip_address(ip).reverse_pointer
                target = wire.encode_name(_normal(name))
            except ValueError:
                continue
            put(reverse, _Entry({wire.PTR: (wire.rr_to_question_name(wire.PTR, TASK_TTL, target),)}, shuffle=False))
        return table

    def lookup(self, network_ids: Iterable[str], name: str) -> _Entry | None:
        for network_id in network_ids:
            table = self.networks.get(network_id)
            if table is not None:
                entry = table.get(name)
                if entry is not None:
                    return entry
        return None


def answer_local(query: wire.Query, index: RecordIndex, network_ids: Iterable[str], limit: int = 0) -> bytes | None:
    """The answer to a query for a name of the task's networks, or None if the name is not ours.
    A name we know but without records of the asked type (AAAA for an IPv4 task, MX, …) is
    NOERROR with no answers: NXDOMAIN would tell the client the name does not exist at all."""
    if query.qclass not in (wire.CLASS_IN, wire.ANY):
        return None
    entry = index.lookup(network_ids, query.name)
    if entry is None:
        return None
    answers = entry.answers(query.qtype)
    if entry.shuffle and len(answers) > 1:
        answers = tuple(random.sample(answers, len(answers)))
    return wire.build_reply(query, wire.NOERROR, answers, limit)


class Upstream(NamedTuple):
    family: int
    address: tuple[str, int]


def parse_upstream(text: str) -> Upstream:
    """`1.2.3.4`, `1.2.3.4:5353`, `2001:db8::1` or `[2001:db8::1]:5353`."""
    host, port = text.strip(), 53
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        if rest:
            port = int(rest.removeprefix(":"))
    elif host.count(":") == 1:
        host, _, port_text = host.partition(":")
        port = int(port_text)
    ip = ipaddress.ip_address(host)
    if not 0 < port < 65536:
        raise ValueError(f"bad port in upstream {text!r}")
    return Upstream(socket.AF_INET if ip.version == 4 else socket.AF_INET6, (str(ip), port))


def upstreams_from_resolv_conf(path: str = "/etc/resolv.conf") -> list[str]:
    """The host's resolvers, for EmbeddedDNS(upstreams=...). Loopback resolvers are fine: we
    forward from the agent's namespace, not the task's."""
    found: list[str] = []
    try:
        with open(path) as conf:
            for line in conf:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    try:
                        parse_upstream(parts[1].split("%")[0])
                    except ValueError:
                        continue
                    found.append(parts[1].split("%")[0])
    except OSError:
        pass
    return found


class Forwarder:
    """Relays a query to the upstream resolvers in order: UDP, then TCP on truncation. Each
    upstream gets `timeout` seconds per transport; SERVFAIL/REFUSED moves on to the next one.
    The query goes out with a fresh random ID from a fresh socket (a new source port), so an
    off-path answer has to guess both."""

    def __init__(self, upstreams: Iterable[str], timeout: float = UPSTREAM_TIMEOUT) -> None:
        self.upstreams = [parse_upstream(u) for u in upstreams]
        self.timeout = timeout

    async def forward(self, data: bytes, query: wire.Query, tcp_client: bool) -> bytes:
        ident = secrets.randbits(16)
        packet = wire.with_id(data, ident)
        fallback: bytes | None = None
        for upstream in self.upstreams:
            try:
                response = await self.exchange_udp(upstream, packet, ident, query.question)
            except (OSError, EOFError, TimeoutError) as exc:
                log.debug("dns: upstream %s udp: %s", upstream.address, exc)
                continue
            if wire.is_truncated(response):
                try:
                    full: bytes | None = await self.exchange_tcp(upstream, packet, ident, query.question)
                except (OSError, EOFError, TimeoutError) as exc:
                    log.debug("dns: upstream %s tcp: %s", upstream.address, exc)
                    full = None
                if full is not None and (tcp_client or len(full) <= query.udp_size):
                    response = full
                elif tcp_client:
                    fallback = response
                    continue
                # else a UDP client gets the truncated answer and asks us again over TCP
            if wire.rcode_of(response) in (wire.SERVFAIL, wire.REFUSED):
                fallback = response
                continue
            return wire.with_id(response, query.id)
        if fallback is not None:
            return wire.with_id(fallback, query.id)
        return wire.build_reply(query, wire.SERVFAIL, authoritative=False)

    def _matches(self, response: bytes, ident: int, question: bytes) -> bool:
        return wire.response_id(response) == ident and wire.same_question(response, question)

    async def exchange_udp(self, upstream: Upstream, packet: bytes, ident: int, question: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        # made on the loop's thread, so in the agent's namespace where the upstreams are reachable
        with socket.socket(upstream.family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.connect(upstream.address)  # only this server's datagrams reach us; ICMP errors do too
            await loop.sock_sendall(sock, packet)
            async with asyncio.timeout(self.timeout):
                while True:
                    response = await loop.sock_recv(sock, 65535)
                    if self._matches(response, ident, question):
                        return response
                    # stale or spoofed: keep waiting for the real one

    async def exchange_tcp(self, upstream: Upstream, packet: bytes, ident: int, question: bytes) -> bytes:
        async with asyncio.timeout(self.timeout):
            reader, writer = await asyncio.open_connection(*upstream.address)
            try:
                writer.write(struct.pack("!H", len(packet)) + packet)
                await writer.drain()
                while True:
                    (length,) = struct.unpack("!H", await reader.readexactly(2))
                    response = await reader.readexactly(length)
                    if self._matches(response, ident, question):
                        return response
            finally:
                writer.transport.abort()  # one query per connection: no graceful close to wait for


@dataclass
class DNSStats:
    queries: int = 0
    local: int = 0  # answered from the records
    forwarded: int = 0
    servfail: int = 0  # answered SERVFAIL without asking anyone (no upstreams, or overloaded)
    dropped: int = 0  # malformed, or responses sent to us


@dataclass(eq=False)
class _Task:
    task_id: str
    netns_path: str
    network_ids: tuple[str, ...]
    udp: asyncio.DatagramTransport | None = None
    udp_closed: asyncio.Future[None] | None = None
    tcp: asyncio.Server | None = None
    connections: set[asyncio.StreamWriter] = field(default_factory=set)
    pending: set[asyncio.Task[None]] = field(default_factory=set)
    # the task's own resolvers (ContainerSpec.DNSConfig.Nameservers) in place of the node's, as Docker's
    forwarder: Forwarder | None = None


class _UDPServer(asyncio.DatagramProtocol):
    def __init__(self, dns: EmbeddedDNS, task: _Task) -> None:
        self.dns = dns
        self.task = task
        self.transport: asyncio.DatagramTransport | None = None
        # the socket is closed one loop turn after transport.close(): remove_task() waits for
        # it so that 127.0.0.11:53 is free again when it returns
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # 3.11's selector datagram transport does not subclass DatagramTransport: no isinstance
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            result = self.dns.resolve(data, self.task.network_ids, udp=True, forwarder=self.task.forwarder)
        except Exception:  # a bug costs one answer, never the server
            log.exception("dns: cannot answer a query of task %s", self.task.task_id)
            return
        if isinstance(result, bytes):
            if self.transport is not None:
                self.transport.sendto(result, addr)
        elif result is not None:
            self.dns.spawn(self.task, self._relay(data, result, addr))

    async def _relay(self, data: bytes, query: wire.Query, addr: tuple[str, int]) -> None:
        reply = await self.dns.forward(data, query, tcp_client=False, forwarder=self.task.forwarder)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP from a client that went away: nothing to do

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class EmbeddedDNS:
    """The agent's DNS server for all of its tasks. Use from the agent's event loop."""

    def __init__(
        self,
        upstreams: list[str] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        timeout: float = UPSTREAM_TIMEOUT,
        tcp_idle_timeout: float = TCP_IDLE_TIMEOUT,
    ) -> None:
        self.forwarder = Forwarder(upstreams or [], timeout)
        self.tcp_idle_timeout = tcp_idle_timeout
        self.stats = DNSStats()
        self._loop = loop
        self._index = RecordIndex()
        self._tasks: dict[str, _Task] = {}
        self._lock = asyncio.Lock()
        self._forwards = 0
        self._closed = False

    # ---- records
    def update(self, records: list[DNSRecordSet]) -> None:
        """Replace all records. The new index is built aside and swapped in with one assignment,
        so a query sees either the old records or the new ones (callable from any thread)."""
        self._index = RecordIndex(records)

    @property
    def task_ids(self) -> list[str]:
        return list(self._tasks)

    # ---- answering (pure apart from counters; the socket handlers call these)
    def resolve(
        self, data: bytes, network_ids: Iterable[str], udp: bool, forwarder: Forwarder | None = None
    ) -> bytes | wire.Query | None:
        """The reply to send, a Query to forward, or None to drop the packet."""
        self.stats.queries += 1
        try:
            query = wire.parse_query(data)
        except wire.WireError:
            self.stats.dropped += 1
            return None
        if isinstance(query, int):
            reply = wire.header_only(data, query)
            if reply is None:
                self.stats.dropped += 1
            return reply
        reply = answer_local(query, self._index, network_ids, query.udp_size if udp else 0)
        if reply is not None:
            self.stats.local += 1
            return reply
        if not (forwarder or self.forwarder).upstreams:
            self.stats.servfail += 1
            return wire.build_reply(query, wire.SERVFAIL, authoritative=False)
        return query

    async def forward(
        self, data: bytes, query: wire.Query, tcp_client: bool, forwarder: Forwarder | None = None
    ) -> bytes:
        if self._forwards >= MAX_FORWARDS:
            self.stats.servfail += 1
            return wire.build_reply(query, wire.SERVFAIL, authoritative=False)
        self._forwards += 1
        self.stats.forwarded += 1
        try:
            return await (forwarder or self.forwarder).forward(data, query, tcp_client)
        except Exception:  # a bug must still give the client an answer rather than a timeout
            log.exception("dns: forwarding %s failed", query.name)
            return wire.build_reply(query, wire.SERVFAIL, authoritative=False)
        finally:
            self._forwards -= 1

    def spawn(self, task: _Task, coro: Coroutine[Any, Any, None]) -> None:
        """Run a forward as its own asyncio task, cancelled with the DNS task it belongs to."""
        job = asyncio.get_running_loop().create_task(coro)
        task.pending.add(job)
        job.add_done_callback(lambda done: self._finished(task, done))

    @staticmethod
    def _finished(task: _Task, job: asyncio.Task[None]) -> None:
        task.pending.discard(job)
        if not job.cancelled() and job.exception() is not None:
            log.error("dns: forwarding for task %s failed", task.task_id, exc_info=job.exception())

    # ---- tasks
    async def add_task(
        self, task_id: str, netns_path: str, network_ids: list[str], upstreams: Sequence[str] = ()
    ) -> None:
        """Serve 127.0.0.11:53 in the task's namespace (idempotent; a changed network list is
        taken over, a changed namespace is bound anew). `upstreams`: the task's own resolvers,
        asked instead of the node's for names that are not the swarm's."""
        forwarder = Forwarder(upstreams, self.forwarder.timeout) if upstreams else None
        loop = self._running_loop()
        async with self._lock:
            if self._closed:
                raise RuntimeError("EmbeddedDNS is closed")
            existing = self._tasks.get(task_id)
            if existing is not None:
                if existing.netns_path == netns_path:
                    existing.network_ids = tuple(network_ids)
                    existing.forwarder = forwarder
                    return
                await self._stop(self._tasks.pop(task_id))
            udp, tcp = await _in_new_thread(lambda: _bind_in_netns(netns_path), _close_pair)
            task = _Task(task_id, netns_path, tuple(network_ids), forwarder=forwarder)
            try:
                transport, protocol = await loop.create_datagram_endpoint(lambda: _UDPServer(self, task), sock=udp)
                task.udp, task.udp_closed = transport, protocol.closed
                task.tcp = await asyncio.start_server(
                    lambda r, w: self._serve_tcp(task, r, w), sock=tcp, backlog=MAX_TCP_PER_TASK
                )
            except BaseException:
                if task.udp is not None:
                    task.udp.close()
                else:
                    udp.close()
                tcp.close()
                raise
            self._tasks[task_id] = task
            log.debug("dns: serving task %s (%s) on networks %s", task_id, netns_path, ",".join(network_ids))

    async def remove_task(self, task_id: str) -> None:
        async with self._lock:
            task = self._tasks.pop(task_id, None)
            if task is not None:
                await self._stop(task)

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            tasks, self._tasks = list(self._tasks.values()), {}
            for task in tasks:
                await self._stop(task)

    async def _stop(self, task: _Task) -> None:
        # close everything first so no new work arrives, then wait for the forwards to unwind
        if task.udp is not None:
            task.udp.close()
        if task.tcp is not None:
            task.tcp.close()
        for writer in list(task.connections):
            writer.transport.abort()
        jobs = list(task.pending)
        for job in jobs:
            job.cancel()
        if jobs:
            await asyncio.gather(*jobs, return_exceptions=True)
        if task.udp_closed is not None:
            await task.udp_closed
        if task.tcp is not None:
            await task.tcp.wait_closed()  # the listening socket itself is closed at once

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop:
            raise RuntimeError("EmbeddedDNS used from another event loop than the one it was given")
        return loop

    async def _serve_tcp(self, task: _Task, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """RFC 7766: length-prefixed messages, several per connection, forwarded ones answered
        as they complete (out of order), closed after tcp_idle_timeout without a query."""
        if len(task.connections) >= MAX_TCP_PER_TASK:
            writer.transport.abort()
            return
        task.connections.add(writer)
        slots = asyncio.Semaphore(MAX_PIPELINED)
        try:
            while True:
                async with asyncio.timeout(self.tcp_idle_timeout):
                    (length,) = struct.unpack("!H", await reader.readexactly(2))
                    message = await reader.readexactly(length)
                try:
                    result = self.resolve(message, task.network_ids, udp=False, forwarder=task.forwarder)
                except Exception:  # a bug costs one answer, never the server
                    log.exception("dns: cannot answer a query of task %s", task.task_id)
                    continue
                if isinstance(result, bytes):
                    writer.write(struct.pack("!H", len(result)) + result)
                elif result is not None:
                    await slots.acquire()  # too many in flight: stop reading until one is done
                    self.spawn(task, self._relay_tcp(message, result, writer, slots, task.forwarder))
                async with asyncio.timeout(self.tcp_idle_timeout):
                    await writer.drain()  # a client that does not read is not served forever
        except (TimeoutError, EOFError, ConnectionError, OSError):
            pass
        finally:
            task.connections.discard(writer)
            writer.transport.abort()

    async def _relay_tcp(
        self,
        message: bytes,
        query: wire.Query,
        writer: asyncio.StreamWriter,
        slots: asyncio.Semaphore,
        forwarder: Forwarder | None = None,
    ) -> None:
        try:
            reply = await self.forward(message, query, tcp_client=True, forwarder=forwarder)
            if not writer.is_closing():
                writer.write(struct.pack("!H", len(reply)) + reply)
        finally:
            slots.release()


def _bind_in_netns(netns_path: str) -> tuple[socket.socket, socket.socket]:
    """Runs in a thread of its own: enter the task's namespace, make both sockets there. The
    thread ends right after, so no other code ever runs in the task's namespace."""
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)  # a missing path fails here: setns would create it
    try:
        setns(fd, flags=0)
    finally:
        os.close(fd)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # not on UDP: SO_REUSEADDR there would let a second socket share (and split) our queries
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # rebind after an agent restart
        try:
            udp.bind(DNS_ADDRESS)
            tcp.bind(DNS_ADDRESS)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot bind {DNS_ADDRESS[0]}:{DNS_ADDRESS[1]} in {netns_path}: {exc}") from exc
        tcp.listen(MAX_TCP_PER_TASK)
        udp.setblocking(False)
        tcp.setblocking(False)
    except BaseException:
        _close_pair((udp, tcp))
        raise
    return udp, tcp


def _close_pair(pair: tuple[socket.socket, socket.socket]) -> None:
    for sock in pair:
        sock.close()


async def _in_new_thread(fn: Callable[[], T], discard: Callable[[T], None]) -> T:
    """fn() in a fresh thread, awaited without blocking the loop. Not run_in_executor: a pool
    thread that entered a task's namespace would stay there for whatever runs on it next.
    If the awaiting coroutine is cancelled, a late result is handed to `discard`."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(result: T | None, error: BaseException | None) -> None:
        if future.cancelled():
            if error is None:
                discard(result)  # type: ignore[arg-type]
        elif error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = fn()
        except BaseException as exc:
            error = exc
        try:
            loop.call_soon_threadsafe(deliver, result, error)
        except RuntimeError:  # the loop closed meanwhile: nobody will take the result
            if error is None:
                discard(result)  # type: ignore[arg-type]

    threading.Thread(target=run, name="dns-netns", daemon=True).start()
    return await future


__all__ = [
    "DNSRecordSet",
    "DNSStats",
    "EmbeddedDNS",
    "Forwarder",
    "RecordIndex",
    "answer_local",
    "parse_upstream",
    "upstreams_from_resolv_conf",
]
