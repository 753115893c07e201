"""Embedded DNS answer logic, pure: queries built and answers decoded with dnslib (an independent
implementation of the wire format), no sockets and no namespaces."""

from __future__ import annotations

import asyncio
import random
import struct
import threading
from pathlib import Path

import pytest
from dnslib import CLASS, EDNS0, OPCODE, QTYPE, RCODE, RR, A, DNSHeader, DNSQuestion, DNSRecord

from shoal.net import dns_wire as wire
from shoal.net.dns import (
    MAX_FORWARDS,
    DNSRecordSet,
    EmbeddedDNS,
    Forwarder,
    Upstream,
    _in_new_thread,
    parse_upstream,
    upstreams_from_resolv_conf,
)

N1 = DNSRecordSet(
    network_id="n1",
    services={"web": ["10.0.1.2"], "rr": ["10.0.1.5", "10.0.1.6"], "shared": ["10.0.1.9"]},
    tasks_of={"web": ["10.0.1.3", "10.0.1.4"], "rr": ["10.0.1.5", "10.0.1.6"], "shared": []},
    names={"web.1.abc123": "10.0.1.3", "web.1": "10.0.1.3", "webhost": "10.0.1.3", "web.2.def456": "10.0.1.4"},
)
N2 = DNSRecordSet(
    network_id="n2",
    services={"db": ["10.0.2.2"], "shared": ["10.0.2.9"]},
    tasks_of={"db": ["10.0.2.3"], "shared": []},
    names={"db.1.xyz789": "10.0.2.3"},
)


@pytest.fixture
def dns() -> EmbeddedDNS:
    server = EmbeddedDNS()
    server.update([N1, N2])
    return server


def query(name: str, qtype: str = "A", *, edns: int | None = None, qclass: str = "IN") -> DNSRecord:
    q = DNSRecord(
        DNSHeader(id=random.randrange(65536), rd=1), q=DNSQuestion(name, getattr(QTYPE, qtype), getattr(CLASS, qclass))
    )
    if edns is not None:
        q.add_ar(EDNS0(udp_len=edns))
    return q


def ask(
    dns: EmbeddedDNS, name: str, qtype: str = "A", networks: tuple[str, ...] = ("n1",), *, udp: bool = True, **kw: int
) -> DNSRecord:
    q = query(name, qtype, **kw)
    raw = dns.resolve(q.pack(), networks, udp=udp)
    assert isinstance(raw, bytes), f"{name}: expected an answer, got {raw!r}"
    reply = DNSRecord.parse(raw)
    assert reply.header.id == q.header.id and reply.header.qr == 1
    return reply


def addrs(reply: DNSRecord) -> list[str]:
    return [str(rr.rdata) for rr in reply.rr]


def test_service_name_gives_the_vip_with_docker_ttl(dns: EmbeddedDNS) -> None:
    reply = ask(dns, "web")
    assert reply.header.rcode == RCODE.NOERROR and reply.header.aa == 1 and reply.header.rd == 1
    assert addrs(reply) == ["10.0.1.2"]
    assert reply.rr[0].ttl == 600 and reply.rr[0].rtype == QTYPE.A
    assert str(reply.q.qname) == "web."


def test_tasks_name_gives_every_task_address(dns: EmbeddedDNS) -> None:
    reply = ask(dns, "tasks.web")
    assert sorted(addrs(reply)) == ["10.0.1.3", "10.0.1.4"]
    assert {rr.ttl for rr in reply.rr} == {0}


def test_dnsrr_gives_task_addresses_in_varying_order(dns: EmbeddedDNS) -> None:
    orders = {tuple(addrs(ask(dns, "rr"))) for _ in range(60)}
    assert orders == {("10.0.1.5", "10.0.1.6"), ("10.0.1.6", "10.0.1.5")}
    assert {rr.ttl for rr in ask(dns, "rr").rr} == {0}  # task addresses: never cached


def test_task_names_and_hostname(dns: EmbeddedDNS) -> None:
    for name in ("web.1.abc123", "web.1", "webhost"):
        assert addrs(ask(dns, name)) == ["10.0.1.3"], name
    assert addrs(ask(dns, "web.2.def456")) == ["10.0.1.4"]


