"""Node certificates on disk, TLS contexts for port 2377 and who the peer is: the standard library
only, because every node needs these and workers never sign anything.

Issuing and parsing certificates (the root CA, CSRs) lives in `shoal.manager.ca`, which needs the
`cryptography` package; loading it costs each agent ~8 MB, so workers load it only when they
join or renew. `ca` re-exports everything here.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from shoal.errors import InvalidArgument
from shoal.files import write_atomic

CA_ROLE = "swarm-ca"  # extra DNS SAN of managers: they are the ones that issue certificates
ROLE_OU = {"manager": "swarm-manager", "worker": "swarm-worker"}
OU_ROLE = {ou: role for role, ou in ROLE_OU.items()}

CERT_DIR = Path("/var/lib/shoal/certificates")
CA_CERT_FILE = "swarm-root-ca.crt"
NODE_CERT_FILE = "swarm-node.crt"
NODE_KEY_FILE = "swarm-node.key"


class CertError(InvalidArgument):
    """A certificate or key that is unusable (unparsable, wrong issuer, expired, no identity): a
    400 when a caller sent it (a CSR, a client certificate the handler does not map itself)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class Identity(NamedTuple):
    """Who a certificate says its holder is."""

    node_id: str
    role: str  # "manager" | "worker"
    cluster_id: str


def as_bytes(data: str | bytes) -> bytes:
    return data.encode() if isinstance(data, str) else data


def identity_from_names(node_id: str, ou: str, cluster_id: str, dns: list[str]) -> Identity:
    """The checks every node certificate passes: the role both as OU and as a DNS SAN, as the CA
    issues it, and the node ID as a DNS SAN too."""
    role = OU_ROLE.get(ou)
    if role is None:
        raise CertError(f"the certificate's role {ou!r} is neither swarm-manager nor swarm-worker")
    if ou not in dns or node_id not in dns:
        raise CertError(f"the certificate's alternative names do not include {ou} and its node ID")
    return Identity(node_id, role, cluster_id)


# --- TLS ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _pem_paths(*blobs: str | bytes) -> Iterator[list[str]]:
    """Paths the `ssl` module can open for in-memory PEM data (it only loads chains from files).

    memfd keeps the private key off every file system; elsewhere a private temporary directory.
    """
    fds: list[int] = []
    try:
        if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
            for blob in blobs:
                fd = os.memfd_create("shoal-pem", os.MFD_CLOEXEC)
                fds.append(fd)
                _write_all(fd, as_bytes(blob))
            yield [f"/proc/self/fd/{fd}" for fd in fds]
            return
        with tempfile.TemporaryDirectory(prefix="shoal-pem-") as tmp:
            paths = []
            for i, blob in enumerate(blobs):
                path = os.path.join(tmp, f"{i}.pem")
                # a throwaway file in a private directory: nothing to keep across a power cut
                write_atomic(path, blob, 0o600, durable=False)
                paths.append(path)
            yield paths
    finally:
        for fd in fds:
            os.close(fd)


def _load_chain(ctx: ssl.SSLContext, cert_pem: str | bytes, key_pem: str | bytes) -> None:
    with _pem_paths(cert_pem, key_pem) as (cert_path, key_path):
        try:
            ctx.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as e:
            if "KEY_VALUES_MISMATCH" in str(e):  # OpenSSL's words for it
                raise CertError("the certificate and the private key do not match") from None
            raise CertError(f"invalid certificate or private key: {e.reason or e}") from None


def _load_ca(ctx: ssl.SSLContext, ca_pem: str | bytes) -> None:
    try:
        ctx.load_verify_locations(cadata=as_bytes(ca_pem).decode())
    except (ssl.SSLError, ValueError, UnicodeDecodeError) as e:
        raise CertError(f"invalid CA certificate: {e}") from None


