"""shoal.manager.ca and .tokens: root CA, node certificates, join tokens, TLS, certificate files."""

from __future__ import annotations

import base64
import datetime as dt
import os
import socket
import ssl
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from shoal.files import write_atomic
from shoal.manager import ca
from shoal.manager.ca import CertError, CSRError, Identity, RootCA, TokenError

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def root() -> RootCA:
    return RootCA.create()


@pytest.fixture(scope="module")
def other_root() -> RootCA:
    return RootCA.create()


def _node(root: RootCA, node_id: str = "node1", role: str = "worker", cluster: str = "cluster1") -> tuple[str, str]:
    key_pem, csr_pem = ca.new_node_key_and_csr(node_id)
    return root.issue(csr_pem, node_id, role, cluster, ips=["127.0.0.1"]), key_pem


# --- root CA ------------------------------------------------------------------------------------


def test_root_ca_shape(root: RootCA) -> None:
    cert = root.cert
    assert cert.subject.rfc4514_string() == "CN=swarm-ca"
    assert cert.issuer == cert.subject
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=7300) <= life <= dt.timedelta(days=7300, hours=1)
    cert.verify_directly_issued_by(cert)
    assert root.cert_pem.startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY" in root.key_pem


def test_root_ca_load_round_trip(root: RootCA) -> None:
    again = RootCA.load(root.cert_pem, root.key_pem.encode())
    assert again.cert_pem == root.cert_pem
    assert again.digest() == root.digest()
    cert_pem, _ = _node(again)
    assert root.verify(cert_pem).node_id == "node1"


def test_root_ca_load_rejects(root: RootCA, other_root: RootCA) -> None:
    with pytest.raises(CertError, match="do not match"):
        RootCA.load(root.cert_pem, other_root.key_pem)
    cert_pem, key_pem = _node(root)
    with pytest.raises(CertError, match="not a CA certificate"):
        RootCA.load(cert_pem, key_pem)
    with pytest.raises(CertError, match="invalid certificate"):
        RootCA.load("garbage", root.key_pem)
    with pytest.raises(CertError, match="invalid private key"):
        RootCA.load(root.cert_pem, "garbage")


def test_digest_is_sha256_of_der_in_base36(root: RootCA) -> None:
    import hashlib

    der = root.cert.public_bytes(serialization.Encoding.DER)
    want = int.from_bytes(hashlib.sha256(der).digest(), "big")
    assert len(root.digest()) == 50
    assert int(root.digest(), 36) == want
    # PEM re-encoding (CRLF, no trailing newline) does not change the digest
    assert ca.ca_digest(root.cert_pem.replace("\n", "\r\n").rstrip()) == root.digest()
    assert RootCA.digest_of(root.cert_pem.encode()) == root.digest()


# --- join tokens --------------------------------------------------------------------------------


def test_token_round_trip(root: RootCA) -> None:
    token = ca.make_join_token(root.digest())
    prefix, version, digest, secret = token.split("-")
    assert (prefix, version, digest) == ("SWMTKN", "1", root.digest())
    assert len(secret) == 25 and secret.isalnum() and secret == secret.lower()
    assert ca.parse_join_token(token) == (digest, secret)
    assert ca.parse_join_token(f"  {token}\n") == (digest, secret)  # pasted with a newline
    assert ca.make_join_token(root.digest()) != token


def test_make_join_token_wants_a_digest() -> None:
    with pytest.raises(ValueError, match="not a CA digest"):
        ca.make_join_token("abc")


