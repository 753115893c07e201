"""Node certificates on the testbed (issue 15 items 2 and 3): short expiry with renewal, refusal of an
expired or removed node's certificate at 2377, and a root CA rotation under HTTP load.

The agents run with the test-only `--cert-expiry-scale 1/30`, so the API's minimum expiry (1 h,
Docker's) gives 2-minute certificates.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.cluster_helpers import (
    HOSTS,
    MANAGER,
    api,
    certs,
    cli,
    save_logs,
    start_agent,
    tls_call,
    wait_for,
    wipe_cluster,
)
from shoal import tls
from shoal.cli.errors import APIError, CLIError
from shoal.manager import ca
from testbed.bed import Testbed
from testbed.layout import CONTROLLER_NS
from testbed.nsexec import call_in_netns

SCALE = ["--cert-expiry-scale", str(1 / 30)]  # NodeCertExpiry 1h -> certificates of 2 minutes
ONE_HOUR_NS = 3600 * 10**9
HELLO = {"ContainerSpec": {"Image": "shoal/hello"}, "RestartPolicy": {"Condition": "any", "Delay": 0}}


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    """swarm00 manager (init with NodeCertExpiry 1h), swarm01 and swarm02 workers, a published service."""
    for host in HOSTS:
        bed.stop_agent(host)
        bed.run(host, ["sh", "-c", "rm -rf /var/lib/shoal/*"])
        start_agent(bed, host, SCALE)
    api(bed, "swarm00").post("/swarm/init", {"AdvertiseAddr": "eth0", "Spec": {"CAConfig": {"NodeCertExpiry": "1h"}}})
    for host in HOSTS[1:]:
        _join(bed, host)
    wait_for("every node ready", lambda: _all_ready(bed), timeout=40)
    api(bed, "swarm00").post(
        "/services/create",
        {
            "Name": "web",
            "TaskTemplate": HELLO,
            "Mode": {"Replicated": {"Replicas": 2}},
            "EndpointSpec": {"Ports": [{"TargetPort": 8080, "PublishedPort": 80}]},
        },
    )
    wait_for("web running", lambda: len(_running(bed)) == 2, timeout=40)
    wait_for("web answers through the mesh", lambda: _get(bed, "swarm01").startswith("Hello World!"), timeout=30)
    yield bed
    wipe_cluster(bed, "test_certs")


def _join(bed: Testbed, host: str) -> None:
    token = api(bed, "swarm00").get("/swarm")["JoinTokens"]["Worker"]
    api(bed, host).post("/swarm/join", {"JoinToken": token, "RemoteAddrs": [MANAGER]})


def _nodes(bed: Testbed) -> dict[str, dict[str, Any]]:
    return {n["Description"]["Hostname"]: n for n in api(bed, "swarm00").get("/nodes")}


def _all_ready(bed: Testbed) -> bool:
    nodes = _nodes(bed)
    return len(nodes) == len(HOSTS) and all(n["Status"]["State"] == "ready" for n in nodes.values())


def _running(bed: Testbed) -> list[str]:
    tasks = api(bed, "swarm00").get("/tasks", filters={"service": ["web"]})
    return sorted(t["ID"] for t in tasks if t["DesiredState"] == "running" and t["Status"]["State"] == "running")


def _get(bed: Testbed, host: str) -> str:
    url = f"http://{bed.host(host).address}:80/"
    argv = ["ip", "netns", "exec", CONTROLLER_NS, "curl", "-s", "--max-time", "3", url]
    with contextlib.suppress(subprocess.TimeoutExpired):
        return subprocess.run(argv, capture_output=True, text=True, timeout=8).stdout.strip()
    return ""


def _cert_file(bed: Testbed, host: str) -> bytes:
    return (certs(bed, host) / "swarm-node.crt").read_bytes()


def _not_after(pem: bytes) -> float:
    return ca.cert_validity(pem)[1].timestamp()


class Watch:
    """Samples every node's state every 2 s in a thread; records any state other than ready."""

    def __init__(self, bed: Testbed) -> None:
        self.bed = bed
        self.bad: list[tuple[str, str]] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(2.0):
            with contextlib.suppress(APIError, CLIError, OSError):
                for name, node in _nodes(self.bed).items():
                    if node["Status"]["State"] != "ready":
                        self.bad.append((name, node["Status"]["State"]))
                self.samples += 1

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def test_short_certificates_renew_in_time_and_an_expired_one_is_refused(cluster: Testbed, tmp_path: Path) -> None:
    tasks_before = _running(cluster)
    first = {host: _cert_file(cluster, host) for host in HOSTS}
    life = {host: _not_after(pem) - ca.cert_validity(pem)[0].timestamp() for host, pem in first.items()}
    assert all(abs(v - (3600 + 120)) < 5 for v in life.values()), life  # 2 min + the 1-hour backdate
    kept = _snapshot(certs(cluster, "swarm02"), tmp_path / "old")
    deadline = max(_not_after(pem) for pem in first.values()) + 20
    with Watch(cluster) as watch:
        while time.time() < deadline:  # past every first certificate's expiry (bounded: ~140 s)
            time.sleep(2)
    assert watch.samples > 20 and watch.bad == [], watch.bad  # no node ever left ready
    for host in HOSTS:
        now = _cert_file(cluster, host)
        assert now != first[host], f"{host} did not renew"
        assert _not_after(now) > time.time(), f"{host} holds an expired certificate"
    assert _running(cluster) == tasks_before  # the tasks kept running: no restart, no reschedule
    # the expired certificate, kept from before, is refused in the handshake with its alert
    assert _handshake_alert(kept) == "SSLV3_ALERT_CERTIFICATE_EXPIRED"
    renewed = _snapshot(certs(cluster, "swarm02"), tmp_path / "renewed")
    assert _handshake_alert(renewed) is None  # the renewed one is accepted