def _base_context(protocol: int) -> ssl.SSLContext:
    ctx = ssl.SSLContext(protocol)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def server_context(cert_pem: str | bytes, key_pem: str | bytes, ca_pem: str | bytes) -> ssl.SSLContext:
    """TLS for port 2377. A client certificate is optional because the CA-fetch and join
    endpoints serve nodes that have none yet; handlers read `peer_identity()` and refuse what
    the role does not allow. A client certificate that is presented but not issued by
    `ca_pem` (or expired) fails the handshake: it never reaches a handler as "anonymous".
    """
    ctx = _base_context(ssl.PROTOCOL_TLS_SERVER)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    _load_ca(ctx, ca_pem)
    _load_chain(ctx, cert_pem, key_pem)
    return ctx


def switching_server_context(first: ssl.SSLContext, current: Callable[[], ssl.SSLContext | None]) -> ssl.SSLContext:
    """A server context for a listener that outlives certificate renewals: each new connection is
    handed, at its ClientHello, to the context `current()` returns (the node's latest certificate
    and trust roots), so a renewal or a root rotation takes effect without closing the listener or
    the connections already open (sessions, long polls). `first` answers when `current()` is None.
    """

    def pick(conn: ssl.SSLObject | ssl.SSLSocket, _name: str | None, _ctx: ssl.SSLContext) -> None:
        latest = current()
        if latest is not None and conn.context is not latest:
            conn.context = latest  # SSL_set_SSL_CTX: certificate and verify store of `latest`

    first.sni_callback = pick  # called for every ClientHello, with or without a server name
    return first


# The failed handshake's exception is kept by the accepting coroutine's waiter future, and its
# traceback holds that coroutine's frame, which holds the waiter: a reference cycle through the
# connection's SSL objects (a 256 KiB read buffer each). Only a full collection frees a cycle that
# reaches objects old enough to be in the oldest generation, and on a large manager those are
# minutes apart (gcpauses.py): 15,000 handshakes that 1,000 reconnecting nodes gave up on held
# 3.8 GB on each manager until the OOM killer came (docs/scale.md). Dropping the traceback once the
# accept has finished with it breaks the cycle, and reference counting frees the rest at once.
FORGET_AFTER = 1.0
_FAILURE_HOOK: list[Callable[[str], None]] = []


def _forget_traceback(waiter: Any) -> None:
    exc = waiter.exception() if waiter.done() and not waiter.cancelled() else None
    while exc is not None:
        exc.__traceback__ = None
        exc = exc.__context__


# asyncio reads each TLS connection's bytes into a buffer of its own, 256 KiB by default
# (SSLProtocol.max_size), allocated whole for every connection: a manager of 1,000 nodes keeps
# thousands open (sessions, long polls, reports), and a simulated fleet of 100 nodes hundreds.
# A TLS record is at most 16 KiB; 64 KiB reads four at a time.
READ_BUFFER = 64 << 10


def lean_read_buffers() -> None:
    """Every TLS connection of this process made after this reads through READ_BUFFER bytes."""
    from asyncio import sslproto

    sslproto.SSLProtocol.max_size = READ_BUFFER


def send_handshake_alerts(on_failure: Callable[[str], None] | None = None) -> None:
    """Make asyncio send the TLS alert of a failed server handshake before it closes the connection.

    asyncio's SSLProtocol (3.11) drops what OpenSSL wrote for the peer when `do_handshake` fails, so
    a node presenting an expired, revoked or foreign certificate saw only an EOF, not the
    `certificate_expired` / `unknown_ca` alert that says why. Flushing the pending record first is
    all that is missing. And a failed handshake leaves no reference cycle (FORGET_AFTER); idempotent.
    `on_failure(error class name)` counts the failures (the latest one given is called)."""
    from asyncio import sslproto

    if on_failure is not None:
        _FAILURE_HOOK[:] = [on_failure]
    original = sslproto.SSLProtocol._on_handshake_complete
    if getattr(original, "sends_alert", False):
        return

    def on_handshake_complete(self: Any, handshake_exc: BaseException | None) -> None:
        if handshake_exc is not None:
            with contextlib.suppress(Exception):  # best effort: the connection is being closed anyway
                alert = self._outgoing.read()
                if alert:
                    self._transport.write(alert)
        if handshake_exc is not None:
            for hook in _FAILURE_HOOK:
                with contextlib.suppress(Exception):
                    hook(handshake_exc.__name__ if isinstance(handshake_exc, type) else type(handshake_exc).__name__)
        waiter = self._waiter  # the accepting coroutine's; original() sets its exception
        original(self, handshake_exc)
        if handshake_exc is not None and waiter is not None:
            self._loop.call_later(FORGET_AFTER, _forget_traceback, waiter)

    on_handshake_complete.sends_alert = True  # type: ignore[attr-defined]
    on_handshake_complete.wrapped = original  # type: ignore[attr-defined]
    sslproto.SSLProtocol._on_handshake_complete = on_handshake_complete  # type: ignore[method-assign]


