"""The cluster's network encryption keys and their schedule (pure): SwarmKit's keymanager.

The leader keeps a ring of KEY_RING_SIZE keys (`manager/netkeys.py` stores it in a `meta` object of
the Raft store, sealed at rest like everything there, and never part of GET /swarm or /info). Every
ROTATION seconds (Docker: 12 h) it appends a new key and drops the oldest. Nodes get the ring with
their assignments (over their mutual-TLS session) and encrypt with the *second newest* key, as
libnetwork does (agent.go: `primary = keys[len-2]`): a new key is first only installed to decrypt,
on every node, and becomes the one that encrypts only one rotation later; the dropped key was kept
one period after it stopped encrypting (the grace period).

A key is 20 bytes: AES-128 and the 4-byte salt of rfc4106(gcm(aes)) (`net/xfrm.py`).
SPIs are derived per (source, destination, key) as libnetwork's buildSPI does (FNV-1a over the
source address, the key's tag and the destination address), so both ends compute the same ones.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

KEY_BYTES = 20
KEY_RING_SIZE = 3
DEFAULT_ROTATION = 12 * 3600.0  # seconds, Docker's keymanager default
SUBSYSTEM = "networking:ipsec"
ALGORITHM = "AES_128_GCM"

Key = dict[str, Any]  # {"Subsystem", "Algorithm", "Key": base64, "LamportTime": int}


def new_key(lamport: int, token: bytes | None = None) -> Key:
    raw = token if token is not None else secrets.token_bytes(KEY_BYTES)
    if len(raw) != KEY_BYTES:
        raise ValueError(f"a network key is {KEY_BYTES} bytes, not {len(raw)}")
    return {
        "Subsystem": SUBSYSTEM,
        "Algorithm": ALGORITHM,
        "Key": base64.b64encode(raw).decode(),
        "LamportTime": lamport,
    }


def initial_ring(tokens: Sequence[bytes] | None = None) -> list[Key]:
    """The first ring: KEY_RING_SIZE fresh keys (tags 1..N), so that rotations start at once."""
    toks = list(tokens) if tokens is not None else [secrets.token_bytes(KEY_BYTES) for _ in range(KEY_RING_SIZE)]
    return [new_key(i + 1, t) for i, t in enumerate(toks)]


def rotated(ring: Sequence[Key], token: bytes | None = None) -> list[Key]:
    """The ring after one rotation: a new key (the next Lamport time) appended, the oldest dropped."""
    clock = max((int(k["LamportTime"]) for k in ring), default=0)
    return [*list(ring)[-(KEY_RING_SIZE - 1) :], new_key(clock + 1, token)]


def due(rotated_at: float | None, now: float, period: float) -> bool:
    """True when the ring must rotate: never rotated, or a whole period since the last rotation
    (also when the clock went back by more than a period: a stale timestamp is not trusted)."""
    if rotated_at is None:
        return True
    return now - rotated_at >= period or rotated_at - now > period


def primary(ring: Sequence[Key]) -> Key:
    """The key that encrypts: the second newest (the newest is only installed to decrypt)."""
    if not ring:
        raise ValueError("no network encryption key")
    ordered = sorted(ring, key=lambda k: int(k["LamportTime"]))
    return ordered[-2] if len(ordered) >= 2 else ordered[-1]


def key_bytes(key: Mapping[str, Any]) -> bytes:
    raw = base64.b64decode(str(key["Key"]), validate=True)
    if len(raw) != KEY_BYTES:
        raise ValueError(f"a network key is {KEY_BYTES} bytes, not {len(raw)}")
    return raw


def tags(ring: Sequence[Mapping[str, Any]]) -> list[int]:
    """What identifies a ring without its secrets (the assignments signature, logs)."""
    return sorted(int(k["LamportTime"]) for k in ring)


def valid_ring(value: Any) -> list[Key]:
    """The ring a node received, checked (a node acts on nothing half-formed); [] when none."""
    if not isinstance(value, list):
        return []
    ring = []
    for k in value:
        if not isinstance(k, dict) or not isinstance(k.get("LamportTime"), int):
            return []
        try:
            key_bytes(k)
        except (ValueError, TypeError):
            return []
        ring.append(k)
    return ring


_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def _fnv1a32(data: bytes) -> int:
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def spi(src: str, dst: str, tag: int) -> int:
    """libnetwork's buildSPI(src, dst, tag): FNV-1a of src(4 bytes) | tag(4 bytes, big endian) | dst.
    SPIs 0-255 are reserved (RFC 4303): those (one in 2^24) move up by 256."""
    data = ipaddress.IPv4Address(src).packed + (tag & 0xFFFFFFFF).to_bytes(4, "big") + ipaddress.IPv4Address(dst).packed
    value = _fnv1a32(data)
    return value if value > 255 else value + 256
