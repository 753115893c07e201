"""Autolock's key wrapping (SwarmKit's `manager/encryption` and `ca/keyreadwriter.go` KEK handling).

The unlock key is the cluster-wide key-encrypting key (KEK): 32 random bytes, shown to the operator
as `SWMKEY-1-<unpadded base64>` exactly as Docker prints it. It is never written to a file: the
managers hold it in memory once unlocked, and the cluster keeps it in its Raft store (a `meta`
object, inside journal entries and snapshots sealed by each manager's data key) so that every
manager can re-wrap its own keys when it is rotated, as SwarmKit keeps `Cluster.UnlockKeys`.

What it wraps, per manager: the Raft data key (`keyfile.py`), the TLS private key
(`agent/credentials.py`) and the Raft transport password (in `node.json`); `keyset.py` replaces
the three files as one. Wrapping: a fresh 16-byte salt per wrap, HKDF-SHA256(KEK, salt, info
naming the purpose) gives a one-use AES-256-GCM key; the purpose is also the associated data, so a
wrapped TLS key cannot be passed off as a wrapped data key. A wrong unlock key fails the AEAD tag:
`WrongUnlockKey`, and nothing is written.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shoal.errors import InvalidArgument
from shoal.store.atrest.errors import AtRestError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "SWMKEY-1-"  # SwarmKit's humanReadablePrefix
KEK_SIZE = 32
SALT_SIZE = 16
NONCE_SIZE = 12
KDF = "HKDF-SHA256"
CIPHER = "AES-256-GCM"
PURPOSE_DATA_KEY = "raft-data-key"
PURPOSE_TLS_KEY = "tls-private-key"
PURPOSE_RAFT_PASSWORD = "raft-password"
INVALID_KEY_STRING = "invalid key string"  # SwarmKit's ParseHumanReadableKey error


class KeyWrapError(AtRestError):
    """A wrapped key that cannot be opened (the manager does not start: never recovered silently)."""


class Locked(KeyWrapError):
    """The key is wrapped by the unlock key and this manager has not been given it yet."""


class WrongUnlockKey(KeyWrapError):
    """The unlock key given does not open this manager's wrapped keys."""


def new_unlock_key() -> bytes:
    return os.urandom(KEK_SIZE)


def format_unlock_key(kek: bytes) -> str:
    """`SWMKEY-1-` + base64 without padding (Go's RawStdEncoding), as `docker swarm unlock-key` prints."""
    return PREFIX + base64.b64encode(kek).decode().rstrip("=")


def parse_unlock_key(text: str) -> bytes:
    """The KEK from its printed form; InvalidArgument("invalid key string") as SwarmKit says."""
    if not isinstance(text, str) or not text.startswith(PREFIX):
        raise InvalidArgument(INVALID_KEY_STRING)
    body = text[len(PREFIX) :].strip()
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument(INVALID_KEY_STRING) from None
    if len(raw) != KEK_SIZE:
        raise InvalidArgument(INVALID_KEY_STRING)
    return raw


def _derive(kek: bytes, salt: bytes, purpose: str) -> AESGCM:
    # imported here: workers load this module (their TLS key is never wrapped) but not cryptography
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    if len(kek) != KEK_SIZE:
        raise KeyWrapError("an unlock key is 32 bytes")
    info = b"shoal autolock v1 " + purpose.encode()
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(kek))


def wrap(kek: bytes, purpose: str, secret: bytes) -> dict[str, Any]:
    """`secret` sealed under the KEK: a JSON-able dict with everything but the KEK needed to open it."""
    salt, nonce = os.urandom(SALT_SIZE), os.urandom(NONCE_SIZE)
    sealed = _derive(kek, salt, purpose).encrypt(nonce, secret, purpose.encode())
    return {
        "KDF": KDF,
        "Cipher": CIPHER,
        "Purpose": purpose,
        "Salt": base64.b64encode(salt).decode(),
        "Nonce": base64.b64encode(nonce).decode(),
        "Sealed": base64.b64encode(sealed).decode(),
    }


def unwrap(kek: bytes, purpose: str, wrapped: Mapping[str, Any]) -> bytes:
    try:
        if wrapped.get("KDF") != KDF or wrapped.get("Cipher") != CIPHER:
            raise ValueError(f"unknown wrapping {wrapped.get('KDF')!r}/{wrapped.get('Cipher')!r}")
        if wrapped.get("Purpose") != purpose:
            raise ValueError(f"this is a wrapped {wrapped.get('Purpose')!r}, not a {purpose!r}")
        salt = base64.b64decode(wrapped["Salt"], validate=True)
        nonce = base64.b64decode(wrapped["Nonce"], validate=True)
        sealed = base64.b64decode(wrapped["Sealed"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise KeyWrapError(f"malformed wrapped key: {exc}") from None
    from cryptography.exceptions import InvalidTag

    try:
        return _derive(kek, salt, purpose).decrypt(nonce, sealed, purpose.encode())
    except InvalidTag:
        raise WrongUnlockKey(f"the unlock key does not open the wrapped {purpose}") from None