def _snapshot(cert_dir: Path, copy: Path) -> Path:
    """A copy of a node's certificate files whose key matches its certificate. The agent renews
    the 2-minute certificates about every minute and writes the key, then the certificate, each by
    an atomic rename; a copy taken between the two renames is taken again."""
    for _ in range(20):
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(cert_dir, copy)
        with contextlib.suppress(tls.CertError):
            tls.read_node_files(copy)
            return copy
        time.sleep(0.1)
    raise AssertionError(f"{cert_dir}: key and certificate never matched in 20 copies")


def _handshake_alert(cert_dir: Path) -> str | None:
    """A TLS 1.2 handshake with 2377 from the controller namespace presenting the certificate in
    `cert_dir` (TLS 1.2: the server's alert arrives within the handshake); the alert's reason, or None."""

    def shake() -> str | None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_verify_locations(cafile=str(cert_dir / "swarm-root-ca.crt"))
        ctx.load_cert_chain(str(cert_dir / "swarm-node.crt"), str(cert_dir / "swarm-node.key"))
        host, port = MANAGER.split(":")
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            try:
                with ctx.wrap_socket(raw) as conn:
                    conn.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                    conn.recv(1)
            except ssl.SSLError as exc:
                return str(exc.reason)
        return None

    return call_in_netns(CONTROLLER_NS, shake, 15)


def test_a_removed_node_certificate_is_refused(cluster: Testbed, tmp_path: Path) -> None:
    kept = _snapshot(certs(cluster, "swarm02"), tmp_path / "removed")
    node_id = _nodes(cluster)["swarm02"]["ID"]
    status, _ = tls_call(MANAGER, "/nodes", ca_file=kept / "swarm-root-ca.crt", cert_host_dir=kept)
    assert status == 200  # the same certificate works while the node is a member
    rc, _, err = cli(cluster, "swarm00", "node", "rm", "--force", "swarm02")
    assert rc == 0, err
    try:
        status, body = tls_call(MANAGER, "/nodes", ca_file=kept / "swarm-root-ca.crt", cert_host_dir=kept)
        assert status == 403
        assert body["message"] == f"node {node_id} has been removed from the swarm or is unknown"
    finally:  # swarm02 back as a fresh worker: the other tests find three ready nodes
        with contextlib.suppress(APIError, CLIError):
            api(cluster, "swarm02").post("/swarm/leave", force=True)
        _join(cluster, "swarm02")
        wait_for("swarm02 back", lambda: _all_ready(cluster), timeout=40)


