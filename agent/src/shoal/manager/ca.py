"""The cluster root CA and node certificates: issuing, parsing, verifying (needs `cryptography`).

As in SwarmKit: an ECDSA P-256 root `CN=swarm-ca` valid 20 years; each node holds a key it made
itself and a certificate `CN=<node id>, OU=swarm-manager|swarm-worker, O=<cluster id>` that the
CA issues from the node's CSR. The role in the certificate, not anything the peer says, decides
what a peer may do on port 2377 (`cert_identity`, `peer_identity`).

Join tokens live in `shoal.manager.tokens`, TLS contexts and certificate files in `shoal.tls`
(standard library only, what workers need); both are re-exported here.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shoal.manager.tokens import (
    TokenError,
    ca_digest,
    make_join_token,
    parse_join_token,
    token_matches,
    token_role,
    verify_ca_digest,
)
from shoal.tls import (
    CA_CERT_FILE,
    CA_ROLE,
    CERT_DIR,
    NODE_CERT_FILE,
    NODE_KEY_FILE,
    ROLE_OU,
    CertError,
    Identity,
    NodeCertificates,
    as_bytes,
    bootstrap_client_context,
    client_context,
    identity_from_names,
    peer_identity,
    read_node_files,
    server_context,
    write_node_files,
)

__all__ = [
    "CA_CERT_FILE",
    "CA_ROLE",
    "CERT_DIR",
    "NODE_CERT_FILE",
    "NODE_KEY_FILE",
    "ROLE_OU",
    "CSRError",
    "CertError",
    "Identity",
    "NodeCertificates",
    "RootCA",
    "TokenError",
    "bootstrap_client_context",
    "ca_digest",
    "cert_identity",
    "cert_validity",
    "client_context",
    "make_join_token",
    "new_node_key_and_csr",
    "parse_join_token",
    "peer_identity",
    "read_node_files",
    "server_context",
    "token_matches",
    "token_role",
    "verify_ca_digest",
    "verify_node_cert",
    "write_node_files",
]

ROOT_CN = "swarm-ca"
ROOT_CA_VALIDITY_DAYS = 7300  # 20 years, SwarmKit's RootCAExpiration
NODE_CERT_VALIDITY_DAYS = 90  # SwarmKit's DefaultNodeCertExpiration (2160h)
BACKDATE = dt.timedelta(hours=1)  # SwarmKit's CertBackdate: tolerate clocks a little behind ours

Cert = str | bytes | x509.Certificate  # PEM text, PEM or DER bytes, or a parsed certificate


class CSRError(CertError):
    """A certificate signing request the CA refuses to sign."""


# --- parsing ------------------------------------------------------------------------------------


def _load_cert(cert: Cert) -> x509.Certificate:
    if isinstance(cert, x509.Certificate):
        return cert
    raw = as_bytes(cert)
    try:
        if raw.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(raw)
        return x509.load_der_x509_certificate(raw)
    except ValueError as e:
        raise CertError(f"invalid certificate: {e}") from None


def _load_certs(pem: str | bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(as_bytes(pem))
    except ValueError as e:
        raise CertError(f"invalid CA certificate: {e}") from None


def _load_key(key_pem: str | bytes) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(as_bytes(key_pem), password=None)
    except (ValueError, TypeError) as e:
        raise CertError(f"invalid private key: {e}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CertError(f"unsupported private key type {type(key).__name__}")
    return key


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _check_public_key(key: object) -> None:
    """Only keys that give at least 128-bit security and that every TLS stack handles."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1):
            raise CSRError(f"unsupported elliptic curve {key.curve.name} (use P-256 or P-384)")
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise CSRError(f"RSA key of {key.key_size} bits is too small (at least 2048)")
    else:
        raise CSRError(f"unsupported public key type {type(key).__name__} (use ECDSA P-256)")


def _check_matching_key(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    if cert.public_key() != key.public_key():
        raise CertError("the certificate and the private key do not match")


def _single(name: x509.Name, oid: x509.ObjectIdentifier, label: str) -> str:
    values = [str(a.value) for a in name.get_attributes_for_oid(oid)]
    if len(values) != 1 or not values[0]:
        raise CertError(f"the certificate has no single {label} in its subject")
    return values[0]


def _check_name(what: str, value: str) -> None:
    # IDs go into the subject and a DNS SAN: keep them to what new_id() makes (and test names).
    if not value or len(value) > 64 or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in value):
        raise ValueError(f"invalid {what} {value!r}")


