"""`shoal swarm ca`: the spec it sends, docker's progress counts, and flags refused without --rotate."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from shoal.cli import swarm_ca
from shoal.cli.errors import CLIError

WANT = {"TrustRoot": "NEW", "CertIssuerSubject": "S", "CertIssuerPublicKey": "K-new"}


def node(trust: str, key: str) -> dict[str, Any]:
    return {"Description": {"TLSInfo": {"TrustRoot": trust, "CertIssuerSubject": "S", "CertIssuerPublicKey": key}}}


def args(**kw: Any) -> argparse.Namespace:
    base = {"rotate": False, "ca_cert": None, "ca_key": None, "cert_expiry": None, "detach": False, "quiet": False}
    return argparse.Namespace(**{**base, **kw})


def test_progress_counts_certificates_and_trust_roots_as_docker() -> None:
    nodes = [node("NEW", "K-new"), node("OLD+NEW", "K-new"), node("OLD", "K-old")]
    assert swarm_ca.rotation_progress({"TLSInfo": WANT}, nodes) == (2, 1, 3)
    lines = swarm_ca.progress_lines({"TLSInfo": WANT}, nodes)
    assert lines[1:] == ["  rotated TLS certificates: 2/3 nodes", "  rotated CA certificates:  1/3 nodes"]
    assert lines[0].startswith("desired root digest: sha256:")


def test_rotate_bumps_force_rotate_and_keeps_the_rest() -> None:
    spec = {"Name": "default", "CAConfig": {"NodeCertExpiry": 1, "ForceRotate": 2}}
    out = swarm_ca.ca_spec(spec, args(rotate=True, cert_expiry=3600 * 10**9))
    assert out["CAConfig"] == {"NodeCertExpiry": 3600 * 10**9, "ForceRotate": 3}
    assert spec["CAConfig"]["ForceRotate"] == 2  # the input is not changed


def test_a_given_root_is_read_from_the_files(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("CERT")
    (tmp_path / "ca.key").write_text("KEY")
    out = swarm_ca.ca_spec({}, args(rotate=True, ca_cert=str(tmp_path / "ca.crt"), ca_key=str(tmp_path / "ca.key")))
    assert out["CAConfig"] == {"SigningCACert": "CERT", "SigningCAKey": "KEY"}
    with pytest.raises(CLIError, match="cannot read the CA key"):
        swarm_ca.ca_spec({}, args(rotate=True, ca_cert=str(tmp_path / "ca.crt"), ca_key=str(tmp_path / "nope")))


def test_flags_without_rotate_are_refused_with_dockers_message() -> None:
    with pytest.raises(CLIError) as exc:
        swarm_ca.cmd_ca(None, args(cert_expiry=3600 * 10**9))  # type: ignore[arg-type]
    assert str(exc.value) == "`--cert-expiry` flag requires the `--rotate` flag to update the CA"