def _load(bed: Testbed, stop: threading.Event, results: list[str]) -> None:
    """HTTP through the mesh from the controller namespace, round robin over the nodes; bounded."""
    end = time.monotonic() + 400
    while not stop.is_set() and time.monotonic() < end and len(results) < 5000:
        host = HOSTS[len(results) % len(HOSTS)]
        results.append(_get(bed, host))
        time.sleep(0.05)


def test_root_rotation_under_load_converts_every_node_and_retires_the_old_token(cluster: Testbed) -> None:
    before = api(cluster, "swarm00").get("/swarm")
    old_token = before["JoinTokens"]["Worker"]
    tasks_before = _running(cluster)
    for host in HOSTS:  # the mesh answers on every node before the load starts (swarm02 may have just rejoined)
        wait_for(f"web through {host}", lambda h=host: _get(cluster, h).startswith("Hello World!"), timeout=30)
    results: list[str] = []
    stop = threading.Event()
    load = threading.Thread(target=_load, args=(cluster, stop, results), daemon=True)
    load.start()
    try:
        time.sleep(2)
        with Watch(cluster) as watch:
            rc, out, err = cli(cluster, "swarm00", "swarm", "ca", "--rotate", timeout=300)
        time.sleep(2)
    finally:
        stop.set()
        load.join(30)
    save_logs(cluster, "test_certs_rotation")
    assert rc == 0, err
    assert f"rotated TLS certificates: {len(HOSTS)}/{len(HOSTS)} nodes" in out
    assert f"rotated CA certificates:  {len(HOSTS)}/{len(HOSTS)} nodes" in out
    failed = [r for r in results if not r.startswith("Hello World!")]
    assert len(results) > 20 and failed == [], f"{len(failed)} of {len(results)} requests failed"
    assert watch.bad == []
    after = api(cluster, "swarm00").get("/swarm")
    assert after["RootRotationInProgress"] is False
    new_root = after["TLSInfo"]["TrustRoot"]
    assert new_root != before["TLSInfo"]["TrustRoot"] and out.strip().endswith(new_root.strip())
    for host, node in _nodes(cluster).items():  # every node holds a certificate of the new root and trusts only it
        assert node["Description"]["TLSInfo"]["CertIssuerPublicKey"] == after["TLSInfo"]["CertIssuerPublicKey"], host
        assert (certs(cluster, host) / "swarm-root-ca.crt").read_text() == new_root, host
    assert _running(cluster) == tasks_before
    # the old token is refused with docker's message; the new one lets the node back in
    assert after["JoinTokens"]["Worker"] != old_token
    old_id = _nodes(cluster)["swarm02"]["ID"]
    rc, _, err = cli(cluster, "swarm02", "swarm", "leave")
    assert rc == 0, err
    rc, _, err = cli(cluster, "swarm00", "node", "rm", "--force", old_id)
    assert rc == 0, err
    rc, _, err = cli(cluster, "swarm02", "swarm", "join", "--token", old_token, MANAGER)
    assert rc != 0
    assert "error while validating Root CA Certificate: remote CA does not match fingerprint. Expected: " in err
    rc, _, err = cli(cluster, "swarm02", "swarm", "join", "--token", after["JoinTokens"]["Worker"], MANAGER)
    assert rc == 0, err
    wait_for("swarm02 back", lambda: _all_ready(cluster), timeout=40)
