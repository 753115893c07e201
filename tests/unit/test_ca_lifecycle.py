"""Certificate lifecycle: expiry, backdating, renewal timing, cross-signing for root rotation, and
the TLS refusals (expired, old root) checked by their alert, over real TLS on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import random
import socket
import ssl
from typing import Any

import pytest

from shoal import tls
from shoal.manager import ca
from shoal.manager.ca import Identity, RootCA
from unit.test_ca import _handshake as tls_handshake


@pytest.fixture(scope="module")
def old_root() -> RootCA:
    return RootCA.create()


@pytest.fixture(scope="module")
def new_root() -> RootCA:
    return RootCA.create()


def _node(
    root: RootCA, node_id: str, role: str = "worker", *, validity: dt.timedelta | None = None, now: Any = None
) -> tuple[str, str]:
    key_pem, csr_pem = ca.new_node_key_and_csr(node_id)
    return root.issue(csr_pem, node_id, role, "cluster1", ips=["127.0.0.1"], validity=validity, now=now), key_pem


# --- issuance -------------------------------------------------------------------------------------


def test_issued_certificate_honours_the_expiry_and_is_backdated(old_root: RootCA) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cert_pem, _ = _node(old_root, "n1", validity=dt.timedelta(minutes=2), now=now)
    before, after = ca.cert_validity(cert_pem)
    assert before == now - dt.timedelta(hours=1)  # SwarmKit's CertBackdate
    assert after == now + dt.timedelta(minutes=2)


def test_a_node_whose_clock_is_minutes_behind_accepts_the_certificate(old_root: RootCA) -> None:
    cert_pem, _ = _node(old_root, "n2", validity=dt.timedelta(hours=1))
    behind = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)
    assert old_root.verify(cert_pem, now=behind) == Identity("n2", "worker", "cluster1")
    with pytest.raises(ca.CertError, match="not valid now"):
        old_root.verify(cert_pem, now=behind - dt.timedelta(hours=1))


def test_expiry_never_passes_the_root(old_root: RootCA) -> None:
    cert_pem, _ = _node(old_root, "n3", validity=dt.timedelta(days=365 * 50))
    assert ca.cert_validity(cert_pem)[1] == old_root.cert.not_valid_after_utc


def test_non_positive_validity_is_refused(old_root: RootCA) -> None:
    with pytest.raises(ValueError, match="invalid certificate validity"):
        _node(old_root, "n4", validity=dt.timedelta(0))


# --- renewal timing -------------------------------------------------------------------------------


def test_renewal_falls_between_half_and_80_percent_of_the_life() -> None:
    rng = random.Random(7)
    delays = [tls.renewal_delay(1000.0, 1120.0, 1000.0, rng) for _ in range(500)]
    assert min(delays) >= 60.0 and max(delays) <= 96.0
    assert max(delays) - min(delays) > 20  # spread: nodes do not renew all at once


def test_renewal_of_a_backdated_certificate_counts_from_not_before() -> None:
    # issued now, backdated 1 h, valid 2 h from not-before: the renewal is 0-36 min from now
    delay = tls.renewal_delay(0.0, 7200.0, 3600.0, random.Random(1))
    assert 0.0 <= delay <= 0.8 * 7200 - 3600


def test_renewal_is_immediate_once_past_the_window() -> None:
    assert tls.renewal_delay(0.0, 100.0, 95.0) == 0.0


def test_cert_times_in_a_child_without_cryptography(old_root: RootCA, monkeypatch: pytest.MonkeyPatch) -> None:
    cert_pem, _ = _node(old_root, "n5", validity=dt.timedelta(minutes=5))
    expected = tuple(t.timestamp() for t in ca.cert_validity(cert_pem))
    assert tls.cert_times(cert_pem) == expected
    monkeypatch.delitem(__import__("sys").modules, "shoal.manager.ca")  # as on a worker: a child reads it
    assert tls.cert_times(cert_pem) == expected


# --- cross-signing --------------------------------------------------------------------------------


def test_cross_signed_root_keeps_subject_and_key(old_root: RootCA, new_root: RootCA) -> None:
    cross = ca._load_cert(old_root.cross_sign(new_root.cert))
    assert cross.subject == new_root.cert.subject
    assert cross.public_key() == new_root.cert.public_key()
    assert old_root.signs(cross) and not new_root.signs(cross)
    leaf, _ = _node(new_root, "n6")
    assert new_root.signs(leaf) and not old_root.signs(leaf)


def test_cross_sign_refuses_a_leaf(old_root: RootCA) -> None:
    leaf, _ = _node(old_root, "n7")
    with pytest.raises(ca.CertError, match="not a CA certificate"):
        old_root.cross_sign(ca._load_cert(leaf))


# --- TLS: what the rotation relies on -------------------------------------------------------------


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> tuple[Any, Any]:
    """test_ca's handshake over 127.0.0.1, in TLS 1.2 (the alert reaches the client within the handshake)."""
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return tls_handshake(server_ctx, client_ctx)


