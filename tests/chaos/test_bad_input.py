"""4. Bad input: the OpenAPI description matches the route table; a hypothesis fuzz of the local API
(no 5xx, no hang, the agent still answers, rejected requests change nothing); targeted cases; garbage
on the join endpoint and the TLS port."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from chaos._util import SLEEPER, converged, create_service
from chaos.conftest import Summary, rounds
from integration.cluster_helpers import MANAGER, api, certs, form_cluster, tls_call, wipe_cluster
from testbed import registry
from testbed.bed import Testbed
from testbed.layout import CONTROLLER_NS
from testbed.nsexec import call_in_netns

SPEC = yaml.safe_load((Path(__file__).parent / "openapi.yaml").read_text())
CASES = rounds(500, 5000)
NASTY_NAMES = [
    "../../etc/passwd",
    "..",
    "a/b",
    "a\\b",
    "%2e%2e%2f",
    "wéb-ñ",
    "名前",
    "a" * 300,
    "",
    " ",
    "-lead",
    "a\x00b",
    "a\nb",
    "web;rm -rf x",
    "$(id)",
]


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=1)
    create_service(bed, "fz", replicas=1, template=SLEEPER)
    api(bed, "swarm00").post("/networks/create", {"Name": "fznet", "Driver": "overlay"})
    converged(bed, "fz", 1)
    yield bed
    wipe_cluster(bed, "chaos_bad_input")


def raw(bed: Testbed, method: str, path: str, body: bytes | None = None, timeout: float = 10, **headers: str):
    """One request on swarm00's unix socket: (status, body bytes); status 0 with the error on a failure."""
    conn = http.client.HTTPConnection("localhost", timeout=timeout)
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(timeout)
    try:
        sock.connect(str(bed.host("swarm00").socket_path))
        conn.sock = sock
        hdrs = {"Content-Type": "application/json", **headers}
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (OSError, http.client.HTTPException) as exc:
        return 0, repr(exc).encode()
    finally:
        conn.close()


def state(bed: Testbed) -> dict[str, Any]:
    client = api(bed, "swarm00")
    return {
        "services": {s["ID"]: s["Spec"] for s in client.get("/services")},
        "nodes": {n["ID"]: n["Spec"] for n in client.get("/nodes")},
        "networks": {n["Id"]: (n["Name"], n.get("Driver"), n.get("Labels")) for n in client.get("/networks")},
        "swarm": client.get("/swarm")["Spec"],
    }


def operations() -> list[tuple[str, str, dict]]:
    ops = []
    for path, item in SPEC["paths"].items():
        for method, op in item.items():
            if method == "parameters" or op.get("x-fuzz") == "skip":
                continue
            params = [resolve(p) for p in item.get("parameters", []) + op.get("parameters", [])]
            ops.append((method.upper(), path, {**op, "params": params}))
    return ops


def resolve(node: dict) -> dict:
    ref = node.get("$ref")
    if not ref:
        return node
    out: Any = SPEC
    for part in ref.lstrip("#/").split("/"):
        out = out[part]
    return resolve(out)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
    max_leaves=12,
)


def from_schema(schema: dict, depth: int = 0, key: str = "") -> st.SearchStrategy:
    """Mostly schema-shaped values, sometimes of the wrong type, with unknown fields now and then."""
    schema = resolve(schema)
    wrong = JSON if depth < 3 else st.none()
    kind = schema.get("type")
    if key == "Replicas":  # never ask for a huge number of real tasks
        good: st.SearchStrategy = st.integers(-3, 2)
    elif key == "Image":  # a random name is a docker.io reference: tests pull only from the testbed's registry
        good = st.sampled_from(["shoal/host", "shoal/hello", registry.ref("testbed/nosuch:1"), "", "UPPER/case", "a b"])
    elif key in ("Command", "Args"):  # only harmless commands run as tasks
        good = st.lists(st.sampled_from(["true", "sleep", "1", "-x"]), max_size=3)
    elif "enum" in schema:
        good = st.sampled_from(schema["enum"]) | st.text(max_size=8)
    elif kind == "object":
        props = schema.get("properties", {})
        good = st.fixed_dictionaries(
            {}, optional={k: from_schema(v, depth + 1, k) for k, v in props.items()} | {"Unknown": JSON}
        )
    elif kind == "array":
        good = st.lists(from_schema(schema.get("items", {}), depth + 1), max_size=3)
    elif kind == "integer":
        good = st.integers(-5, 70000) | st.sampled_from([2**31, 2**63, -(2**63), 2**64])
    elif kind == "boolean":
        good = st.booleans()
    elif kind == "string":
        good = st.sampled_from(NASTY_NAMES) | st.text(max_size=30) | st.sampled_from(["shoal/host", "fz", "fznet"])
    else:
        good = JSON
    return st.one_of(good, good, good, wrong)


