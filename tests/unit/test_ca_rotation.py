"""manager/control/ca_rotation.py: when a CAConfig update starts a root rotation, what nodes are
handed meanwhile, when the old root is retired, and the swarm update that carries it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shoal.errors import InvalidArgument
from shoal.manager import ca, tokens
from shoal.manager.control import ca_rotation, swarm
from shoal.model.tlsinfo import tls_info
from shoal.model.validate import validate_swarm_spec

OLD = ca.RootCA.create()
NEW = ca.RootCA.create()


def meta(rotation: dict[str, str] | None = None) -> dict[str, Any]:
    m: dict[str, Any] = {"ID": "ca", "Version": {"Index": 4}, "cert": OLD.cert_pem, "key": OLD.key_pem}
    if rotation:
        m["rotation"] = rotation
    return m


def cluster() -> dict[str, Any]:
    digest = OLD.digest()
    return {
        "ID": "c1",
        "Version": {"Index": 9},
        "Spec": validate_swarm_spec({}),
        "TLSInfo": tls_info(OLD.cert_pem),
        "RootRotationInProgress": False,
        "JoinTokens": {"Worker": tokens.make_join_token(digest), "Manager": tokens.make_join_token(digest)},
    }


def node(node_id: str, issuer: ca.RootCA, state: str = "ready") -> dict[str, Any]:
    return {"ID": node_id, "Status": {"State": state}, "Description": {"TLSInfo": tls_info(issuer.cert_pem)}}


# --- what asks for a rotation ---------------------------------------------------------------------


def test_nothing_new_asks_for_nothing() -> None:
    assert ca_rotation.wanted_rotation({"ForceRotate": 1}, {"ForceRotate": 1}, meta()) is None


def test_force_rotate_bumped_generates_a_root() -> None:
    new_ca: dict[str, Any] = {"ForceRotate": 2, "SigningCACert": OLD.cert_pem}
    root = ca_rotation.wanted_rotation({"ForceRotate": 1}, new_ca, meta())
    assert root is not None and root.digest() not in (OLD.digest(), NEW.digest())
    assert "SigningCACert" not in new_ca  # a generated root is not the operator's given one


def test_a_given_root_is_used_and_its_key_leaves_the_spec() -> None:
    new_ca = {"SigningCACert": NEW.cert_pem, "SigningCAKey": NEW.key_pem}
    root = ca_rotation.wanted_rotation({}, new_ca, meta())
    assert root is not None and root.digest() == NEW.digest()
    assert new_ca == {"SigningCACert": NEW.cert_pem}


def test_the_spec_read_back_with_the_given_cert_starts_nothing() -> None:
    # after a rotation to a given root, `swarm update` sends the spec (cert, no key) again
    assert ca_rotation.wanted_rotation({"SigningCACert": NEW.cert_pem}, {"SigningCACert": NEW.cert_pem}, meta()) is None


@pytest.mark.parametrize(
    ("new_ca", "message"),
    [
        ({"SigningCACert": NEW.cert_pem}, "needs an external CA, which shoal does not support"),
        ({"SigningCAKey": NEW.key_pem}, "without its certificate"),
        ({"SigningCACert": NEW.cert_pem, "SigningCAKey": OLD.key_pem}, "do not match"),
        ({"SigningCACert": "not a PEM", "SigningCAKey": NEW.key_pem}, "invalid certificate"),
    ],
)
def test_bad_signing_ca_is_a_400(new_ca: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        ca_rotation.wanted_rotation({}, new_ca, meta())
    assert message in exc.value.message and exc.value.status == 400


# --- during the rotation ----------------------------------------------------------------------------


def test_start_cross_signs_and_issuance_moves_to_the_new_root() -> None:
    started = ca_rotation.start(meta(), NEW, "now")
    assert started["cert"] == OLD.cert_pem  # the root in effect (and the tokens' digest) stay
    assert ca_rotation.signing_root(started).digest() == NEW.digest()
    cross = started["rotation"]["cross"]
    assert ca_rotation.chain_suffix(started) == cross and OLD.signs(ca._load_cert(cross))
    assert ca_rotation.trust_bundle(started) == OLD.cert_pem + NEW.cert_pem
    assert ca_rotation.trust_digest(ca_rotation.trust_bundle(started)) != ca_rotation.trust_digest(OLD.cert_pem)
    assert "rotation" not in meta()  # the input is not changed


def test_pending_nodes_are_those_not_down_without_a_new_root_certificate() -> None:
    started = ca_rotation.start(meta(), NEW, "now")
    nodes = [node("a", NEW), node("b", OLD), node("c", OLD, state="down")]
    assert ca_rotation.pending_nodes(started, nodes) == ["b"]
    assert ca_rotation.pending_nodes(meta(), nodes) == []  # no rotation, nothing pending


def test_finish_retires_the_old_root_and_changes_the_tokens() -> None:
    started = ca_rotation.start(meta(), NEW, "now")
    before = cluster()
    before["RootRotationInProgress"] = True
    new_meta, new_cluster = ca_rotation.finish(started, before, "later")
    assert new_meta.obj["cert"] == NEW.cert_pem and "rotation" not in new_meta.obj
    assert new_meta.expected_version == 4 and new_cluster.expected_version == 9
    c = new_cluster.obj
    assert c["TLSInfo"]["TrustRoot"] == NEW.cert_pem and not c["RootRotationInProgress"]
    for role in ("Worker", "Manager"):
        assert tokens.parse_join_token(c["JoinTokens"][role])[0] == NEW.digest()
        assert c["JoinTokens"][role] != before["JoinTokens"][role]


# --- swarm update ---------------------------------------------------------------------------------


def test_swarm_update_with_force_rotate_starts_a_rotation() -> None:
    current = cluster()
    body = copy.deepcopy(current["Spec"])
    body["CAConfig"]["ForceRotate"] = 1
    changes = swarm.update(current, 9, body, OLD.digest, lambda role: False, meta())
    kinds = [c.kind for c in changes]
    assert kinds == ["cluster", "meta"]
    assert changes[0].obj["RootRotationInProgress"] is True
    assert changes[0].obj["Spec"]["CAConfig"]["ForceRotate"] == 1
    assert changes[1].obj["rotation"]["cert"] != OLD.cert_pem


def test_swarm_update_never_keeps_the_signing_key_in_the_spec() -> None:
    current = cluster()
    body = {"CAConfig": {"SigningCACert": NEW.cert_pem, "SigningCAKey": NEW.key_pem}}
    cluster_change, meta_change = swarm.update(current, 9, body, OLD.digest, lambda role: False, meta())
    assert "SigningCAKey" not in cluster_change.obj["Spec"]["CAConfig"]
    assert "PRIVATE KEY" not in repr(cluster_change.obj)
    assert meta_change.obj["rotation"]["key"] == NEW.key_pem


def test_swarm_update_of_the_expiry_alone_starts_no_rotation() -> None:
    (change,) = swarm.update(cluster(), 9, {"CAConfig": {"NodeCertExpiry": "2h"}}, OLD.digest, lambda r: False, meta())
    assert change.obj["Spec"]["CAConfig"]["NodeCertExpiry"] == 2 * 3600 * 10**9
    assert change.obj["RootRotationInProgress"] is False
