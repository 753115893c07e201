"""`POST /swarm/update` (SwarmKit's controlapi/cluster.go UpdateCluster) over the store.

The version check, the spec's validation (against what is in effect: settings not built yet are
refused only when they differ) and the join-token rotation; returns the change to commit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shoal.errors import Conflict
from shoal.manager import tokens as join_tokens
from shoal.manager.control import ca_rotation
from shoal.model.ids import now_rfc3339
from shoal.model.tlsinfo import tls_info
from shoal.model.validate import validate_swarm_spec
from shoal.store.atrest import keywrap
from shoal.store.changes import Change

Obj = dict[str, Any]
ROLES = ("Worker", "Manager")  # the JoinTokens keys, as `rotate` is asked about them
# the store's `meta` object holding the cluster's unlock key ({"UnlockKey": "SWMKEY-1-..." or ""}):
# SwarmKit's Cluster.UnlockKeys, kept apart from the cluster object so that GET /swarm never shows it
UNLOCK_META_ID = "autolock"


def update(
    cluster: Obj,
    version: int,
    body: Obj,
    ca_digest: Callable[[], str],
    rotate: Callable[[str], bool],
    ca_meta: Mapping[str, Any] | None = None,
    unlock: Obj | None = None,
    rotate_unlock_key: bool = False,
) -> list[Change]:
    """The cluster with its new spec and, for each role for which `rotate(role)` is true, a new join
    token pinned to the root CA's digest. Both are asked only once the version and the spec are
    known to be good: a request wrong in several ways answers with the same first error as ever
    (the version, the spec, then the CA, then the rotation flags the API parses in `rotate`).

    With `ca_meta` (the store's `meta/ca`), a CAConfig asking for a new root (ForceRotate bumped, or
    SigningCACert + SigningCAKey) starts a root rotation; the key goes to `meta/ca`, not the spec."""
    if cluster["Version"]["Index"] != version:
        raise Conflict(
            f"update out of sequence: the swarm is at version {cluster['Version']['Index']}, "
            f"the update was for version {version}"
        )
    updated = dict(cluster)
    updated["Spec"] = validate_swarm_spec(body, cluster["Spec"])
    now = now_rfc3339()
    changes: list[Change] = []
    if ca_meta is not None:
        new_root = ca_rotation.wanted_rotation(
            cluster["Spec"].get("CAConfig") or {}, updated["Spec"]["CAConfig"], ca_meta
        )
        if new_root is not None:
            meta = ca_rotation.start(ca_meta, new_root, now)
            changes.append(
                Change(
                    op="update", kind="meta", obj=meta, obj_id=meta["ID"], expected_version=ca_meta["Version"]["Index"]
                )
            )
            updated["RootRotationInProgress"] = True
            updated["TLSInfo"] = tls_info(new_root.cert_pem)  # the desired root, as `swarm ca` follows it
    updated["Spec"]["CAConfig"].pop("SigningCAKey", None)  # never kept in the spec: reads would return it
    digest = ca_digest()
    tokens = dict(cluster["JoinTokens"])
    for role in ROLES:
        if rotate(role):
            tokens[role] = join_tokens.make_join_token(digest)
    updated["JoinTokens"] = tokens
    updated["UpdatedAt"] = now
    autolock = bool(updated["Spec"]["EncryptionConfig"]["AutoLockManagers"])
    unlock_change = unlock_key_change(unlock, autolock, rotate_unlock_key, now)
    if unlock_change:
        changes.append(unlock_change)
    return [Change(op="update", kind="cluster", obj=updated, obj_id=cluster["ID"], expected_version=version), *changes]


def unlock_key_change(unlock: Obj | None, autolock: bool, rotate: bool, now: str) -> Change | None:
    """The cluster's unlock key after an update, as SwarmKit's UpdateCluster decides it: autolock
    off clears it; on, it is made when missing and replaced when `rotateManagerUnlockKey` is asked
    (a rotation with autolock off changes nothing, as in SwarmKit; the CLI refuses it first)."""
    current = str((unlock or {}).get("UnlockKey") or "")
    if not autolock:
        wanted = ""
    elif rotate or not current:
        wanted = keywrap.format_unlock_key(keywrap.new_unlock_key())
    else:
        wanted = current
    if wanted == current:
        return None
    if unlock is None:  # a swarm made before autolock existed
        obj = {"ID": UNLOCK_META_ID, "Version": {"Index": 0}, "CreatedAt": now, "UpdatedAt": now, "UnlockKey": wanted}
        return Change(op="create", kind="meta", obj=obj)
    obj = {**unlock, "UnlockKey": wanted, "UpdatedAt": now}
    return Change(op="update", kind="meta", obj=obj, obj_id=UNLOCK_META_ID, expected_version=unlock["Version"]["Index"])