def query_value(schema: dict) -> st.SearchStrategy:
    kind = resolve(schema).get("type")
    if kind == "integer":
        return st.integers(-3, 10**6).map(str) | st.text(max_size=8)
    if kind == "boolean":
        return st.sampled_from(["1", "0", "true", "false", "", "yes", "2"])
    return st.text(max_size=20) | st.sampled_from(['{"name":["fz"]}', '{"id":"x"}', "[]", "{", '{"a":{"b":1}}'])


@st.composite
def requests(draw, ops: list, refs: list[str]):
    method, path, op = draw(st.sampled_from(ops))
    query = {}
    for p in op["params"]:
        if p["in"] == "path":
            value = draw(st.sampled_from(refs) | st.sampled_from(NASTY_NAMES) | st.text(max_size=20))
            path = path.replace("{" + p["name"] + "}", urllib.parse.quote(value, safe=""))
        elif p["in"] == "query" and p.get("x-fuzz") != "skip" and draw(st.booleans()):
            query[p["name"]] = draw(query_value(p["schema"]))
    if draw(st.integers(0, 9)) == 0:
        query[draw(st.text(min_size=1, max_size=6))] = draw(st.text(max_size=6))
    if query:
        path += "?" + "&".join(
            f"{urllib.parse.quote(k, safe='')}={urllib.parse.quote(v, safe='')}" for k, v in query.items()
        )
    body = None
    if method == "POST":
        schema = ((op.get("requestBody") or {}).get("content") or {}).get("application/json", {}).get("schema")
        pick = draw(st.integers(0, 9))
        if schema and pick < 6:
            body = json.dumps(draw(from_schema(schema))).encode()
        elif pick < 8:
            body = json.dumps(draw(JSON)).encode()
        elif pick < 9:
            body = draw(st.binary(max_size=64))
    if draw(st.integers(0, 19)) == 0:
        path = draw(st.sampled_from(["/v1.47", "/v1.24", "/v9.99", "/v1.x"])) + path
    return method, path, body, set(op.get("responses", {}))


def test_openapi_describes_exactly_the_routes() -> None:
    from shoal.api.local import build_app

    app = build_app(None)  # type: ignore[arg-type]  (only the route table is read)
    served = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.method != "*" and not r.resource.canonical.startswith("/v{")
    }
    described = {(m.upper(), p) for p, item in SPEC["paths"].items() for m in item if m != "parameters"}
    assert served == described


