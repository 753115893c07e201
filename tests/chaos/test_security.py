"""5. Security at the cluster port (2377) and overlay isolation."""

from __future__ import annotations

import contextlib
import datetime
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chaos._util import HELLO, SLEEPER, converged
from chaos.conftest import Summary
from integration.cluster_helpers import (
    HOSTS,
    MANAGER,
    api,
    certs,
    cli,
    curl,
    form_cluster,
    tls_call,
    wait_for,
    wipe_cluster,
)
from shoal.manager.ca import RootCA
from testbed.bed import Testbed
from testbed.layout import CONTROLLER_NS
from testbed.nsexec import call_in_netns


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=1)
    yield bed
    wipe_cluster(bed, "chaos_security")


def refused(address: str, path: str, *, status: int, message: str, **kw: Any) -> tuple[bool, str]:
    """Whether a handler refused the call with HTTP `status` and a message containing `message`.
    An exception (connection refused, a timeout, a reset, a failed handshake) is not that refusal:
    a dead port must not pass for a secure one. Handshake refusals: handshake_refused()."""
    try:
        got, body = tls_call(address, path, **kw)
    except OSError as exc:  # ssl.SSLError and urllib's URLError are OSErrors
        return False, f"no HTTP answer: {type(exc).__name__} {exc}"
    text = body.get("message", "") if isinstance(body, dict) else str(body)
    return got == status and message in text, f"{got} {text}"


def handshake_refused(address: str, cert_dir: Path, ca_file: Path, *, alert: str) -> tuple[bool, str]:
    """Whether the server ends the TLS handshake with the TLS alert `alert` (OpenSSL's reason, e.g.
    TLSV1_ALERT_UNKNOWN_CA) because of the client certificate in `cert_dir`.

    TLS 1.2 is pinned so that the server judges the client certificate inside the handshake (in
    TLS 1.3 the client's handshake is over before the server has looked). The server flushes its
    alert before it closes (`tls.send_handshake_alerts`), so an EOF in the middle of the handshake,
    a reset or a timeout is not a refusal; and the very same handshake without that certificate
    must complete, which rules out a dead port."""
    host, port = address.rsplit(":", 1)

    def handshake(with_cert: bool) -> str:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_verify_locations(cafile=str(ca_file))
        if with_cert:
            ctx.load_cert_chain(str(cert_dir / "swarm-node.crt"), str(cert_dir / "swarm-node.key"))
        try:
            with socket.create_connection((host, int(port)), timeout=5) as raw, ctx.wrap_socket(raw):
                return "completed"
        except ssl.SSLError as exc:
            return exc.reason or type(exc).__name__
        except OSError as exc:
            return type(exc).__name__

    without = call_in_netns(CONTROLLER_NS, lambda: handshake(False), 15)
    with_cert = call_in_netns(CONTROLLER_NS, lambda: handshake(True), 15)
    return without == "completed" and with_cert == alert, f"without it: {without}; with it: {with_cert}"


def write_cert(directory: Path, cert: bytes | str, key: bytes) -> Path:
    (directory / "swarm-node.crt").write_text(cert if isinstance(cert, str) else cert.decode())
    (directory / "swarm-node.key").write_bytes(key)
    return directory


