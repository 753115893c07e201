"""Helpers to drive shoal agents on the testbed: start, API calls, waiting."""

from __future__ import annotations

import contextlib
import json
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from shoal.cli.client import Client
from shoal.cli.errors import APIError, CLIError
from testbed.bed import Testbed
from testbed.layout import CONTROLLER_NS
from testbed.nsexec import call_in_netns

T = TypeVar("T")
HOSTS = ["swarm00", "swarm01", "swarm02"]


def api(bed: Testbed, host: str, timeout: float = 30.0) -> Client:
    return Client(host=f"unix://{bed.host(host).socket_path}", timeout=timeout)


def curl(bed: Testbed, host: str, port: int = 80, max_time: float = 3.0) -> str:
    """An HTTP GET from the controller namespace to a node's underlay address; "" when nothing
    answered within `max_time` seconds."""
    argv = ["ip", "netns", "exec", CONTROLLER_NS, "curl", "-s", "--max-time", str(max_time)]
    try:
        res = subprocess.run(
            [*argv, f"http://{bed.host(host).address}:{port}/"], capture_output=True, text=True, timeout=max_time + 5
        )
    except subprocess.TimeoutExpired:
        return ""
    return res.stdout.strip()


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 15.0, interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
            last = value
        except (APIError, CLIError, OSError, KeyError, ValueError) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def start_agent(bed: Testbed, host: str, extra: list[str] | None = None) -> None:
    bed.start_agent(host, extra)
    wait_for(f"shoald on {host}", lambda: api(bed, host, 2).get("/_ping") == "OK", timeout=20)


def nodes(bed: Testbed, host: str) -> dict[str, dict[str, Any]]:
    return {n["Description"]["Hostname"]: n for n in api(bed, host).get("/nodes")}


def leader_of(bed: Testbed, host: str) -> str | None:
    for name, node in nodes(bed, host).items():
        if (node.get("ManagerStatus") or {}).get("Leader"):
            return name
    return None


def cli(bed: Testbed, host: str, *args: str, timeout: float = 60, input: str | None = None) -> tuple[int, str, str]:
    res = bed.run(host, ["shoal", *args], timeout=timeout, input=input)
    return res.returncode, res.stdout, res.stderr


def certs(bed: Testbed, host: str) -> Path:
    return bed.host(host).state_dir / "var" / "certificates"


def tls_call(
    address: str,
    path: str,
    *,
    method: str = "GET",
    body: Any = None,
    cert_host_dir: Path | None = None,
    ca_file: Path | None = None,
    timeout: float = 5.0,
) -> tuple[int, Any]:
    """An HTTPS call to a node's cluster port from the controller namespace (never the root one)."""

    def call() -> tuple[int, Any]:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        if ca_file is not None:
            ctx.load_verify_locations(cafile=str(ca_file))
        else:
            ctx.verify_mode = ssl.CERT_NONE
        if cert_host_dir is not None:
            ctx.load_cert_chain(str(cert_host_dir / "swarm-node.crt"), str(cert_host_dir / "swarm-node.key"))
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"https://{address}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    return call_in_netns(CONTROLLER_NS, call, timeout + 5)


def save_logs(bed: Testbed, name: str) -> Path:
    """Keep the agents' logs of a test module under .state/test-logs/ (the hosts' state is wiped)."""
    dest = bed.state_dir.parent / "test-logs" / name
    dest.mkdir(parents=True, exist_ok=True)
    for host in HOSTS:
        log = bed.host(host).agent_log
        if log.exists():
            (dest / f"{host}.log").write_bytes(log.read_bytes())
    return dest


MANAGER = "10.213.0.10:2377"


def form_cluster(
    bed: Testbed, managers: int = 1, agent_args: list[str] | None = None, init: dict[str, Any] | None = None
) -> None:
    """Agents restarted with empty state (and `agent_args`); swarm00 inits (with the `init` request's
    other fields); the others join (as managers up to `managers`)."""
    for host in HOSTS:
        bed.stop_agent(host)
        bed.run(host, ["sh", "-c", "rm -rf /var/lib/shoal/*"])
        start_agent(bed, host, agent_args)
    api(bed, "swarm00").post("/swarm/init", {**(init or {}), "AdvertiseAddr": "eth0"})
    tokens = api(bed, "swarm00").get("/swarm")["JoinTokens"]
    for i, host in enumerate(HOSTS[1:], start=1):
        token = tokens["Manager"] if i < managers else tokens["Worker"]
        api(bed, host).post("/swarm/join", {"JoinToken": token, "RemoteAddrs": [MANAGER]})
    wait_for(
        "every node ready",
        lambda: (
            all(n["Status"]["State"] == "ready" for n in api(bed, "swarm00").get("/nodes"))
            and len(api(bed, "swarm00").get("/nodes")) == len(HOSTS)
        ),
        timeout=30,
    )


def wipe_cluster(bed: Testbed, name: str) -> None:
    """Keep the logs, then every node leaves (which ends its tasks) and forgets everything."""
    save_logs(bed, name)
    for host in HOSTS:
        with contextlib.suppress(APIError, CLIError):
            api(bed, host).post("/swarm/leave", force=True)
        bed.stop_agent(host)
        bed.run(host, ["sh", "-c", "rm -rf /var/lib/shoal/*"])