def test_fuzz_local_api(cluster: Testbed, summary: Summary) -> None:
    bed = cluster
    ops = operations()
    svc = api(bed, "swarm00").get("/services/fz")
    refs = [svc["ID"], "fz", "fznet", "swarm01", "nosuch", svc["ID"][:6]]
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    accepted: list[str] = []
    snapshot = [state(bed)]

    @settings(
        max_examples=CASES,
        deadline=None,
        database=None,
        derandomize=False,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(requests(ops, refs))
    def one(req: tuple[str, str, bytes | None, set[str]]) -> None:
        method, path, body, documented = req
        status, answer = raw(bed, method, path, body)
        statuses[status if status >= 500 or not status else status // 100 * 100] += 1
        if status == 0 or (status >= 500 and str(status) not in documented):  # e.g. Docker's 503 "already in a swarm"
            failures.append(f"{method} {path} body={body[:200] if body else None!r} -> {status} {answer[:300]!r}")
            return
        after = state(bed)
        if status >= 400 and after != snapshot[0]:
            failures.append(f"rejected {method} {path} ({status}) changed state")
        if status < 400 and method != "GET" and method != "HEAD":
            accepted.append(f"{method} {path} body={body[:150] if body else None!r} -> {status}")
        snapshot[0] = after

    started = time.monotonic()
    one()
    took = time.monotonic() - started
    assert raw(bed, "GET", "/_ping") == (200, b"OK")
    print(f"fuzz: {sum(statuses.values())} cases in {took:.0f} s, statuses {dict(statuses)}")
    print(f"fuzz: accepted writes: {accepted[:20]}")
    for f in failures[:30]:
        print(f"fuzz failure: {f}")
    summary.add(
        "fuzz local API",
        sum(statuses.values()),
        len(failures),
        f"{took:.0f} s; status classes {dict(sorted(statuses.items()))}; {len(accepted)} accepted writes",
    )
    assert not failures, failures[:10]


def test_targeted_bad_input(cluster: Testbed, summary: Summary) -> None:
    bed = cluster
    before = state(bed)
    failures: list[str] = []

    def expect_4xx(what: str, method: str, path: str, body: Any, raw_body: bytes | None = None) -> None:
        data = raw_body if raw_body is not None else json.dumps(body).encode()
        status, answer = raw(bed, method, path, data)
        if not 400 <= status < 500:
            failures.append(f"{what}: {method} {path} -> {status} {answer[:200]!r}")

    # oversize bodies (the local API limit is 1 MiB)
    big = b'{"Name": "' + b"x" * (2 << 20) + b'"}'
    expect_4xx("oversize body", "POST", "/services/create", None, big)
    expect_4xx("oversize body", "POST", "/networks/create", None, big)
    # wrong types
    template = {"ContainerSpec": {"Image": "shoal/host", "Command": ["true"]}}
    for bad in (
        {"Name": 5, "TaskTemplate": template},
        {"Name": "wt", "TaskTemplate": "x"},
        {"Name": "wt", "TaskTemplate": template, "Mode": {"Replicated": {"Replicas": "3"}}},
        {"Name": "wt", "TaskTemplate": template, "Mode": {"Replicated": {"Replicas": -1}}},
        {"Name": "wt", "TaskTemplate": template, "Labels": {"a": 1}},
        {"Name": "wt", "TaskTemplate": {"ContainerSpec": {"Image": "shoal/host", "Command": "true"}}},
        {"Name": "wt", "TaskTemplate": template, "EndpointSpec": {"Ports": [{"TargetPort": 70000}]}},
    ):
        expect_4xx(f"wrong type {bad}", "POST", "/services/create", bad)
    expect_4xx("wrong type", "POST", "/networks/create", {"Name": ["x"], "Driver": "overlay"})
    expect_4xx(
        "bad subnet",
        "POST",
        "/networks/create",
        {"Name": "bn", "Driver": "overlay", "IPAM": {"Config": [{"Subnet": "300.1.2.0/24"}]}},
    )
    # names: unicode, traversal, control characters, too long
    for name in ("../../etc/passwd", "a/b", "..", "wéb-ñ", "名前", "a\x00b", "a\nb", "a" * 300, "-lead"):
        expect_4xx(f"service name {name!r}", "POST", "/services/create", {"Name": name, "TaskTemplate": template})
        expect_4xx(f"network name {name!r}", "POST", "/networks/create", {"Name": name, "Driver": "overlay"})
        expect_4xx(f"image name {name!r}", "POST", "/shoal/images/import", {"Name": name, "Source": "/nonexistent"})
    # traversal in path parameters
    for ref in ("..%2F..%2Fetc%2Fpasswd", "%2e%2e", "..", "%00"):
        for method, path in (("GET", "/services/"), ("DELETE", "/networks/"), ("POST", "/shoal/local/tasks/")):
            full = path + ref + ("/kill" if "local" in path else "")
            status, answer = raw(bed, method, full)
            if status >= 500 or status == 0 or status < 400:
                failures.append(f"traversal: {method} {full} -> {status} {answer[:200]!r}")
    # unknown fields: accepted or refused, never a 5xx; an accepted one must keep only known fields
    status, answer = raw(
        bed,
        "POST",
        "/services/create",
        json.dumps(
            {"Name": "unk", "TaskTemplate": template, "Mode": {"Replicated": {"Replicas": 0}}, "Bogus": {"x": 1}}
        ).encode(),
    )
    if status >= 500 or status == 0:
        failures.append(f"unknown field -> {status} {answer[:200]!r}")
    elif status < 300:
        api(bed, "swarm00").delete("/services/unk")
    # malformed JSON, wrong content type, empty bodies
    expect_4xx("malformed JSON", "POST", "/services/create", None, b"{not json")
    expect_4xx("JSON array", "POST", "/services/create", None, b"[1,2]")
    expect_4xx("empty body", "POST", "/services/create", None, b"")
    expect_4xx("invalid UTF-8", "POST", "/services/create", None, b'{"Name": "\xff\xfe"}')
    after = state(bed)
    if after != before:
        failures.append("state changed by refused targeted requests")
    assert raw(bed, "GET", "/_ping") == (200, b"OK")
    for f in failures:
        print(f"bad input failure: {f}")
    summary.add("targeted bad input", "~60", len(failures), "oversize, wrong types, names, traversal, unknown fields")
    assert not failures, failures


def test_garbage_on_join_endpoint_and_tls_port(cluster: Testbed, summary: Summary) -> None:
    bed = cluster
    ca_file = certs(bed, "swarm00") / "swarm-root-ca.crt"
    token = api(bed, "swarm00").get("/swarm")["JoinTokens"]["Worker"]
    nodes_before = {n["ID"] for n in api(bed, "swarm00").get("/nodes")}
    failures: list[str] = []
    bodies: list[Any] = [
        {"Token": token, "CSR": "garbage", "Hostname": "evil", "AdvertiseIP": "10.213.0.99"},
        {
            "Token": token,
            "CSR": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            "Hostname": "evil",
            "AdvertiseIP": "10.213.0.99",
        },
        {"Token": token, "CSR": "x" * (100 << 10), "Hostname": "evil", "AdvertiseIP": "10.213.0.99"},
        {"Token": token, "CSR": 5, "Hostname": ["x"], "AdvertiseIP": None},
        {"Token": token, "CSR": "", "Hostname": "../../etc", "AdvertiseIP": "not-an-ip", "ClusterPort": 99999},
        "just a string",
        [1, 2, 3],
    ]
    for body in bodies:
        status, answer = tls_call(MANAGER, "/shoal/join", method="POST", body=body, ca_file=ca_file)
        if not 400 <= status < 500:
            failures.append(f"join with {str(body)[:80]} -> {status} {answer}")

    def raw_tls_garbage() -> list[str]:
        out = []
        host, port = MANAGER.split(":")
        for payload in (b"\x16\x03\x01\x00\x05garbage", b"GET / HTTP/1.0\r\n\r\n", bytes(range(256)) * 8):
            with socket.create_connection((host, int(port)), timeout=3) as s:
                s.sendall(payload)
                with contextlib.suppress(OSError):
                    s.recv(1024)
        # a TLS client that sends a broken HTTP request after the handshake
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection((host, int(port)), timeout=3) as s, ctx.wrap_socket(s) as t:
            t.sendall(b"POST /shoal/join HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n{")
            t.settimeout(3)
            try:
                out.append(t.recv(200).decode(errors="replace").splitlines()[0])
            except (OSError, IndexError):
                out.append("no answer")
        return out

    answers = call_in_netns(CONTROLLER_NS, raw_tls_garbage, 30)
    status, body = tls_call(MANAGER, "/shoal/ca")
    if status != 200:
        failures.append(f"cluster port after garbage: /shoal/ca -> {status}")
    if {n["ID"] for n in api(bed, "swarm00").get("/nodes")} != nodes_before:
        failures.append("a garbage join added a node")
    for f in failures:
        print(f"join failure: {f}")
    summary.add("join endpoint garbage", len(bodies) + 4, len(failures), f"oversize request answer: {answers}")
    assert not failures, failures