# --- the root CA --------------------------------------------------------------------------------


class RootCA:
    """The cluster root CA: a certificate and, on managers, its private key."""

    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
        _check_matching_key(cert, key)
        self._cert = cert
        self._key = key

    @classmethod
    def create(cls, *, now: dt.datetime | None = None, validity_days: float = ROOT_CA_VALIDITY_DAYS) -> RootCA:
        """A new self-signed ECDSA P-256 root `CN=swarm-ca`."""
        now = now or dt.datetime.now(dt.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ROOT_CN)])
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + dt.timedelta(days=validity_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @classmethod
    def load(cls, cert_pem: str | bytes, key_pem: str | bytes) -> RootCA:
        """The CA from its PEM certificate and key (as kept in the store); `CertError` if they do not
        belong together or the certificate is not a CA."""
        cert = _load_cert(cert_pem)
        if not _is_ca(cert):
            raise CertError("the root certificate is not a CA certificate")
        return cls(cert, _load_key(key_pem))

    @property
    def cert(self) -> x509.Certificate:
        return self._cert

    @property
    def cert_pem(self) -> str:
        return _cert_pem(self._cert)

    @property
    def key_pem(self) -> str:
        """The CA private key, PKCS#8 PEM: it belongs in the replicated store, never on workers."""
        return _key_pem(self._key)

    def digest(self) -> str:
        """The base-36 digest that join tokens pin (`shoal.manager.tokens.ca_digest`)."""
        return ca_digest(self.cert_pem)

    @staticmethod
    def digest_of(ca_pem: str | bytes) -> str:
        """The digest of a CA certificate held without its key (on workers): `ca_digest(ca_pem)`."""
        return ca_digest(ca_pem)

    def issue(
        self,
        csr_pem: str | bytes,
        node_id: str,
        role: str,
        cluster_id: str,
        validity_days: float = NODE_CERT_VALIDITY_DAYS,
        ips: Iterable[str] = (),
        *,
        now: dt.datetime | None = None,
        validity: dt.timedelta | None = None,
    ) -> str:
        """Sign the node's CSR: subject `CN=node_id, OU=swarm-<role>, O=cluster_id` and SANs
        `swarm-<role>`, the node ID (managers also `swarm-ca`) and the IP addresses `ips`. Only the CSR's
        public key is used; its subject is ignored. `CSRError` for a bad CSR.

        The certificate is valid from `now - BACKDATE` (a node whose clock is behind ours accepts it)
        for `validity` (the cluster's `NodeCertExpiry`), else `validity_days`, never past the root.
        """
        if role not in ROLE_OU:
            raise ValueError(f"invalid role {role!r}")
        _check_name("node ID", node_id)
        _check_name("cluster ID", cluster_id)
        ip_sans = [ipaddress.ip_address(ip) for ip in ips]
        csr = _load_csr(csr_pem)
        public_key = csr.public_key()
        _check_public_key(public_key)
        now = now or dt.datetime.now(dt.UTC)
        lifetime = validity if validity is not None else dt.timedelta(days=validity_days)
        if lifetime <= dt.timedelta(0):
            raise ValueError(f"invalid certificate validity {lifetime}")
        not_after = min(now + lifetime, self._cert.not_valid_after_utc)
        dns = [ROLE_OU[role], node_id] + ([CA_ROLE] if role == "manager" else [])
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster_id),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ROLE_OU[role]),
                x509.NameAttribute(NameOID.COMMON_NAME, node_id),
            ]
        )
        ca_ski = _ski(self._cert)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(encipher=isinstance(public_key, rsa.RSAPublicKey)), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(d) for d in dns] + [x509.IPAddress(ip) for ip in ip_sans]),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return _cert_pem(cert)

    def cross_sign(self, new_root: x509.Certificate) -> str:
        """`new_root` re-issued by this root (SwarmKit's CrossSignCACertificate): same subject, key
        and key identifier, issuer this root. During a root rotation nodes that still trust only
        this root verify certificates of the new root through it (leaf + cross-signed chain)."""
        if not _is_ca(new_root):
            raise CertError("the new root certificate is not a CA certificate")
        cert = (
            x509.CertificateBuilder()
            .subject_name(new_root.subject)
            .issuer_name(self._cert.subject)
            .public_key(new_root.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(new_root.not_valid_before_utc)
            .not_valid_after(min(new_root.not_valid_after_utc, self._cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(_ski(new_root), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(_ski(self._cert)), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        return _cert_pem(cert)

    def signs(self, cert: Cert) -> bool:
        """Whether this root's key issued `cert` (a node certificate, or a cross-signed root)."""
        c = _load_cert(cert)
        try:
            c.verify_directly_issued_by(self._cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

    def verify(self, cert: Cert, *, now: dt.datetime | None = None) -> Identity:
        """`verify_node_cert(cert, self.cert_pem)`."""
        return verify_node_cert(cert, self.cert_pem, now=now)


def _ski(cert: x509.Certificate) -> x509.SubjectKeyIdentifier:
    """The certificate's key identifier; computed from its key when an operator's root has none."""
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key())


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _key_usage(*, cert_sign: bool = False, encipher: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=encipher,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _load_csr(csr_pem: str | bytes) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(as_bytes(csr_pem))
    except (ValueError, TypeError) as e:
        raise CSRError(f"invalid certificate signing request: {e}") from None
    # The signature proves the requester holds the private key of the public key we certify.
    try:
        valid = csr.is_signature_valid
    except (ValueError, InvalidSignature, x509.UnsupportedGeneralNameType) as e:
        raise CSRError(f"invalid certificate signing request: {e}") from None
    if not valid:
        raise CSRError("invalid certificate signing request: its signature does not match its public key")
    return csr


# --- the joining node ---------------------------------------------------------------------------


def new_node_key_and_csr(node_id: str | None = None) -> tuple[str, str]:
    """(key PEM, CSR PEM) for a new ECDSA P-256 node key. The key never leaves the node; the CA
    sets the subject itself, so `node_id` only makes the CSR recognisable."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id or "shoal-node")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return _key_pem(key), csr.public_bytes(serialization.Encoding.PEM).decode()


# --- reading certificates -----------------------------------------------------------------------


def cert_identity(cert: Cert) -> Identity:
    """(node ID, role, cluster ID) of a node certificate. Use it on a certificate that TLS already
    verified against the cluster CA (`peer_identity`) or after `verify_node_cert`: it checks the
    naming, not the signature. The role must appear both as OU and as DNS SAN, as the CA issues it.
    """
    c = _load_cert(cert)
    node_id = _single(c.subject, NameOID.COMMON_NAME, "common name (node ID)")
    ou = _single(c.subject, NameOID.ORGANIZATIONAL_UNIT_NAME, "organizational unit (role)")
    cluster_id = _single(c.subject, NameOID.ORGANIZATION_NAME, "organization (cluster ID)")
    try:
        dns = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        dns = []
    return identity_from_names(node_id, ou, cluster_id, dns)


def cert_validity(cert: Cert) -> tuple[dt.datetime, dt.datetime]:
    """(not before, not after) in UTC, e.g. to schedule renewal."""
    c = _load_cert(cert)
    return c.not_valid_before_utc, c.not_valid_after_utc


def verify_node_cert(cert: Cert, ca_pem: str | bytes, *, now: dt.datetime | None = None) -> Identity:
    """The identity of `cert` if a certificate of `ca_pem` issued it and it is valid at `now`;
    `CertError` otherwise (e.g. certificates kept from another cluster, or expired)."""
    c = _load_cert(cert)
    for ca in _load_certs(ca_pem):
        if c.issuer != ca.subject:
            continue
        try:
            c.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        break
    else:
        raise CertError("the certificate was not issued by this cluster's root CA")
    now = now or dt.datetime.now(dt.UTC)
    if not c.not_valid_before_utc <= now <= c.not_valid_after_utc:
        raise CertError(f"the certificate is not valid now (valid {c.not_valid_before_utc} to {c.not_valid_after_utc})")
    return cert_identity(c)