def test_a_task_sees_only_its_networks(dns: EmbeddedDNS) -> None:
    assert ask(dns, "db", networks=("n1",)).header.rcode == RCODE.SERVFAIL  # not ours: no upstream
    assert ask(dns, "tasks.db", networks=("n1",)).header.rcode == RCODE.SERVFAIL
    assert addrs(ask(dns, "db", networks=("n2",))) == ["10.0.2.2"]
    assert ask(dns, "web", networks=("n2",)).header.rcode == RCODE.SERVFAIL
    assert ask(dns, "web", networks=()).header.rcode == RCODE.SERVFAIL
    assert ask(dns, "web", networks=("gone",)).header.rcode == RCODE.SERVFAIL
    both = ("n1", "n2")
    assert addrs(ask(dns, "db", networks=both)) == ["10.0.2.2"]
    assert addrs(ask(dns, "web", networks=both)) == ["10.0.1.2"]


def test_a_name_on_two_networks_answers_from_the_first_network_of_the_task(dns: EmbeddedDNS) -> None:
    assert addrs(ask(dns, "shared", networks=("n1", "n2"))) == ["10.0.1.9"]
    assert addrs(ask(dns, "shared", networks=("n2", "n1"))) == ["10.0.2.9"]


def test_case_and_trailing_dot_do_not_matter_and_the_question_is_echoed(dns: EmbeddedDNS) -> None:
    for name in ("WEB", "Web.", "web.", "TaSkS.WeB"):
        reply = ask(dns, name)
        assert reply.rr, name
        assert str(reply.q.qname) == name.rstrip(".") + "."  # 0x20 case mixing survives
        assert str(reply.rr[0].rname) == name.rstrip(".") + "."


def test_no_search_domains_and_no_suffix_matching(dns: EmbeddedDNS) -> None:
    for name in ("web.example.com", "x.web", "tasks.web.", "tasks.", "tasks.nosuch", ""):
        reply_raw = dns.resolve(query(name or ".").pack(), ("n1",), udp=True)
        assert isinstance(reply_raw, bytes)
        if name == "tasks.web.":
            continue
        assert DNSRecord.parse(reply_raw).header.rcode == RCODE.SERVFAIL, name


def test_aaaa_and_other_types_of_a_known_name_are_nodata(dns: EmbeddedDNS) -> None:
    for qtype in ("AAAA", "MX", "TXT", "SRV"):
        reply = ask(dns, "web", qtype)
        assert reply.header.rcode == RCODE.NOERROR and reply.rr == [], qtype
    assert ask(dns, "nosuch", "AAAA").header.rcode == RCODE.SERVFAIL
    assert addrs(ask(dns, "web", "ANY")) == ["10.0.1.2"]


def test_ipv6_addresses_are_aaaa_records() -> None:
    dns = EmbeddedDNS()
    dns.update([DNSRecordSet("n", {"v6": ["fd00::2"]}, {"v6": ["fd00::3"]}, {})])
    assert addrs(ask(dns, "v6", "AAAA", ("n",))) == ["fd00::2"]
    assert ask(dns, "v6", "A", ("n",)).rr == []


def test_reverse_lookups_of_our_addresses(dns: EmbeddedDNS) -> None:
    assert [str(rr.rdata) for rr in ask(dns, "2.1.0.10.in-addr.arpa", "PTR").rr] == ["web."]
    assert [str(rr.rdata) for rr in ask(dns, "3.1.0.10.in-addr.arpa", "PTR").rr] == ["web.1.abc123."]
    assert ask(dns, "2.2.0.10.in-addr.arpa", "PTR").header.rcode == RCODE.SERVFAIL  # other network


def test_unknown_name_without_upstreams_is_servfail_at_once(dns: EmbeddedDNS) -> None:
    reply = ask(dns, "example.com")
    assert reply.header.rcode == RCODE.SERVFAIL and reply.header.aa == 0 and reply.rr == []
    assert dns.stats.servfail == 1 and dns.stats.forwarded == 0


def test_unknown_name_with_upstreams_is_handed_to_the_forwarder() -> None:
    dns = EmbeddedDNS(upstreams=["192.0.2.53"])
    dns.update([N1])
    q = query("example.com")
    result = dns.resolve(q.pack(), ("n1",), udp=True)
    assert isinstance(result, wire.Query) and result.name == "example.com" and result.id == q.header.id
    assert isinstance(dns.resolve(query("web").pack(), ("n1",), udp=True), bytes)