GOOD_DIGEST = "3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl"
GOOD_SECRET = "1awxwuwd3z9j1z3puu7rcgdbx"


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "must start with SWMTKN-1-"),
        ("hello", "must start with SWMTKN-1-"),
        (f"SWMTKN-2-{GOOD_DIGEST}-{GOOD_SECRET}", "unsupported version '2'"),
        (f"SWMTKN-2-FIPS-{GOOD_DIGEST}-{GOOD_SECRET}", "unsupported version '2'"),
        ("SWMTKN-1", "expected SWMTKN-1-<CA digest>-<secret>"),
        (f"SWMTKN-1-{GOOD_DIGEST}", "expected SWMTKN-1-<CA digest>-<secret>"),
        (f"SWMTKN-1-{GOOD_DIGEST}-{GOOD_SECRET}-x", "expected SWMTKN-1-<CA digest>-<secret>"),
        (f"SWMTKN-1-{GOOD_DIGEST[:-1]}-{GOOD_SECRET}", "CA digest must be 50 base-36 characters"),
        (f"SWMTKN-1-{GOOD_DIGEST.upper()}-{GOOD_SECRET}", "CA digest must be 50 base-36 characters"),
        (f"SWMTKN-1-{'z' * 50}-{GOOD_SECRET}", "CA digest must be 50 base-36 characters"),  # > 2**256
        (f"SWMTKN-1-{GOOD_DIGEST}-{GOOD_SECRET}a", "secret must be 25 base-36 characters"),
        (f"SWMTKN-1-{GOOD_DIGEST}-{GOOD_SECRET[:-1]}_", "secret must be 25 base-36 characters"),
    ],
)
def test_parse_join_token_rejects(token: str, message: str) -> None:
    with pytest.raises(TokenError) as exc:
        ca.parse_join_token(token)
    assert message in exc.value.message
    assert exc.value.message.startswith("invalid join token")


def test_parse_join_token_accepts_dockers_example() -> None:
    assert ca.parse_join_token(f"SWMTKN-1-{GOOD_DIGEST}-{GOOD_SECRET}") == (GOOD_DIGEST, GOOD_SECRET)


def test_token_matches_and_role(root: RootCA, other_root: RootCA) -> None:
    worker = ca.make_join_token(root.digest())
    manager = ca.make_join_token(root.digest())
    assert ca.token_matches(worker, worker)
    assert not ca.token_matches(worker, manager)
    assert not ca.token_matches("garbage", worker)
    # same secret, another CA's digest: a token for another cluster (or from before a CA rotation)
    foreign = worker.replace(root.digest(), other_root.digest())
    assert not ca.token_matches(foreign, worker)
    assert ca.token_role(worker, worker, manager) == "worker"
    assert ca.token_role(f"{manager}\n", worker, manager) == "manager"
    with pytest.raises(TokenError, match="A valid join token is necessary to join this cluster"):
        ca.token_role(foreign, worker, manager)
    with pytest.raises(TokenError, match="invalid join token"):
        ca.token_role("SWMTKN-1-x", worker, manager)
    # rotation: the old token stops matching
    rotated = ca.make_join_token(root.digest())
    with pytest.raises(TokenError):
        ca.token_role(worker, rotated, manager)


def test_verify_ca_digest_pins_the_ca(root: RootCA, other_root: RootCA) -> None:
    token = ca.make_join_token(root.digest())
    ca.verify_ca_digest(root.cert_pem, token)
    ca.verify_ca_digest(root.cert_pem.encode(), token)
    with pytest.raises(TokenError) as exc:
        ca.verify_ca_digest(other_root.cert_pem, token)
    assert exc.value.message.startswith(
        "error while validating Root CA Certificate: remote CA does not match fingerprint. Expected: "
    )
    assert root.digest() in exc.value.message and other_root.digest() in exc.value.message
    with pytest.raises(TokenError, match="invalid CA certificate"):
        ca.verify_ca_digest("not a certificate", token)


# --- node certificates --------------------------------------------------------------------------


