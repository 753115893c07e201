"""The node's certificate files (CA, certificate, key) and the TLS contexts made from them."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from shoal import tls
from shoal.identity import cert_dir


@dataclass(frozen=True)
class Credentials:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def server_context(self) -> ssl.SSLContext:
        return tls.server_context(self.cert_pem, self.key_pem, self.ca_pem)

    def client_context(self) -> ssl.SSLContext:
        return tls.client_context(self.ca_pem, self.cert_pem, self.key_pem)


def as_bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def read_ca(data_dir: Path) -> bytes:
    return (cert_dir(data_dir) / tls.CA_CERT_FILE).read_bytes()


def load(data_dir: Path) -> Credentials:
    certs = cert_dir(data_dir)
    return Credentials(
        (certs / tls.CA_CERT_FILE).read_bytes(),
        (certs / tls.NODE_CERT_FILE).read_bytes(),
        (certs / tls.NODE_KEY_FILE).read_bytes(),
    )


def save(data_dir: Path, ca_pem: bytes | str, cert_pem: bytes | str, key_pem: bytes | str) -> Credentials:
    creds = Credentials(as_bytes(ca_pem), as_bytes(cert_pem), as_bytes(key_pem))
    tls.write_node_files(cert_dir(data_dir), creds.ca_pem, creds.cert_pem, creds.key_pem)
    return creds