def test_other_classes_are_not_ours(dns: EmbeddedDNS) -> None:
    assert ask(dns, "web", qclass="CH").header.rcode == RCODE.SERVFAIL


def test_update_replaces_every_record(dns: EmbeddedDNS) -> None:
    dns.update([DNSRecordSet("n1", {"api": ["10.0.1.20"]}, {"api": ["10.0.1.21"]}, {})])
    assert addrs(ask(dns, "api")) == ["10.0.1.20"]
    assert ask(dns, "web").header.rcode == RCODE.SERVFAIL
    assert ask(dns, "db", networks=("n2",)).header.rcode == RCODE.SERVFAIL
    dns.update([])
    assert ask(dns, "api").header.rcode == RCODE.SERVFAIL


def test_bad_addresses_in_records_are_skipped_not_fatal() -> None:
    dns = EmbeddedDNS()
    dns.update([DNSRecordSet("n", {"s": ["nonsense", "10.0.0.2", "10.0.0.2"]}, {}, {"t": "999.1.1.1"})])
    assert addrs(ask(dns, "s", networks=("n",))) == ["10.0.0.2"]
    assert ask(dns, "t", networks=("n",)).rr == []


def big_service(count: int) -> DNSRecordSet:
    ips = [f"10.0.3.{i}" for i in range(1, count + 1)]
    return DNSRecordSet("n", {"big": ips}, {"big": ips}, {})


def test_a_large_answer_is_truncated_for_udp_and_whole_for_tcp_or_edns() -> None:
    dns = EmbeddedDNS()
    dns.update([big_service(100)])
    small = ask(dns, "big", networks=("n",))
    assert small.header.tc == 1 and 0 < len(small.rr) < 100
    assert len(small.pack()) <= 512
    assert len(ask(dns, "big", networks=("n",), udp=False).rr) == 100
    edns = ask(dns, "big", networks=("n",), edns=4096)
    assert edns.header.tc == 0 and len(edns.rr) == 100
    assert any(rr.rtype == QTYPE.OPT for rr in edns.ar)  # EDNS answered with EDNS
    assert len(ask(dns, "big", networks=("n",), edns=100).rr) < 100  # below 512 counts as 512


def test_malformed_packets_are_dropped(dns: EmbeddedDNS) -> None:
    good = query("web").pack()
    bad = [
        b"",
        b"\x00",
        good[:11],
        good[:14],  # question cut short
        good[:-3],  # no type/class
        good[:12] + b"\xc0\x0c\x00\x01\x00\x01",  # compression pointer as question name
        good[:12] + b"\x3fabc\x00\x00\x01\x00\x01",  # label longer than the packet
        good[:12] + (b"\x3f" + b"a" * 63) * 5 + b"\x00\x00\x01\x00\x01",  # name over 255 bytes
        DNSRecord.parse(dns.resolve(good, ("n1",), udp=True)).pack(),  # an answer sent to us
    ]
    for packet in bad:
        assert dns.resolve(packet, ("n1",), udp=True) is None, packet
        assert dns.resolve(packet, ("n1",), udp=False) is None, packet
    assert dns.stats.dropped == 2 * len(bad)
    assert isinstance(dns.resolve(good, ("n1",), udp=True), bytes)  # and it still answers


def test_labels_with_dots_match_nothing(dns: EmbeddedDNS) -> None:
    packet = query("x").pack()[:12] + b"\x09tasks.web\x00\x00\x01\x00\x01"
    reply = dns.resolve(packet, ("n1",), udp=True)
    assert isinstance(reply, bytes) and DNSRecord.parse(reply).header.rcode == RCODE.SERVFAIL


def test_unsupported_opcodes_and_question_counts_get_a_header_only_answer(dns: EmbeddedDNS) -> None:
    q = query("web")
    q.header.opcode = OPCODE.UPDATE
    reply = DNSRecord.parse(dns.resolve(q.pack(), ("n1",), udp=True))
    assert reply.header.rcode == RCODE.NOTIMP and reply.header.id == q.header.id and not reply.questions
    two = query("web")
    two.add_question(DNSQuestion("db"))
    reply = DNSRecord.parse(dns.resolve(two.pack(), ("n1",), udp=True))
    assert reply.header.rcode == RCODE.FORMERR
    none = DNSRecord(DNSHeader(id=7))
    assert DNSRecord.parse(dns.resolve(none.pack(), ("n1",), udp=True)).header.rcode == RCODE.FORMERR