def test_issue_identity_round_trip(root: RootCA) -> None:
    key_pem, csr_pem = ca.new_node_key_and_csr()
    cert_pem = root.issue(csr_pem, "w1abc", "worker", "clusterx", ips=["10.213.0.11"], now=NOW)
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "w1abc"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "swarm-worker"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "clusterx"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["swarm-worker", "w1abc"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.213.0.11"]
    not_before, not_after = ca.cert_validity(cert_pem)
    assert not_after - NOW.replace(microsecond=0) <= dt.timedelta(days=90)
    assert not_after - not_before >= dt.timedelta(days=90)
    # the certificate carries the key from the node's CSR
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    assert cert.public_key() == key.public_key()
    der = cert.public_bytes(serialization.Encoding.DER)
    for form in (cert_pem, cert_pem.encode(), der, cert):
        assert ca.cert_identity(form) == Identity("w1abc", "worker", "clusterx")
    assert root.verify(cert_pem) == ("w1abc", "worker", "clusterx")


def test_manager_certificate(root: RootCA) -> None:
    _, csr_pem = ca.new_node_key_and_csr()
    cert_pem = root.issue(csr_pem, "m1", "manager", "c1", validity_days=1)
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["swarm-manager", "m1", "swarm-ca"]
    assert ca.cert_identity(cert_pem) == ("m1", "manager", "c1")
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=1) <= life <= dt.timedelta(days=1, hours=1, seconds=1)


def test_issue_rejects_bad_arguments(root: RootCA) -> None:
    _, csr_pem = ca.new_node_key_and_csr()
    with pytest.raises(ValueError, match="invalid role"):
        root.issue(csr_pem, "n", "admin", "c")
    with pytest.raises(ValueError, match="invalid node ID"):
        root.issue(csr_pem, "", "worker", "c")
    with pytest.raises(ValueError, match="invalid cluster ID"):
        root.issue(csr_pem, "n", "worker", "a,O=evil")
    with pytest.raises(ValueError):
        root.issue(csr_pem, "n", "worker", "c", ips=["not-an-ip"])


def _forged_csr() -> str:
    """A CSR whose embedded public key is not the key that signed it."""
    _, csr_pem = ca.new_node_key_and_csr()
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    mine = csr.public_key().public_bytes(serialization.Encoding.DER, spki)
    theirs = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(serialization.Encoding.DER, spki)
    der = csr.public_bytes(serialization.Encoding.DER)
    assert der.count(mine) == 1
    forged = der.replace(mine, theirs)
    body = base64.encodebytes(forged).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"


def _csr_with(key: Any, algorithm: Any) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, algorithm)
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def test_issue_rejects_bad_csrs(root: RootCA) -> None:
    with pytest.raises(CSRError, match="signature does not match its public key"):
        root.issue(_forged_csr(), "n", "worker", "c")
    with pytest.raises(CSRError, match="invalid certificate signing request"):
        root.issue("hello", "n", "worker", "c")
    with pytest.raises(CSRError, match="invalid certificate signing request"):
        root.issue(root.cert_pem, "n", "worker", "c")  # a certificate is not a CSR
    _, csr_pem = ca.new_node_key_and_csr()
    lines = csr_pem.splitlines()
    with pytest.raises(CSRError, match="invalid certificate signing request"):
        root.issue("\n".join([*lines[:2], *lines[-1:]]), "n", "worker", "c")  # truncated
    with pytest.raises(CSRError, match="too small"):
        root.issue(_csr_with(rsa.generate_private_key(65537, 1024), hashes.SHA256()), "n", "worker", "c")
    with pytest.raises(CSRError, match="unsupported elliptic curve"):
        root.issue(_csr_with(ec.generate_private_key(ec.SECP521R1()), hashes.SHA256()), "n", "worker", "c")
    with pytest.raises(CSRError, match="unsupported public key type"):
        root.issue(_csr_with(ed25519.Ed25519PrivateKey.generate(), None), "n", "worker", "c")
    assert issubclass(CSRError, CertError) and issubclass(CertError, ValueError)


def _self_made_cert(subject: list[x509.NameAttribute], dns: list[str]) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(x509.Name(subject))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=1))
    )
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    return builder.sign(key, hashes.SHA256())


