"""Root CA rotation, shaped after SwarmKit's controlapi/ca_rotation.go and ca/reconciler.go.

The CA lives in the store's `meta/ca` object: `cert` and `key` of the root in effect, and during
a rotation `rotation` = {cert, key, cross}: the new root, its key, and the new root cross-signed by
the old one. While it lasts:
- every certificate is issued by the new root and handed out with the cross-signed root behind it,
  so a node that still trusts only the old root verifies it;
- nodes are given both roots to trust (`trust_bundle`) and are asked to renew (the heartbeat's
  `TrustDigest` changes);
- once every node that is not Down holds a certificate of the new root (`pending_nodes` is empty),
  the leader retires the old root (`finish`): the new one is the only root, and the join tokens
  change to its digest. A node that was Down meanwhile rejoins with a new token.

Functions here read nothing but their arguments; the callers commit what they return.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from shoal.errors import InvalidArgument
from shoal.manager import tokens as join_tokens
from shoal.model.tlsinfo import tls_info
from shoal.store.changes import Change

if TYPE_CHECKING:  # `ca` needs cryptography: loaded when a rotation is asked for (workers never are)
    from shoal.manager import ca

Obj = dict[str, Any]
CA_META_ID = "ca"

CERT_WITHOUT_KEY = (
    "CAConfig.SigningCACert: a signing CA certificate without its key needs an external CA, which shoal "
    "does not support; give the key too (--ca-key)"
)
KEY_WITHOUT_CERT = "CAConfig.SigningCAKey: a signing CA key was given without its certificate (--ca-cert)"


def signing_root(meta: Mapping[str, Any]) -> ca.RootCA:
    """The root that issues certificates now: the new one during a rotation."""
    from shoal.manager import ca

    rotation = meta.get("rotation")
    if rotation:
        return ca.RootCA.load(rotation["cert"], rotation["key"])
    return ca.RootCA.load(meta["cert"], meta["key"])


def chain_suffix(meta: Mapping[str, Any]) -> str:
    """What follows a node certificate in the chain it presents: the cross-signed root during a rotation."""
    rotation = meta.get("rotation")
    return str(rotation["cross"]) if rotation else ""


def trust_bundle(meta: Mapping[str, Any]) -> str:
    """The roots every node trusts: the root in effect, and the new one during a rotation."""
    rotation = meta.get("rotation")
    return str(meta["cert"]) + (str(rotation["cert"]) if rotation else "")


def trust_digest(bundle: str | bytes) -> str:
    """A short digest of a trust bundle, compared by nodes to the one the heartbeat names."""
    data = bundle.encode() if isinstance(bundle, str) else bundle
    return hashlib.sha256(data).hexdigest()[:32]


def node_tls_info(bundle: str, issuer_pem: str) -> dict[str, str]:
    """A node's TLSInfo: the roots it trusts and the issuer of its certificate."""
    info = tls_info(issuer_pem)
    info["TrustRoot"] = bundle
    return info


# --- starting a rotation (swarm update) -------------------------------------------------------------


def wanted_rotation(old_ca: Mapping[str, Any], new_ca: dict[str, Any], meta: Mapping[str, Any]) -> ca.RootCA | None:
    """The new root a CAConfig update asks for, or None (SwarmKit validateCAConfig): a signing cert and
    key different from the current root, or a ForceRotate bumped (a generated root). Pops
    SigningCAKey from `new_ca`: the key goes into `meta/ca`, never into the spec that reads return.
    (ExternalCAs never get here: validate_swarm_spec refuses them.)"""
    cert, key = new_ca.get("SigningCACert"), new_ca.pop("SigningCAKey", None)
    if not cert and not key and int(new_ca.get("ForceRotate") or 0) == int(old_ca.get("ForceRotate") or 0):
        return None  # nothing asked for: the common update loads no cryptography
    from shoal.manager import ca

    desired = (meta.get("rotation") or meta)["cert"]
    if cert and not key:
        if not (_same_cert(cert, desired) or _same_cert(cert, old_ca.get("SigningCACert") or "")):
            raise InvalidArgument(CERT_WITHOUT_KEY)
        cert = None  # the spec read back and sent again: no new root given (ForceRotate may still ask)
    if key and not cert:
        raise InvalidArgument(KEY_WITHOUT_CERT)
    if cert and key:
        try:
            root = ca.RootCA.load(cert, key)
        except ca.CertError as exc:
            raise InvalidArgument(f"CAConfig.SigningCACert/SigningCAKey: {exc.message}") from None
        new_ca["SigningCACert"] = root.cert_pem
        if _same_cert(root.cert_pem, desired):
            return None
        return root
    if int(new_ca.get("ForceRotate") or 0) != int(old_ca.get("ForceRotate") or 0):
        new_ca.pop("SigningCACert", None)  # a generated root: an old given one is no longer the signer
        return ca.RootCA.create()
    return None


def _same_cert(a: str | bytes, b: str | bytes) -> bool:
    if not a or not b:
        return False
    try:
        return join_tokens.ca_digest(a) == join_tokens.ca_digest(b)
    except join_tokens.TokenError:
        return False


def start(meta: Mapping[str, Any], new_root: ca.RootCA, now: str) -> Obj:
    """`meta/ca` with a rotation to `new_root` (replacing one in progress, as SwarmKit does)."""
    from shoal.manager import ca

    current = ca.RootCA.load(meta["cert"], meta["key"])
    updated = copy.deepcopy(dict(meta))
    updated["rotation"] = {
        "cert": new_root.cert_pem,
        "key": new_root.key_pem,
        "cross": current.cross_sign(new_root.cert),
    }
    updated["UpdatedAt"] = now
    return updated


# --- finishing it (the leader's reconciler) ---------------------------------------------------------


def pending_nodes(meta: Mapping[str, Any], nodes: Iterable[Mapping[str, Any]]) -> list[str]:
    """IDs of the nodes (not Down) whose certificate is not yet issued by the new root."""
    rotation = meta.get("rotation")
    if not rotation:
        return []
    want = tls_info(rotation["cert"])["CertIssuerPublicKey"]
    return [
        n["ID"]
        for n in nodes
        if (n.get("Status") or {}).get("State") != "down"
        and ((n.get("Description") or {}).get("TLSInfo") or {}).get("CertIssuerPublicKey") != want
    ]


def finish(meta: Mapping[str, Any], cluster: Mapping[str, Any], now: str) -> list[Change]:
    """Retire the old root: the new root alone, TLSInfo and join tokens of its digest."""
    rotation = meta["rotation"]
    new_meta = {k: copy.deepcopy(v) for k, v in meta.items() if k != "rotation"}
    new_meta.update(cert=rotation["cert"], key=rotation["key"], UpdatedAt=now)
    digest = join_tokens.ca_digest(rotation["cert"])
    updated = copy.deepcopy(dict(cluster))
    updated["TLSInfo"] = tls_info(rotation["cert"])  # already so since the start; kept exact here
    updated["RootRotationInProgress"] = False
    updated["JoinTokens"] = {role: join_tokens.make_join_token(digest) for role in ("Worker", "Manager")}
    updated["UpdatedAt"] = now
    return [
        Change(op="update", kind="meta", obj=new_meta, obj_id=CA_META_ID, expected_version=meta["Version"]["Index"]),
        Change(
            op="update", kind="cluster", obj=updated, obj_id=cluster["ID"], expected_version=cluster["Version"]["Index"]
        ),
    ]