def test_a_broken_additional_section_only_costs_edns(dns: EmbeddedDNS) -> None:
    packet = bytearray(query("web").pack())
    struct.pack_into("!H", packet, 10, 3)  # claims 3 additional records it does not have
    reply = DNSRecord.parse(dns.resolve(bytes(packet), ("n1",), udp=True))
    assert addrs(reply) == ["10.0.1.2"] and not reply.ar


def test_fuzzed_packets_never_raise(dns: EmbeddedDNS) -> None:
    rng = random.Random(1234)
    seeds = [
        query(n, t, edns=e).pack()
        for n in ("web", "tasks.web", "nosuch.example")
        for t in ("A", "AAAA")
        for e in (None, 1232)
    ]
    for _ in range(5000):
        packet = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            action = rng.random()
            if action < 0.5 and packet:
                packet[rng.randrange(len(packet))] = rng.randrange(256)
            elif action < 0.75:
                del packet[rng.randrange(len(packet) + 1) :]
            else:
                packet[rng.randrange(len(packet) + 1) : 0] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        try:
            DNSRecord.parse(bytes(packet))
            readable = True
        except Exception:  # dnslib refuses some legal names (non-UTF-8 labels)
            readable = False
        for udp in (True, False):
            result = dns.resolve(bytes(packet), ("n1", "n2"), udp=udp)
            if isinstance(result, bytes) and readable:
                DNSRecord.parse(result)  # a query dnslib can read gets an answer it can read


# ---- forwarding, with the network exchanges replaced


class FakeUpstreams(Forwarder):
    """Each upstream answers from a script: {(address, transport): rcode | "timeout" | "tc" | "big"}."""

    def __init__(self, upstreams: list[str], script: dict[tuple[str, str], str | int]) -> None:
        super().__init__(upstreams, timeout=0.05)
        self.script = script
        self.calls: list[tuple[str, str, int]] = []

    async def _answer(self, upstream: Upstream, transport: str, packet: bytes, ident: int) -> bytes:
        self.calls.append((upstream.address[0], transport, ident))
        action = self.script.get((upstream.address[0], transport), "timeout")
        if action == "timeout":
            raise TimeoutError
        q = DNSRecord.parse(packet)
        reply = q.reply()
        if action == "tc":
            reply.header.tc = 1
        elif action == "big":
            for i in range(60):
                reply.add_answer(a_rr(q, f"198.51.100.{i}"))
        else:
            reply.header.rcode = int(action)
            if action == RCODE.NOERROR:
                reply.add_answer(a_rr(q, "203.0.113.7"))
        return reply.pack()

    async def exchange_udp(self, upstream: Upstream, packet: bytes, ident: int, question: bytes) -> bytes:
        return await self._answer(upstream, "udp", packet, ident)

    async def exchange_tcp(self, upstream: Upstream, packet: bytes, ident: int, question: bytes) -> bytes:
        return await self._answer(upstream, "tcp", packet, ident)


def a_rr(q: DNSRecord, ip: str) -> RR:
    return RR(q.q.qname, QTYPE.A, rdata=A(ip), ttl=30)


def forward(
    fwd: Forwarder, name: str, *, tcp_client: bool = False, edns: int | None = None
) -> tuple[DNSRecord, DNSRecord]:
    q = query(name, edns=edns)
    parsed = wire.parse_query(q.pack())
    assert isinstance(parsed, wire.Query)
    return q, DNSRecord.parse(asyncio.run(fwd.forward(q.pack(), parsed, tcp_client)))


def test_forwarded_answers_keep_the_client_id_while_upstreams_see_a_random_one() -> None:
    fwd = FakeUpstreams(["192.0.2.1"], {("192.0.2.1", "udp"): RCODE.NOERROR})
    ids = set()
    for _ in range(20):
        q, reply = forward(fwd, "example.com")
        assert reply.header.id == q.header.id and addrs(reply) == ["203.0.113.7"]
        ids.add(fwd.calls[-1][2])
    assert len(ids) > 10


