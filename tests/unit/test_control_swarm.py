"""`POST /swarm/update` as a control call: version check, the spec as validated, token rotation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shoal.api import local
from shoal.api.errors import error_middleware
from shoal.api.keys import AGENT
from shoal.errors import Conflict, SpecError
from shoal.manager.control import swarm
from shoal.manager.tokens import parse_join_token
from shoal.model.validate import validate_swarm_spec

DIGEST = "1" * 50
OTHER = "2" * 50
TOKENS = {"Worker": f"SWMTKN-1-{OTHER}-{'w' * 25}", "Manager": f"SWMTKN-1-{OTHER}-{'m' * 25}"}


def cluster() -> dict[str, Any]:
    return {
        "ID": "c1",
        "Version": {"Index": 9},
        "Spec": validate_swarm_spec({}),
        "JoinTokens": dict(TOKENS),
        "UpdatedAt": "2026-01-01T00:00:00Z",
    }


def never(*_: Any) -> Any:
    raise AssertionError("the CA and the rotation flags are read only for a valid request")


def no_rotation(role: str) -> bool:
    return False


def test_update_sets_the_spec_and_keeps_the_tokens_with_a_version_precondition() -> None:
    current = cluster()
    (change,) = swarm.update(current, 9, {"Labels": {"a": "b"}}, lambda: DIGEST, no_rotation)
    assert (change.op, change.kind, change.obj_id, change.expected_version) == ("update", "cluster", "c1", 9)
    assert change.obj["Spec"]["Labels"] == {"a": "b"}
    assert change.obj["JoinTokens"] == TOKENS
    assert change.obj["UpdatedAt"] != current["UpdatedAt"]
    assert current["Spec"]["Labels"] == {}  # the stored object is left alone


def test_rotation_renews_only_the_tokens_asked_for_pinned_to_the_ca() -> None:
    (change,) = swarm.update(cluster(), 9, {}, lambda: DIGEST, {"Worker": True, "Manager": False}.__getitem__)
    tokens = change.obj["JoinTokens"]
    assert tokens["Manager"] == TOKENS["Manager"]
    assert tokens["Worker"] != TOKENS["Worker"] and parse_join_token(tokens["Worker"])[0] == DIGEST
    (both,) = swarm.update(cluster(), 9, {}, lambda: DIGEST, lambda role: True)
    assert all(parse_join_token(t)[0] == DIGEST for t in both.obj["JoinTokens"].values())


def test_an_old_version_or_a_bad_spec_is_refused_before_the_ca_is_read() -> None:
    with pytest.raises(Conflict) as conflict:
        swarm.update(cluster(), 8, {}, never, never)
    assert conflict.value.status == 409
    assert conflict.value.message == "update out of sequence: the swarm is at version 9, the update was for version 8"
    with pytest.raises(SpecError) as bad:
        swarm.update(cluster(), 9, {"Raft": {"SnapshotInterval": 5}}, never, never)
    assert bad.value.status == 400


class FakeCA:
    def digest(self) -> str:
        return DIGEST


class FakeManager:
    def __init__(self) -> None:
        self.committed: list[Any] = []
        self.store = self

    def cluster(self) -> dict[str, Any]:
        return cluster()

    def root_ca(self) -> FakeCA:
        return FakeCA()

    def ca_meta(self) -> dict[str, Any]:
        return {"ID": "ca", "Version": {"Index": 3}, "cert": "", "key": ""}

    def unlock_meta(self) -> None:
        return None

    async def acommit(self, changes: list[Any]) -> int:
        self.committed.extend(changes)
        return 1


def test_the_handler_passes_the_query_and_commits_what_the_call_returns() -> None:
    manager = FakeManager()

    async def run() -> list[tuple[int, Any]]:
        app = web.Application(middlewares=[error_middleware])
        app[AGENT] = type("A", (), {"require_manager": lambda self: manager})()  # type: ignore[assignment]
        app.router.add_post("/swarm/update", local.swarm_update)
        async with TestClient(TestServer(app)) as client:
            out = []
            for query in (
                "version=9&rotateManagerToken=true",
                "version=3",
                "rotateWorkerToken=1",
                "version=3&rotateWorkerToken=maybe",  # the stale version is the answer, as it always was
                "version=9&rotateWorkerToken=maybe",
            ):
                resp = await client.post(f"/swarm/update?{query}", json={})
                out.append((resp.status, await resp.json() if resp.status >= 400 else None))
            return out

    rotated, stale, unversioned, stale_and_bad_flag, bad_flag = asyncio.run(run())
    assert rotated == (200, None)
    (change,) = manager.committed
    assert change.obj["JoinTokens"]["Worker"] == TOKENS["Worker"]
    assert parse_join_token(change.obj["JoinTokens"]["Manager"])[0] == DIGEST
    assert stale[0] == 409 and "the update was for version 3" in stale[1]["message"]
    assert unversioned == (400, {"message": "missing query parameter version"})
    assert stale_and_bad_flag[0] == 409
    assert bad_flag == (400, {"message": "invalid rotateWorkerToken 'maybe': expected true or false"})


# --- the cluster's unlock key (autolock) ------------------------------------------------------------


def unlock_meta(key: str) -> dict[str, Any]:
    return {"ID": swarm.UNLOCK_META_ID, "Version": {"Index": 4}, "UnlockKey": key}


def autolock(on: bool) -> dict[str, Any]:
    return {"EncryptionConfig": {"AutoLockManagers": on}}


def test_turning_autolock_on_makes_an_unlock_key_and_off_clears_it() -> None:
    from shoal.store.atrest import keywrap

    _, made = swarm.update(cluster(), 9, autolock(True), lambda: DIGEST, no_rotation, unlock=unlock_meta(""))
    assert (made.op, made.kind, made.obj_id, made.expected_version) == ("update", "meta", "autolock", 4)
    assert keywrap.parse_unlock_key(made.obj["UnlockKey"])
    on = cluster()
    on["Spec"] = validate_swarm_spec(autolock(True))
    # autolock stays on: the key stays (no change); off: the key goes
    assert len(swarm.update(on, 9, {}, lambda: DIGEST, no_rotation, unlock=unlock_meta("SWMKEY-1-x"))) == 1
    _, cleared = swarm.update(on, 9, autolock(False), lambda: DIGEST, no_rotation, unlock=unlock_meta("SWMKEY-1-x"))
    assert cleared.obj["UnlockKey"] == ""
    # a swarm from before autolock has no meta object yet: it is created
    _, created = swarm.update(cluster(), 9, autolock(True), lambda: DIGEST, no_rotation, unlock=None)
    assert created.op == "create" and created.obj["ID"] == "autolock"


def test_rotating_the_unlock_key_replaces_it_only_with_autolock_on() -> None:
    current = keywrap_key = "SWMKEY-1-" + "A" * 43
    on = cluster()
    on["Spec"] = validate_swarm_spec(autolock(True))
    _, rotated = swarm.update(
        on, 9, {}, lambda: DIGEST, no_rotation, unlock=unlock_meta(current), rotate_unlock_key=True
    )
    assert rotated.obj["UnlockKey"].startswith("SWMKEY-1-") and rotated.obj["UnlockKey"] != keywrap_key
    # SwarmKit ignores the rotation flag with autolock off (the CLI refuses it before asking)
    assert (
        len(swarm.update(cluster(), 9, {}, lambda: DIGEST, no_rotation, unlock=unlock_meta(""), rotate_unlock_key=True))
        == 1
    )
