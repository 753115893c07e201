"""shoal.model.objects and .tlsinfo: Docker-shaped Swarm and Node objects."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization

from shoal import __version__
from shoal.manager.ca import RootCA, make_join_token
from shoal.model import (
    SpecError,
    cluster_info,
    default_swarm_spec,
    join_addr,
    manager_status,
    new_cluster,
    new_id,
    new_node,
    now_rfc3339,
    split_addr,
    tls_info,
)

# Top-level fields of the API reference's definitions (swagger v1.56)
SWARM_FIELDS = {
    "ID",
    "Version",
    "CreatedAt",
    "UpdatedAt",
    "Spec",
    "TLSInfo",
    "RootRotationInProgress",
    "DataPathPort",
    "DefaultAddrPool",
    "SubnetSize",
    "JoinTokens",
}
NODE_FIELDS = {"ID", "Version", "CreatedAt", "UpdatedAt", "Spec", "Description", "Status", "ManagerStatus"}


@pytest.fixture(scope="module")
def root() -> RootCA:
    return RootCA.create()


def test_tls_info_matches_docker(root: RootCA) -> None:
    info = tls_info(root.cert_pem)
    assert info["TrustRoot"] == root.cert_pem
    # Standard base64 of the raw DER subject, like Docker (whose CN is a PrintableString, ours UTF8String)
    assert base64.b64decode(info["CertIssuerSubject"]) == root.cert.subject.public_bytes()
    spki = root.cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert base64.b64decode(info["CertIssuerPublicKey"]) == spki
    assert info["CertIssuerPublicKey"].startswith("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE")  # P-256 SPKI, as Docker's
    with pytest.raises(SpecError, match="invalid CA certificate"):
        tls_info("nope")


def test_new_cluster_shape(root: RootCA) -> None:
    now = now_rfc3339()
    tokens = {"Worker": make_join_token(root.digest()), "Manager": make_join_token(root.digest())}
    spec = default_swarm_spec()
    cluster_id = new_id()
    swarm = new_cluster(cluster_id, spec, root.cert_pem, tokens, now)
    assert set(swarm) == SWARM_FIELDS
    assert swarm["ID"] == cluster_id
    assert swarm["Version"] == {"Index": 0}
    assert swarm["CreatedAt"] == swarm["UpdatedAt"] == now
    assert swarm["Spec"] == spec and swarm["Spec"] is not spec
    assert swarm["TLSInfo"] == tls_info(root.cert_pem)
    assert swarm["RootRotationInProgress"] is False
    assert swarm["DataPathPort"] == 4789
    assert swarm["DefaultAddrPool"] == ["10.0.0.0/8"]
    assert swarm["SubnetSize"] == 24
    assert swarm["JoinTokens"] == tokens
    info = cluster_info(swarm)
    assert set(info) == SWARM_FIELDS - {"JoinTokens"}
    info["Spec"]["Name"] = "changed"
    assert swarm["Spec"]["Name"] == "default"


def test_new_cluster_options(root: RootCA) -> None:
    tokens = {"Worker": "w", "Manager": "m"}
    swarm = new_cluster("c", {}, root.cert_pem, tokens, "t", data_path_port=0, default_addr_pool=["10.20.0.0/16"])
    assert swarm["DataPathPort"] == 4789  # 0 means the default, as in Docker
    assert swarm["DefaultAddrPool"] == ["10.20.0.0/16"]
    assert new_cluster("c", {}, root.cert_pem, tokens, "t", data_path_port=7789, subnet_size=26)["SubnetSize"] == 26


def test_new_worker_node() -> None:
    node = new_node(
        "n1",
        "swarm01",
        "worker",
        "10.213.0.11",
        "2026-11-27T23:13:48.123456789Z",
        platform={"Architecture": "x86_64", "OS": "linux"},
        resources={"NanoCPUs": 4_000_000_000, "MemoryBytes": 8 << 30},
        engine_labels={"disk": "ssd"},
    )
    assert set(node) == NODE_FIELDS - {"ManagerStatus"}
    assert node["Spec"] == {"Labels": {}, "Role": "worker", "Availability": "active"}
    assert node["Description"] == {
        "Hostname": "swarm01",
        "Platform": {"Architecture": "x86_64", "OS": "linux"},
        "Resources": {"NanoCPUs": 4_000_000_000, "MemoryBytes": 8 << 30},
        "Engine": {"EngineVersion": __version__, "Labels": {"disk": "ssd"}},
    }
    assert node["Status"] == {"State": "ready", "Addr": "10.213.0.11"}
    assert node["Version"] == {"Index": 0}


def test_new_manager_node(root: RootCA) -> None:
    node = new_node(
        "m1", "swarm00", "manager", "10.213.0.10", "t", tls=tls_info(root.cert_pem), leader=True, labels={"a": "b"}
    )
    assert node["ManagerStatus"] == {"Leader": True, "Reachability": "reachable", "Addr": "10.213.0.10:2377"}
    assert node["Description"]["TLSInfo"]["TrustRoot"] == root.cert_pem
    assert node["Spec"]["Labels"] == {"a": "b"}
    assert node["Description"]["Platform"] == {"Architecture": "", "OS": "linux"}
    assert node["Description"]["Resources"] == {"NanoCPUs": 0, "MemoryBytes": 0}
    other_port = new_node("m2", "h", "manager", "10.213.0.12:3377", "t", state="down", reachability="unreachable")
    assert other_port["Status"] == {"State": "down", "Addr": "10.213.0.12"}
    assert other_port["ManagerStatus"] == {"Leader": False, "Reachability": "unreachable", "Addr": "10.213.0.12:3377"}


@pytest.mark.parametrize(
    "kwargs",
    [{"role": "boss"}, {"state": "sleeping"}, {"availability": "gone"}, {"reachability": "maybe", "role": "manager"}],
)
def test_new_node_rejects_bad_enums(kwargs: dict[str, str]) -> None:
    args = {"role": "worker", **kwargs}
    with pytest.raises(ValueError):
        new_node("n", "h", args.pop("role"), "10.0.0.1", "t", **args)  # type: ignore[arg-type]


def test_manager_status_ipv6() -> None:
    assert manager_status("fd00::1")["Addr"] == "[fd00::1]:2377"
    assert manager_status("[fd00::1]:4000")["Addr"] == "[fd00::1]:4000"
    assert new_node("n", "h", "worker", "[fd00::2]:2377", "t")["Status"]["Addr"] == "fd00::2"


@pytest.mark.parametrize(
    ("addr", "parts"),
    [
        ("10.0.0.1", ("10.0.0.1", None)),
        ("10.0.0.1:2377", ("10.0.0.1", 2377)),
        ("host.example:80", ("host.example", 80)),
        ("fd00::1", ("fd00::1", None)),
        ("[fd00::1]", ("fd00::1", None)),
        ("[fd00::1]:2377", ("fd00::1", 2377)),
    ],
)
def test_split_addr(addr: str, parts: tuple[str, int | None]) -> None:
    assert split_addr(addr) == parts
    if parts[1] is not None:
        assert join_addr(*parts) == addr  # type: ignore[arg-type]


@pytest.mark.parametrize("addr", ["", ":2377", "10.0.0.1:0", "10.0.0.1:99999", "10.0.0.1:x", "[fd00::1", "[::1]x"])
def test_split_addr_rejects(addr: str) -> None:
    with pytest.raises(SpecError, match="invalid address"):
        split_addr(addr)