def test_a_failing_upstream_moves_on_to_the_next() -> None:
    script: dict[tuple[str, str], str | int] = {
        ("192.0.2.2", "udp"): RCODE.SERVFAIL,
        ("192.0.2.3", "udp"): RCODE.NOERROR,
    }
    fwd = FakeUpstreams(["192.0.2.1", "192.0.2.2", "192.0.2.3"], script)
    _, reply = forward(fwd, "example.com")
    assert addrs(reply) == ["203.0.113.7"]
    assert [c[:2] for c in fwd.calls] == [("192.0.2.1", "udp"), ("192.0.2.2", "udp"), ("192.0.2.3", "udp")]


def test_nxdomain_is_an_answer_not_a_failure() -> None:
    fwd = FakeUpstreams(["192.0.2.1", "192.0.2.2"], {("192.0.2.1", "udp"): RCODE.NXDOMAIN})
    _, reply = forward(fwd, "nosuch.example")
    assert reply.header.rcode == RCODE.NXDOMAIN and len(fwd.calls) == 1


def test_no_upstream_answering_is_servfail_and_the_last_failure_is_relayed() -> None:
    _, reply = forward(FakeUpstreams(["192.0.2.1", "192.0.2.2"], {}), "example.com")
    assert reply.header.rcode == RCODE.SERVFAIL and reply.header.aa == 0
    refused = FakeUpstreams(["192.0.2.1"], {("192.0.2.1", "udp"): RCODE.REFUSED})
    assert forward(refused, "example.com")[1].header.rcode == RCODE.REFUSED


def test_truncated_udp_answers_are_fetched_again_over_tcp() -> None:
    script: dict[tuple[str, str], str | int] = {("192.0.2.1", "udp"): "tc", ("192.0.2.1", "tcp"): "big"}
    # a TCP client gets the whole answer
    _, reply = forward(FakeUpstreams(["192.0.2.1"], script), "big.example", tcp_client=True)
    assert len(reply.rr) == 60 and reply.header.tc == 0
    # a UDP client gets it too if it fits what the client accepts …
    _, reply = forward(FakeUpstreams(["192.0.2.1"], script), "big.example", edns=4096)
    assert len(reply.rr) == 60 and reply.header.tc == 0
    # … and the truncated answer otherwise, so that it asks again over TCP
    fwd = FakeUpstreams(["192.0.2.1"], script)
    _, reply = forward(fwd, "big.example")
    assert reply.header.tc == 1 and [c[1] for c in fwd.calls] == ["udp", "tcp"]


def test_tcp_client_tries_the_next_upstream_when_tcp_fails() -> None:
    script: dict[tuple[str, str], str | int] = {("192.0.2.1", "udp"): "tc", ("192.0.2.2", "udp"): RCODE.NOERROR}
    _, reply = forward(FakeUpstreams(["192.0.2.1", "192.0.2.2"], script), "x.example", tcp_client=True)
    assert addrs(reply) == ["203.0.113.7"]


def test_too_many_forwards_in_flight_is_servfail_at_once() -> None:
    dns = EmbeddedDNS(upstreams=["192.0.2.1"])
    q = query("example.com")
    parsed = dns.resolve(q.pack(), (), udp=True)
    assert isinstance(parsed, wire.Query)
    dns._forwards = MAX_FORWARDS
    reply = DNSRecord.parse(asyncio.run(dns.forward(q.pack(), parsed, tcp_client=False)))
    assert reply.header.rcode == RCODE.SERVFAIL and dns.stats.servfail == 1


def test_a_bug_while_forwarding_still_answers_servfail() -> None:
    class Broken(Forwarder):
        async def exchange_udp(self, upstream: Upstream, packet: bytes, ident: int, question: bytes) -> bytes:
            raise ValueError("bug")

    dns = EmbeddedDNS(upstreams=["192.0.2.1"])
    dns.forwarder = Broken(["192.0.2.1"])
    q = query("example.com")
    parsed = dns.resolve(q.pack(), (), udp=True)
    assert isinstance(parsed, wire.Query)
    reply = DNSRecord.parse(asyncio.run(dns.forward(q.pack(), parsed, tcp_client=False)))
    assert reply.header.rcode == RCODE.SERVFAIL and reply.header.id == q.header.id


