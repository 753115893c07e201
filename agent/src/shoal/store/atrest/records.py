"""The sealed-record format: one AEAD message per journal entry or snapshot.

    MAGIC (4 bytes, format version) | key id (8 bytes) | nonce (12 bytes) | AES-256-GCM ciphertext+tag

The associated data binds a record to its format, its key, its kind (journal entry or snapshot) and
its place (a journal entry's Raft index and term), so a record copied to another slot, or into the
other file, fails authentication like a modified one. Nonces are random (96 bits): safe for far more
records than a manager writes under one key (NIST's bound is 2^32 messages per key).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shoal.store.atrest.errors import AtRestError

__all__ = ["AtRestError", "DataKey", "RecordCipher"]

MAGIC = b"SHR1"
KEY_ID_SIZE = 8
NONCE_SIZE = 12
KEY_SIZE = 32
HEADER_SIZE = len(MAGIC) + KEY_ID_SIZE + NONCE_SIZE
TAG_SIZE = 16

KIND_ENTRY = b"raft-entry"
KIND_SNAPSHOT = b"raft-snapshot"


@dataclass(frozen=True)
class DataKey:
    key_id: bytes  # random, stored with the key: names which key sealed a record
    secret: bytes  # 32 bytes for AES-256-GCM

    def __post_init__(self) -> None:
        if len(self.key_id) != KEY_ID_SIZE or len(self.secret) != KEY_SIZE:
            raise AtRestError("a data key is an 8-byte id and a 32-byte AES-256 key")

    @classmethod
    def generate(cls) -> DataKey:
        return cls(os.urandom(KEY_ID_SIZE), AESGCM.generate_key(bit_length=256))

    def __repr__(self) -> str:  # never print the key itself
        return f"DataKey(id={self.key_id.hex()})"


def entry_context(idx: int, term: int) -> bytes:
    return struct.pack("<QQ", idx, term)


class RecordCipher:
    def __init__(self, key: DataKey) -> None:
        self.key = key
        self._aead = AESGCM(key.secret)

    def seal(self, kind: bytes, context: bytes, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        head = MAGIC + self.key.key_id
        return head + nonce + self._aead.encrypt(nonce, plaintext, _aad(head, kind, context))

    def open(self, kind: bytes, context: bytes, record: bytes, where: str) -> bytes:
        """The plaintext, or AtRestError naming `where` (which file and record) and what is wrong."""
        record = bytes(record)
        if len(record) < HEADER_SIZE + TAG_SIZE or not record.startswith(MAGIC):
            raise AtRestError(f"{where} is not an encrypted shoal record (unknown format or corrupted)")
        key_id = record[len(MAGIC) : len(MAGIC) + KEY_ID_SIZE]
        if key_id != self.key.key_id:
            raise AtRestError(
                f"{where} was sealed with data key {key_id.hex()}, but this manager's key is "
                f"{self.key.key_id.hex()}: the key file was replaced or belongs to another manager"
            )
        head, nonce = record[: len(MAGIC) + KEY_ID_SIZE], record[len(MAGIC) + KEY_ID_SIZE : HEADER_SIZE]
        try:
            return self._aead.decrypt(nonce, record[HEADER_SIZE:], _aad(head, kind, context))
        except InvalidTag:
            raise AtRestError(
                f"{where} fails authentication: it was modified, corrupted or moved from another place"
            ) from None


def _aad(head: bytes, kind: bytes, context: bytes) -> bytes:
    return head + struct.pack("<B", len(kind)) + kind + context