def test_an_expired_client_certificate_gets_the_certificate_expired_alert(old_root: RootCA) -> None:
    server_cert, server_key = _node(old_root, "mgr", "manager")
    server = ca.server_context(server_cert, server_key, old_root.cert_pem)
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    cert, key = _node(old_root, "late", validity=dt.timedelta(minutes=2), now=long_ago)
    seen_by_server, seen_by_client = _handshake(server, ca.client_context(old_root.cert_pem, cert, key))
    assert isinstance(seen_by_client, ssl.SSLError)
    assert seen_by_client.reason == "SSLV3_ALERT_CERTIFICATE_EXPIRED"
    assert isinstance(seen_by_server, ssl.SSLCertVerificationError)
    assert seen_by_server.verify_message == "certificate has expired"


def test_rotation_chain_verifies_against_the_old_root_alone(old_root: RootCA, new_root: RootCA) -> None:
    """A manager that renewed during the rotation presents leaf + cross-signed root; a node that has
    not renewed yet (trusting only the old root) verifies it, and the manager, trusting both roots,
    accepts the node's old certificate."""
    cross = old_root.cross_sign(new_root.cert)
    leaf, key = _node(new_root, "mgr", "manager")
    bundle = old_root.cert_pem + new_root.cert_pem
    server = ca.server_context(leaf + cross, key, bundle)
    old_cert, old_key = _node(old_root, "wrk")
    seen_by_server, seen_by_client = _handshake(server, ca.client_context(old_root.cert_pem, old_cert, old_key))
    assert seen_by_server == Identity("wrk", "worker", "cluster1")
    assert seen_by_client == (("mgr", "manager", "cluster1"), b"ok")


def test_after_retirement_a_certificate_of_the_old_root_is_refused(old_root: RootCA, new_root: RootCA) -> None:
    leaf, key = _node(new_root, "mgr", "manager")
    server = ca.server_context(leaf, key, new_root.cert_pem)
    old_cert, old_key = _node(old_root, "wrk")
    seen_by_server, seen_by_client = _handshake(server, ca.client_context(new_root.cert_pem, old_cert, old_key))
    assert isinstance(seen_by_server, ssl.SSLCertVerificationError)
    assert seen_by_server.verify_message in ("unable to get local issuer certificate", "certificate signature failure")
    assert isinstance(seen_by_client, ssl.SSLError)
    assert seen_by_client.reason in ("TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_BAD_CERTIFICATE")


def test_switching_server_context_serves_the_latest_certificate_and_roots(old_root: RootCA, new_root: RootCA) -> None:
    """The listener's context stays; each new connection gets the node's current one (renewal)."""
    first_cert, first_key = _node(old_root, "mgr", "manager")
    current: dict[str, ssl.SSLContext | None] = {"ctx": None}
    listener = tls.switching_server_context(
        ca.server_context(first_cert, first_key, old_root.cert_pem), lambda: current["ctx"]
    )
    new_cert, new_key = _node(new_root, "mgr", "manager")
    current["ctx"] = ca.server_context(new_cert, new_key, new_root.cert_pem)
    # a client trusting only the new root now verifies the server, and its new-root cert is accepted
    cert, key = _node(new_root, "wrk")
    seen_by_server, seen_by_client = _handshake(listener, ca.client_context(new_root.cert_pem, cert, key))
    assert seen_by_server == Identity("wrk", "worker", "cluster1")
    assert seen_by_client == (("mgr", "manager", "cluster1"), b"ok")
    # and the old root's certificates are no longer trusted by the switched-to context
    old_cert, old_key = _node(old_root, "wrk2")
    seen_by_server, _ = _handshake(listener, ca.client_context(new_root.cert_pem, old_cert, old_key))
    assert isinstance(seen_by_server, ssl.SSLCertVerificationError)


def test_an_asyncio_server_sends_the_alert_of_a_refused_certificate(old_root: RootCA) -> None:
    """The cluster port is an asyncio server: without `send_handshake_alerts` the client of an
    expired certificate saw only EOF (UNEXPECTED_EOF_WHILE_READING), not the reason."""
    import asyncio

    server_cert, server_key = _node(old_root, "mgr", "manager")
    server_ctx = ca.server_context(server_cert, server_key, old_root.cert_pem)
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    cert, key = _node(old_root, "late", validity=dt.timedelta(minutes=2), now=long_ago)
    client_ctx = ca.client_context(old_root.cert_pem, cert, key)
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2

    def client(port: int) -> str:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            try:
                with client_ctx.wrap_socket(raw) as s:
                    s.recv(1)
            except ssl.SSLError as exc:
                return str(exc.reason)
        return "accepted"

    async def run() -> str:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        try:
            return await asyncio.to_thread(client, port)
        finally:
            server.close()

    tls.send_handshake_alerts()
    assert asyncio.run(run()) == "SSLV3_ALERT_CERTIFICATE_EXPIRED"