def test_upstream_matching_checks_id_and_question() -> None:
    fwd = Forwarder([])
    q = query("Example.com")
    question = q.pack()[12:]
    reply = q.reply()
    reply.header.id = 4242
    raw = reply.pack()
    assert fwd._matches(raw, 4242, question)
    assert fwd._matches(raw.replace(b"Example", b"eXAMPLE"), 4242, question)  # 0x20 by the upstream
    assert not fwd._matches(raw, 4243, question)
    assert not fwd._matches(raw.replace(b"Example", b"Elpmaxe"), 4242, question)
    assert not fwd._matches(wire.with_id(q.pack(), 4242), 4242, question)  # a query, not a response


def test_parse_upstream() -> None:
    assert parse_upstream("192.0.2.1").address == ("192.0.2.1", 53)
    assert parse_upstream("192.0.2.1:5353").address == ("192.0.2.1", 5353)
    assert parse_upstream("2001:db8::1").address == ("2001:db8::1", 53)
    assert parse_upstream("[2001:db8::1]:5353").address == ("2001:db8::1", 5353)
    for bad in ("nameserver", "192.0.2.1:0", "192.0.2.1:x", "[2001:db8::1]:70000"):
        with pytest.raises(ValueError):
            parse_upstream(bad)


def test_upstreams_from_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# c\nsearch example.com\nnameserver 192.0.2.1\nnameserver fe80::1%eth0\nnameserver bogus\noptions ndots:2\n"
    )
    assert upstreams_from_resolv_conf(str(conf)) == ["192.0.2.1", "fe80::1"]
    assert upstreams_from_resolv_conf(str(tmp_path / "missing")) == []


# ---- tasks, without entering any namespace


def test_add_task_with_a_missing_namespace_fails_and_registers_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        dns = EmbeddedDNS()
        with pytest.raises(FileNotFoundError):
            await dns.add_task("t1", str(tmp_path / "nonexistent"), ["n1"])
        assert dns.task_ids == []
        await dns.remove_task("t1")  # unknown: nothing to do
        await dns.close()
        with pytest.raises(RuntimeError):
            await dns.add_task("t1", str(tmp_path / "nonexistent"), ["n1"])

    asyncio.run(main())


def test_work_in_a_new_thread_is_awaited_and_a_late_result_discarded() -> None:
    async def main() -> None:
        assert await _in_new_thread(threading.get_ident, lambda _: None) != threading.get_ident()
        release = threading.Event()
        discarded: list[str] = []

        def slow() -> str:
            release.wait(5)
            return "socket"

        waiter = asyncio.ensure_future(_in_new_thread(slow, discarded.append))
        await asyncio.sleep(0.01)
        waiter.cancel()
        release.set()
        for _ in range(100):
            if discarded:
                break
            await asyncio.sleep(0.01)
        assert discarded == ["socket"]

    asyncio.run(main())


def test_a_tasks_own_nameservers_replace_the_nodes() -> None:
    """ContainerSpec.DNSConfig.Nameservers: the task's names that are not the swarm's go to its own
    resolvers (Docker's ExtDNS), even on a node without upstreams; swarm names stay local."""
    dns = EmbeddedDNS(upstreams=["192.0.2.1"])
    dns.update([N1])
    node_fwd, task_fwd = FakeUpstreams(["192.0.2.1"], {}), FakeUpstreams(["192.0.2.9"], {("192.0.2.9", "udp"): 0})
    dns.forwarder = node_fwd
    q = query("corp.example")
    result = dns.resolve(q.pack(), ("n1",), udp=True, forwarder=task_fwd)
    assert isinstance(result, wire.Query)
    reply = DNSRecord.parse(asyncio.run(dns.forward(q.pack(), result, False, forwarder=task_fwd)))
    assert addrs(reply) == ["203.0.113.7"] and [c[0] for c in task_fwd.calls] == ["192.0.2.9"] and not node_fwd.calls
    assert isinstance(dns.resolve(query("web").pack(), ("n1",), udp=True, forwarder=task_fwd), bytes)
    no_upstreams = EmbeddedDNS()
    assert isinstance(no_upstreams.resolve(q.pack(), ("n1",), udp=True, forwarder=task_fwd), wire.Query)