@pytest.mark.parametrize(
    ("ou", "dns", "message"),
    [
        ("swarm-admin", ["swarm-admin", "n1"], "neither swarm-manager nor swarm-worker"),
        (None, ["swarm-worker", "n1"], "no single organizational unit"),
        ("swarm-manager", ["swarm-worker", "n1"], "do not include swarm-manager"),
        ("swarm-worker", [], "do not include swarm-worker"),
    ],
)
def test_cert_identity_rejects(ou: str | None, dns: list[str], message: str) -> None:
    subject = [x509.NameAttribute(NameOID.COMMON_NAME, "n1"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "c1")]
    if ou:
        subject.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    with pytest.raises(CertError, match=message):
        ca.cert_identity(_self_made_cert(subject, dns))
    with pytest.raises(CertError, match="invalid certificate"):
        ca.cert_identity(b"\x30\x03junk")


def test_verify_node_cert(root: RootCA, other_root: RootCA) -> None:
    mine, _ = _node(root)
    theirs, _ = _node(other_root)
    assert ca.verify_node_cert(mine, root.cert_pem) == ("node1", "worker", "cluster1")
    with pytest.raises(CertError, match="not issued by this cluster's root CA"):
        ca.verify_node_cert(theirs, root.cert_pem)
    # a bundle (as during a CA rotation) accepts certificates of either root
    assert ca.verify_node_cert(theirs, root.cert_pem + other_root.cert_pem).node_id == "node1"
    _, csr_pem = ca.new_node_key_and_csr()
    old = root.issue(csr_pem, "n2", "worker", "c", validity_days=90, now=NOW - dt.timedelta(days=91))
    with pytest.raises(CertError, match="not valid now"):
        ca.verify_node_cert(old, root.cert_pem)
    assert ca.verify_node_cert(old, root.cert_pem, now=NOW - dt.timedelta(days=30)).node_id == "n2"


