"""The node's certificate files (CA, certificate, key) and the TLS contexts made from them.

With autolock (a manager of a swarm whose `EncryptionConfig.AutoLockManagers` is on) the private key
file holds the key wrapped by the unlock key (`store/atrest/keywrap.py`) instead of the PEM, as
SwarmKit's KeyReadWriter encrypts `swarm-node.key` with the KEK: JSON `{"Wrapped": true, ...}`.
"""

from __future__ import annotations

import json
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

from shoal import tls
from shoal.files import write_atomic
from shoal.identity import KEY_DIR, cert_dir, node_file, raft_dir
from shoal.store.atrest import keyset, keywrap

log = logging.getLogger("shoal.agent")


@dataclass(frozen=True)
class Credentials:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def server_context(self) -> ssl.SSLContext:
        return tls.server_context(self.cert_pem, self.key_pem, self.ca_pem)

    def client_context(self) -> ssl.SSLContext:
        return tls.client_context(self.ca_pem, self.cert_pem, self.key_pem)

    def __repr__(self) -> str:  # never print the key
        return "Credentials(...)"


def as_bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def read_ca(data_dir: Path) -> bytes:
    return (cert_dir(data_dir) / tls.CA_CERT_FILE).read_bytes()


def key_path(data_dir: Path) -> Path:
    return cert_dir(data_dir) / tls.NODE_KEY_FILE


def key_is_wrapped(data_dir: Path) -> bool:
    try:
        raw = key_path(data_dir).read_bytes()
    except FileNotFoundError:
        return False
    return raw.lstrip().startswith(b"{") and bool(json.loads(raw).get("Wrapped"))


def _open_key(raw: bytes, kek: bytes | None, where: Path) -> bytes:
    if not raw.lstrip().startswith(b"{"):
        return raw  # a PEM: no autolock
    if kek is None:
        raise keywrap.Locked(f"the TLS key {where} is wrapped (autolock): unlock the manager first")
    return keywrap.unwrap(kek, keywrap.PURPOSE_TLS_KEY, json.loads(raw)["Key"])


def _stored_key(key_pem: bytes, kek: bytes | None) -> bytes:
    if kek is None:
        return key_pem
    return json.dumps({"Wrapped": True, "Key": keywrap.wrap(kek, keywrap.PURPOSE_TLS_KEY, key_pem)}).encode()


def load(data_dir: Path, kek: bytes | None) -> Credentials:
    """The node's credentials; `keywrap.Locked` if the key is wrapped and no KEK is given,
    `keywrap.WrongUnlockKey` if the KEK does not open it."""
    certs = cert_dir(data_dir)
    return Credentials(
        (certs / tls.CA_CERT_FILE).read_bytes(),
        (certs / tls.NODE_CERT_FILE).read_bytes(),
        _open_key((certs / tls.NODE_KEY_FILE).read_bytes(), kek, certs / tls.NODE_KEY_FILE),
    )


def save(
    data_dir: Path, ca_pem: bytes | str, cert_pem: bytes | str, key_pem: bytes | str, *, kek: bytes | None
) -> Credentials:
    """Write the files; the key wrapped by `kek` when the node is an autolocked manager (the caller
    passes the agent's current KEK: there is no default, so that no caller writes a key in clear by
    forgetting it)."""
    creds = Credentials(as_bytes(ca_pem), as_bytes(cert_pem), as_bytes(key_pem))
    tls.write_node_files(cert_dir(data_dir), creds.ca_pem, creds.cert_pem, _stored_key(creds.key_pem, kek))
    return creds


def rewrapped_key(data_dir: Path, old: bytes | None, new: bytes | None) -> bytes:
    """The TLS key file's content wrapped by `new` (in clear for None), for `keyset.replace_all`."""
    path = key_path(data_dir)
    return _stored_key(_open_key(path.read_bytes(), old, path), new)


def rewrap_key(data_dir: Path, old: bytes | None, new: bytes | None) -> None:
    """The TLS key file rewritten wrapped by `new` (in clear for None), atomically."""
    path = key_path(data_dir)
    key_pem = _open_key(path.read_bytes(), old, path)
    write_atomic(path, _stored_key(key_pem, new), 0o600)


def recover_key_set(data_dir: Path) -> None:
    """Before the agent reads node.json or any key: finish (or undo) a re-wrap of the key files
    (autolock.py) that a crash interrupted, so that they are all under one unlock key."""
    from shoal.store.atrest.keyfile import default_key_path

    paths = [key_path(data_dir), default_key_path(raft_dir(data_dir)), node_file(data_dir)]
    done = keyset.recover(data_dir / KEY_DIR, paths)
    if done:
        log.warning("autolock: a re-wrap of this manager's keys interrupted by a crash was %s", done)
