"""DNS wire format for the embedded resolver's hot path (RFC 1035, EDNS per RFC 6891).

Hand-written rather than dnslib: every query of every task goes through the agent's one event
loop, and dnslib's parse + reply + pack costs ~55 µs a query where this costs a few. Only what
a stub resolver sends is understood (one question, optional OPT); anything else is either
refused with a header-only answer or dropped. dnslib stays the independent decoder in tests.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# RR types and classes
A, NS, CNAME, SOA, PTR, AAAA, OPT, ANY = 1, 2, 5, 6, 12, 28, 41, 255
CLASS_IN = 1

# rcodes
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5

# header flag bits
QR, AA, TC, RD, RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080
OPCODE_MASK = 0x7800

HEADER = struct.Struct("!HHHHHH")
RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
MAX_UDP = 4096  # what we accept from a client's EDNS size (loopback: no fragmentation worries)
OUR_EDNS_SIZE = 1232  # what we advertise back (the DNS flag day value)
MIN_UDP = 512


class WireError(ValueError):
    """The packet is not a well-formed DNS message: drop it."""


@dataclass(frozen=True, slots=True)
class Query:
    id: int
    flags: int
    question: bytes  # the question section as received (echoed as is: keeps 0x20 case mixing)
    name: str  # lower-case, dotted, no trailing dot; "" for the root; "\0" when it can match nothing
    qtype: int
    qclass: int
    edns: bool
    udp_size: int  # how large a UDP answer this client accepts


def header_only(data: bytes, rcode: int) -> bytes | None:
    """FORMERR/NOTIMP-style answer that echoes only the header of a query we cannot parse
    further; None when even the header is unusable or the packet is itself a response."""
    if len(data) < HEADER.size:
        return None
    ident, flags = struct.unpack_from("!HH", data)
    if flags & QR:
        return None  # never answer answers: that is how reflection loops start
    return HEADER.pack(ident, QR | (flags & (OPCODE_MASK | RD)) | RA | rcode, 0, 0, 0, 0)


def parse_query(data: bytes) -> Query | int:
    """A standard query, or the rcode (FORMERR/NOTIMP) that a header-only answer should carry.
    Raises WireError for anything that must simply be dropped."""
    if len(data) < HEADER.size:
        raise WireError("short header")
    ident, flags, qd, an, ns, ar = HEADER.unpack_from(data)
    if flags & QR:
        raise WireError("a response, not a query")
    if flags & OPCODE_MASK:
        return NOTIMP
    if qd != 1:
        return FORMERR
    pos = HEADER.size
    labels: list[bytes] = []
    total = 0
    while True:
        if pos >= len(data):
            raise WireError("name runs past the end")
        length = data[pos]
        if length & 0xC0:
            # a pointer in the first name can only point back into the header: malformed
            raise WireError("compressed question name")
        pos += 1
        if length == 0:
            break
        label = data[pos : pos + length]
        if len(label) != length:
            raise WireError("label runs past the end")
        total += length + 1
        if total > 255:
            raise WireError("name longer than 255 bytes")
        labels.append(label)
        pos += length
    if pos + 4 > len(data):
        raise WireError("question without type and class")
    qtype, qclass = struct.unpack_from("!HH", data, pos)
    pos += 4
    question = data[HEADER.size : pos]
    # ASCII-only lowering is exactly DNS's case-insensitivity (RFC 4343); a label holding a
    # literal dot could alias a longer name, so such names match nothing of ours
    dotted = any(b"." in label for label in labels)
    name = "\0" if dotted else b".".join(labels).lower().decode("latin-1")
    edns, udp_size = _find_edns(data, pos, an + ns, ar)
    return Query(ident, flags, question, name, qtype, qclass, edns, udp_size)


def _skip_name(data: bytes, pos: int) -> int:
    while True:
        if pos >= len(data):
            raise WireError("name runs past the end")
        length = data[pos]
        if length & 0xC0 == 0xC0:
            return pos + 2
        if length & 0xC0:
            raise WireError("bad label type")
        pos += 1 + length
        if length == 0:
            return pos


def _find_edns(data: bytes, pos: int, skip: int, additional: int) -> tuple[bool, int]:
    """The client's OPT record, if any. A broken additional section only costs the client its
    EDNS (it gets 512-byte answers), it is no reason to drop an otherwise good question."""
    try:
        for index in range(skip + additional):
            pos = _skip_name(data, pos)
            if pos + RR_FIXED.size > len(data):
                raise WireError("short RR")
            rtype, rclass, _ttl, rdlen = RR_FIXED.unpack_from(data, pos)
            pos += RR_FIXED.size + rdlen
            if index >= skip and rtype == OPT:
                return True, max(MIN_UDP, min(rclass, MAX_UDP))
    except WireError:
        pass
    return False, MIN_UDP


def encode_name(name: str) -> bytes:
    """Uncompressed wire form of a dotted name (for PTR targets)."""
    out = bytearray()
    for label in name.rstrip(".").split("."):
        raw = label.encode("ascii")  # UnicodeEncodeError is a ValueError too
        if not raw or len(raw) > 63:
            raise ValueError(f"bad label in {name!r}")
        out += bytes([len(raw)]) + raw
    out += b"\0"
    return bytes(out)


def rr_to_question_name(rtype: int, ttl: int, rdata: bytes) -> bytes:
    """An answer RR whose owner is a pointer to the question name (offset 12), pre-encoded once
    per record update so that answering is a join."""
    return b"\xc0\x0c" + RR_FIXED.pack(rtype, CLASS_IN, ttl, len(rdata)) + rdata


OPT_RR = b"\x00" + RR_FIXED.pack(OPT, OUR_EDNS_SIZE, 0, 0)


def build_reply(
    query: Query,
    rcode: int,
    answers: list[bytes] | tuple[bytes, ...] = (),
    limit: int = 0,
    authoritative: bool = True,
) -> bytes:
    """Answer `query` with pre-encoded RRs. `limit` > 0 is the UDP size: RRs that do not fit
    are left out and TC is set, so that the client asks again over TCP (RFC 2181 §9)."""
    flags = QR | RA | (query.flags & RD) | rcode | (AA if authoritative else 0)
    tail = OPT_RR if query.edns else b""
    size = HEADER.size + len(query.question) + len(tail)
    count = len(answers)
    if limit:
        fit = 0
        for rr in answers:
            if size + len(rr) > limit:
                flags |= TC
                break
            size += len(rr)
            fit += 1
        count = fit
        answers = answers[:fit]
    head = HEADER.pack(query.id, flags, 1, count, 0, 1 if query.edns else 0)
    return b"".join((head, query.question, *answers, tail))


def response_id(data: bytes) -> int | None:
    """ID of a well-formed-enough response (QR set), else None."""
    if len(data) < HEADER.size:
        return None
    ident, flags = struct.unpack_from("!HH", data)
    return ident if flags & QR else None


def is_truncated(data: bytes) -> bool:
    return len(data) >= 4 and bool(struct.unpack_from("!H", data, 2)[0] & TC)


def rcode_of(data: bytes) -> int:
    return struct.unpack_from("!H", data, 2)[0] & 0x000F if len(data) >= 4 else SERVFAIL


def with_id(data: bytes, ident: int) -> bytes:
    return struct.pack("!H", ident) + data[2:]


def same_question(response: bytes, question: bytes) -> bool:
    """Does an upstream response answer our question? Servers put the question uncompressed at
    offset 12; some change its case (0x20), so compare case-insensitively. A header-only
    response (qdcount 0, e.g. FORMERR or a bare TC) is accepted on its ID alone."""
    if len(response) < HEADER.size:
        return False
    if struct.unpack_from("!H", response, 4)[0] == 0:
        return True
    end = HEADER.size + len(question)
    return response[HEADER.size : end].lower() == question.lower()