# --- TLS ----------------------------------------------------------------------------------------


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> tuple[Any, Any]:
    """One TLS connection over 127.0.0.1. Returns what each side saw: the peer's identity (the
    client also gets the bytes the server sent), or the exception it hit."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    seen: dict[str, Any] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        conn.settimeout(5)
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                seen["server"] = ca.peer_identity(tls)
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as e:
            seen["server"] = e

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, client_ctx.wrap_socket(raw) as tls:
            peer = ca.peer_identity(tls)
            client: Any = (peer, tls.recv(2))
    except (ssl.SSLError, OSError) as e:
        client = e
    thread.join(5)
    listener.close()
    assert not thread.is_alive()
    return seen["server"], client


@pytest.fixture(scope="module")
def manager_ctx(root: RootCA) -> ssl.SSLContext:
    cert_pem, key_pem = _node(root, "mgr1", "manager")
    return ca.server_context(cert_pem, key_pem, root.cert_pem)


def test_server_context_settings(manager_ctx: ssl.SSLContext) -> None:
    assert manager_ctx.verify_mode == ssl.CERT_OPTIONAL
    assert manager_ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    client = ca.client_context(ca.RootCA.create().cert_pem)
    assert client.verify_mode == ssl.CERT_REQUIRED and not client.check_hostname


def test_tls_without_client_cert_is_anonymous(root: RootCA, manager_ctx: ssl.SSLContext) -> None:
    # The CA-fetch and join endpoints: no client certificate yet; the handler sees None.
    server, client = _handshake(manager_ctx, ca.client_context(root.cert_pem))
    assert server is None
    assert client == (("mgr1", "manager", "cluster1"), b"ok")


def test_tls_mutual_identity(root: RootCA, manager_ctx: ssl.SSLContext) -> None:
    cert_pem, key_pem = _node(root, "wrk1", "worker")
    server, client = _handshake(manager_ctx, ca.client_context(root.cert_pem, cert_pem, key_pem))
    assert server == Identity("wrk1", "worker", "cluster1")
    assert client == (("mgr1", "manager", "cluster1"), b"ok")


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_client_cert_from_another_ca_fails_the_handshake(
    root: RootCA, other_root: RootCA, manager_ctx: ssl.SSLContext, version: ssl.TLSVersion
) -> None:
    """CERT_OPTIONAL does not mean "ignore a bad certificate": a client certificate that does not
    chain to our CA makes the server abort the handshake, so it never becomes an anonymous caller.
    The client learns it from the server's alert: in TLS 1.2 during its handshake, in TLS 1.3 on
    its first read (a TLS 1.3 client finishes its handshake before the server checks its cert)."""
    cert_pem, key_pem = _node(other_root, "intruder", "manager")
    client_ctx = ca.client_context(root.cert_pem, cert_pem, key_pem)
    client_ctx.maximum_version = version
    server, client = _handshake(manager_ctx, client_ctx)
    assert isinstance(server, ssl.SSLError)
    assert "certificate verify failed" in str(server)
    assert isinstance(client, ssl.SSLError | ConnectionError)


def test_tls_client_rejects_a_server_from_another_ca(other_root: RootCA, manager_ctx: ssl.SSLContext) -> None:
    server, client = _handshake(manager_ctx, ca.client_context(other_root.cert_pem))
    assert isinstance(client, ssl.SSLCertVerificationError)
    assert isinstance(server, ssl.SSLError | OSError)


def test_tls_bootstrap_context_sees_any_server(manager_ctx: ssl.SSLContext) -> None:
    # Only for fetching the CA before joining; the CA is then pinned with verify_ca_digest.
    server, client = _handshake(manager_ctx, ca.bootstrap_client_context())
    assert server is None
    assert client[1] == b"ok"


def test_tls_context_argument_checks(root: RootCA, other_root: RootCA) -> None:
    cert_pem, _ = _node(root)
    _, other_key = _node(other_root)
    with pytest.raises(ValueError, match="both"):
        ca.client_context(root.cert_pem, cert_pem)
    with pytest.raises(CertError, match="do not match"):
        ca.server_context(cert_pem, other_key, root.cert_pem)


# --- files --------------------------------------------------------------------------------------


def test_node_files_modes_and_round_trip(root: RootCA, tmp_path: Path) -> None:
    cert_pem, key_pem = _node(root)
    d = tmp_path / "certificates"
    assert ca.read_node_files(d) is None
    ca.write_node_files(d, root.cert_pem, cert_pem, key_pem)
    mode = {p.name: stat.S_IMODE(p.stat().st_mode) for p in d.iterdir()}
    assert mode == {"swarm-root-ca.crt": 0o644, "swarm-node.crt": 0o644, "swarm-node.key": 0o600}
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert ca.read_node_files(d) == (root.cert_pem, cert_pem, key_pem)
    # renewal overwrites in place, leaving no temporary files behind
    cert2, key2 = _node(root, "node1")
    ca.write_node_files(d, root.cert_pem, cert2, key2)
    assert sorted(os.listdir(d)) == ["swarm-node.crt", "swarm-node.key", "swarm-root-ca.crt"]
    assert ca.read_node_files(d) == (root.cert_pem, cert2, key2)
    assert stat.S_IMODE((d / "swarm-node.key").stat().st_mode) == 0o600


def test_read_node_files_detects_damage(root: RootCA, tmp_path: Path) -> None:
    cert_pem, key_pem = _node(root)
    ca.write_node_files(tmp_path, root.cert_pem, cert_pem, key_pem)
    _, other_key = _node(root)
    write_atomic(tmp_path / ca.NODE_KEY_FILE, other_key, 0o600)  # as if a renewal died halfway
    with pytest.raises(CertError, match="do not match"):
        ca.read_node_files(tmp_path)
    (tmp_path / ca.CA_CERT_FILE).unlink()
    with pytest.raises(CertError, match=r"missing swarm-root-ca\.crt"):
        ca.read_node_files(tmp_path)