def client_context(
    ca_pem: str | bytes, cert_pem: str | bytes | None = None, key_pem: str | bytes | None = None
) -> ssl.SSLContext:
    """TLS to a manager, verified against the cluster CA. Host names are not checked: managers
    are dialled by IP and the CA issues only node certificates; check the role with
    `peer_identity()` (a manager must present `swarm-manager`)."""
    if (cert_pem is None) != (key_pem is None):
        raise ValueError("give both the node certificate and its key, or neither")
    ctx = _base_context(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    _load_ca(ctx, ca_pem)
    if cert_pem is not None and key_pem is not None:
        _load_chain(ctx, cert_pem, key_pem)
    return ctx


def bootstrap_client_context() -> ssl.SSLContext:
    """Unverified TLS for one thing only: fetching the root CA certificate before joining.

    The fetched CA must pass `verify_ca_digest(ca_pem, token)`; then connect again with
    `client_context(ca_pem)` to send the token and CSR. Never send the token over this one.
    """
    ctx = _base_context(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _single(rdns: Any, key: str, label: str) -> str:
    values = [value for rdn in rdns or () for name, value in rdn if name == key]
    if len(values) != 1 or not values[0]:
        raise CertError(f"the certificate has no single {label} in its subject")
    return str(values[0])


def peer_identity(conn: ssl.SSLObject | ssl.SSLSocket) -> Identity | None:
    """The verified identity of the other end of a TLS connection; None if it sent no certificate
    or one that was not verified (only `bootstrap_client_context` lets such a one through).

    With our server context a certificate only reaches here if it chains to the cluster CA; `ssl`
    decodes a certificate only once it is verified. With aiohttp:
    `peer_identity(request.transport.get_extra_info("ssl_object"))`.
    """
    info = conn.getpeercert()
    if not info:
        return None
    subject = info.get("subject")
    return identity_from_names(
        _single(subject, "commonName", "common name (node ID)"),
        _single(subject, "organizationalUnitName", "organizational unit (role)"),
        _single(subject, "organizationName", "organization (cluster ID)"),
        [value for kind, value in info.get("subjectAltName", ()) if kind == "DNS"],
    )


# --- renewal ----------------------------------------------------------------------------------

RENEW_LOWER = 0.5  # SwarmKit's CertLowerRotationRange: renew no earlier than half way through the life
RENEW_UPPER = 0.8  # CertUpperRotationRange: and no later than at 80 % of it


def renewal_delay(not_before: float, not_after: float, now: float, rng: random.Random | None = None) -> float:
    """Seconds from `now` until a certificate valid [not_before, not_after] (epoch seconds) should be
    renewed: a random point between 50 % and 80 % of its life (SwarmKit calculateRandomExpiry), so
    nodes that got certificates together do not all renew at once; 0 when that point has passed."""
    life = max(0.0, not_after - not_before)
    lower, upper = life * RENEW_LOWER, life * RENEW_UPPER
    point = lower + (upper - lower) * (rng or random).random()
    return max(0.0, not_before + point - now)


_VALIDITY = (
    "import json, sys; from shoal.manager.ca import cert_validity as f; "
    "b, a = f(sys.stdin.read()); print(json.dumps([b.timestamp(), a.timestamp()]))"
)


def cert_times(cert_pem: str | bytes) -> tuple[float, float]:
    """(not before, not after) of a certificate in epoch seconds, read as `new_key_and_csr` makes
    keys: in a short-lived child unless `cryptography` is already loaded here."""
    loaded = sys.modules.get("shoal.manager.ca")
    if loaded is not None:
        before, after = loaded.cert_validity(cert_pem)
        return before.timestamp(), after.timestamp()
    out = _child(_VALIDITY, as_bytes(cert_pem).decode(), "could not read the node's certificate")
    before, after = json.loads(out)
    return float(before), float(after)


def _child(code: str, stdin: str, what: str) -> str:
    path = os.pathsep.join(p for p in (PACKAGE_PARENT, os.environ.get("PYTHONPATH")) if p)
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
            env={**os.environ, "PYTHONPATH": path},
        )
    except (OSError, subprocess.SubprocessError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        raise CertError(f"{what}: {detail.strip()[-300:]}") from None
    return done.stdout


# --- keys -------------------------------------------------------------------------------------

PACKAGE_PARENT = str(Path(__file__).resolve().parents[1])
_KEYGEN = "import json; from shoal.manager.ca import new_node_key_and_csr as f; print(json.dumps(f()))"


def new_key_and_csr() -> tuple[str, str]:
    """A node key and CSR (`ca.new_node_key_and_csr`). Made in a short-lived child unless this
    process already has `cryptography` loaded: a worker then never carries it. Blocking (~0.2 s)."""
    loaded = sys.modules.get("shoal.manager.ca")
    if loaded is not None:
        key_pem, csr_pem = loaded.new_node_key_and_csr()
        return key_pem, csr_pem
    path = os.pathsep.join(p for p in (PACKAGE_PARENT, os.environ.get("PYTHONPATH")) if p)
    try:
        done = subprocess.run(
            [sys.executable, "-c", _KEYGEN],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
            env={**os.environ, "PYTHONPATH": path},
        )
        key_pem, csr_pem = json.loads(done.stdout)
    except (OSError, ValueError, subprocess.SubprocessError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        raise CertError(f"could not make the node's key: {detail.strip()[-300:]}") from None
    return str(key_pem), str(csr_pem)


# --- files --------------------------------------------------------------------------------------


class NodeCertificates(NamedTuple):
    ca_pem: str
    cert_pem: str
    key_pem: str


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_node_files(
    directory: str | os.PathLike[str], ca_pem: str | bytes, cert_pem: str | bytes, key_pem: str | bytes
) -> None:
    """Write `swarm-root-ca.crt` and `swarm-node.crt` (0644) and `swarm-node.key` (0600).

    The directory is created 0700. The certificate goes last, so a certificate on disk always
    has its CA beside it; a crash between key and certificate is caught by `read_node_files`.
    """
    d = Path(directory)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(d / CA_CERT_FILE, ca_pem, 0o644)
    write_atomic(d / NODE_KEY_FILE, key_pem, 0o600)
    write_atomic(d / NODE_CERT_FILE, cert_pem, 0o644)


def read_node_files(directory: str | os.PathLike[str]) -> NodeCertificates | None:
    """The node's CA, certificate and key; None if the node has none (never joined or left).
    `CertError` if some are missing or the key does not belong to the certificate."""
    d = Path(directory)
    names = (CA_CERT_FILE, NODE_CERT_FILE, NODE_KEY_FILE)
    present = [(d / n).exists() for n in names]
    if not any(present):
        return None
    if not all(present):
        missing = ", ".join(n for n, p in zip(names, present, strict=True) if not p)
        raise CertError(f"incomplete node certificates in {d}: missing {missing}")
    ca_pem, cert_pem, key_pem = ((d / n).read_text() for n in names)
    check = _base_context(ssl.PROTOCOL_TLS_CLIENT)  # loading them checks the CA and the pair
    _load_ca(check, ca_pem)
    _load_chain(check, cert_pem, key_pem)
    return NodeCertificates(ca_pem, cert_pem, key_pem)