def self_signed(node_id: str) -> tuple[bytes, bytes]:
    """A certificate naming the real manager's node ID and role, signed by its own key (no CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, node_id),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "swarm-manager"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def csr_pem() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intruder")]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return csr.public_bytes(serialization.Encoding.PEM), key_pem


def test_cluster_port_refusals(cluster: Testbed, summary: Summary, tmp_path_factory: pytest.TempPathFactory) -> None:
    bed = cluster
    ca_file = certs(bed, "swarm00") / "swarm-root-ca.crt"
    failures: list[str] = []
    checks = 0

    def expect(what: str, ok: bool, detail: str) -> None:
        nonlocal checks
        checks += 1
        if not ok:
            failures.append(f"{what}: {detail}")

    swarm = api(bed, "swarm00").get("/swarm")
    token = swarm["JoinTokens"]["Worker"]
    join = {"CSR": csr_pem()[0].decode(), "Hostname": "intruder", "AdvertiseIP": "10.213.0.99"}
    # wrong token (right CA digest, wrong secret) and a garbage token
    parts = token.split("-")
    wrong = "-".join([*parts[:3], ("0" if parts[3][0] != "0" else "1") + parts[3][1:]])
    bad_token = "A valid join token is necessary"
    for what, tok, status, message in (
        ("wrong token", wrong, 403, bad_token),
        ("garbage token", "SWMTKN-1-nope-nope", 403, bad_token),
        ("empty token", "", 400, "missing or invalid field Token"),
    ):
        ok, detail = refused(
            MANAGER,
            "/shoal/join",
            status=status,
            message=message,
            method="POST",
            body={**join, "Token": tok},
            ca_file=ca_file,
        )
        expect(what, ok, detail)
    # rotated token stops working at once
    api(bed, "swarm00").post("/swarm/update", swarm["Spec"], version=swarm["Version"]["Index"], rotateWorkerToken=True)
    ok, detail = refused(
        MANAGER,
        "/shoal/join",
        status=403,
        message=bad_token,
        method="POST",
        body={**join, "Token": token},
        ca_file=ca_file,
    )
    expect("rotated token", ok, detail)
    # no client certificate
    for path, method in (("/nodes", "GET"), ("/shoal/heartbeat", "POST"), ("/shoal/assignments", "POST")):
        ok, detail = refused(
            MANAGER,
            path,
            status=403,
            message="client certificate",
            method=method,
            body={} if method == "POST" else None,
            ca_file=ca_file,
        )
        expect(f"no client cert {path}", ok, detail)
    # a worker certificate on manager-only endpoints
    worker = certs(bed, "swarm01")
    ok, detail = refused(
        MANAGER,
        "/shoal/raft/join",
        status=403,
        message="manager",
        method="POST",
        ca_file=ca_file,
        cert_host_dir=worker,
        body={"RaftAddr": "10.213.0.11:2378", "Addr": "10.213.0.11:2377"},
    )
    expect("worker cert raft join", ok, detail)
    # a certificate from another cluster's CA (same node ID and role as the real manager)
    other = RootCA.create()
    manager_id = next(n["ID"] for n in api(bed, "swarm00").get("/nodes") if n["Description"]["Hostname"] == "swarm00")
    csr, key = csr_pem()
    foreign_dir: Path = tmp_path_factory.mktemp("foreign")
    write_cert(foreign_dir, other.issue(csr, manager_id, "manager", swarm["ID"], ips=["10.213.0.99"]), key)
    # OpenSSL's verify error "unable to get local issuer certificate" is sent as unknown_ca
    ok, detail = handshake_refused(MANAGER, foreign_dir, ca_file, alert="TLSV1_ALERT_UNKNOWN_CA")
    expect("foreign CA cert", ok, detail)
    # a self-signed certificate naming the manager ("self signed certificate": unknown_ca too)
    self_dir = write_cert(tmp_path_factory.mktemp("selfsigned"), *self_signed(manager_id))
    ok, detail = handshake_refused(MANAGER, self_dir, ca_file, alert="TLSV1_ALERT_UNKNOWN_CA")
    expect("self-signed cert", ok, detail)
    # a removed node's certificate (swarm02 leaves and is removed; its saved certificate is refused)
    saved = tmp_path_factory.mktemp("removed")
    removed_id = next(n["ID"] for n in api(bed, "swarm00").get("/nodes") if n["Description"]["Hostname"] == "swarm02")
    for p in certs(bed, "swarm02").iterdir():
        (saved / p.name).write_bytes(p.read_bytes())
    rc, _, err = cli(bed, "swarm02", "swarm", "leave")
    assert rc == 0, err
    wait_for(
        "swarm02 down",
        lambda: any(
            n["Description"]["Hostname"] == "swarm02" and n["Status"]["State"] == "down"
            for n in api(bed, "swarm00").get("/nodes")
        ),
        timeout=15,
    )
    rc, _, err = cli(bed, "swarm00", "node", "rm", "swarm02")
    assert rc == 0, err
    removed = f"node {removed_id} has been removed from the swarm or is unknown"
    for path, method in (("/nodes", "GET"), ("/shoal/heartbeat", "POST"), ("/shoal/assignments", "POST")):
        # the certificate still chains to the CA (the handshake completes): the handler refuses it
        ok, detail = refused(
            MANAGER,
            path,
            status=403,
            message=removed,
            method=method,
            body={} if method == "POST" else None,
            ca_file=saved / "swarm-root-ca.crt",
            cert_host_dir=saved,
        )
        expect(f"removed node cert {path}", ok, detail)
    # the legitimate manager certificate still works (the refusals are not a broken port)
    status, _ = tls_call(MANAGER, "/nodes", ca_file=ca_file, cert_host_dir=certs(bed, "swarm00"))
    expect("manager cert works", status == 200, str(status))
    for f in failures:
        print(f"security failure: {f}")
    summary.add(
        "security at 2377",
        checks,
        len(failures),
        "tokens, no cert, worker cert, foreign CA, self-signed CA, removed node",
    )
    # put swarm02 back for the isolation test
    new_token = api(bed, "swarm00").get("/swarm")["JoinTokens"]["Worker"]
    rc, _, err = cli(bed, "swarm02", "swarm", "join", "--token", new_token, MANAGER)
    assert rc == 0, err
    assert not failures, failures


def in_task(bed: Testbed, service: str, argv: list[str]) -> tuple[int, str]:
    task = converged(bed, service, 1)[0]
    host = {n["ID"]: n["Description"]["Hostname"] for n in api(bed, "swarm00").get("/nodes")}[task["NodeID"]]
    rc, out, err = cli(bed, host, "exec", task["ID"][:12], *argv, timeout=20)
    return rc, out + err


def task_ip(bed: Testbed, service: str, network: str) -> str:
    net_id = api(bed, "swarm00").get(f"/networks/{network}")["Id"]
    task = converged(bed, service, 1)[0]
    att = next(a for a in task["NetworksAttachments"] if a["Network"]["ID"] == net_id)
    return att["Addresses"][0].split("/")[0]


def test_overlay_isolation_and_unpublished_ports(cluster: Testbed, summary: Summary) -> None:
    bed = cluster
    wait_for(
        "3 ready nodes",
        lambda: sum(n["Status"]["State"] == "ready" for n in api(bed, "swarm00").get("/nodes")) == 3,
        timeout=30,
    )
    for name, subnet in (("neta", "172.31.10.0/24"), ("netb", "172.31.11.0/24")):
        api(bed, "swarm00").post(
            "/networks/create", {"Name": name, "Driver": "overlay", "IPAM": {"Config": [{"Subnet": subnet}]}}
        )
    specs = {
        "ia": ({**SLEEPER, "Networks": [{"Target": "neta"}]}, "swarm01"),
        "ia2": ({**HELLO, "Networks": [{"Target": "neta"}]}, "swarm02"),
        "ib": ({**HELLO, "Networks": [{"Target": "netb"}]}, "swarm02"),
    }
    for name, (template, host) in specs.items():
        template = {**template, "Placement": {"Constraints": [f"node.hostname=={host}"]}}
        api(bed, "swarm00").post(
            "/services/create", {"Name": name, "TaskTemplate": template, "Mode": {"Replicated": {"Replicas": 1}}}
        )
    for name in specs:
        converged(bed, name, 1)
    a2, b = task_ip(bed, "ia2", "neta"), task_ip(bed, "ib", "netb")
    failures: list[str] = []
    curl_argv = ["curl", "-s", "--max-time", "2", "-o", "/dev/null", "-w", "%{http_code}"]
    same = wait_for(
        "same-network reachability",
        lambda: (r := in_task(bed, "ia", [*curl_argv, f"http://{a2}:8080/"]))[1].endswith("200") and r,
        timeout=20,
    )
    del same
    rc, out = in_task(bed, "ia", [*curl_argv, f"http://{b}:8080/"])
    if out.strip().endswith("200"):
        failures.append(f"task on neta reached {b}:8080 on netb: {out!r}")
    rc, out = in_task(bed, "ia", ["ping", "-c", "1", "-W", "1", b])
    if rc == 0:
        failures.append(f"task on neta pinged {b} on netb")
    # an unpublished port (ia2 listens on 8080, publishes nothing) is unreachable from shoal-ctl
    for host in HOSTS:
        answer = curl(bed, host, 8080, max_time=2)
        if answer:
            failures.append(f"unpublished 8080 answered through {host}: {answer[:60]!r}")
    for f in failures:
        print(f"isolation failure: {f}")
    summary.add("overlay isolation", 2 + len(HOSTS), len(failures), "neta -/-> netb (curl, ping); unpublished port")
    with contextlib.suppress(Exception):
        for name in specs:
            api(bed, "swarm00").delete(f"/services/{name}")
    assert not failures, failures
