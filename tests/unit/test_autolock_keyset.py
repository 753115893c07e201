"""Autolock's key set (issue 15 item 1): the TLS key, the Raft data key and the Raft password in
node.json switch from one unlock key to another as one, even when the agent dies half way; a
certificate renewal racing an unlock-key rotation ends wrapped under the new key."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from shoal.agent import credentials
from shoal.agent.autolock import seal_password
from shoal.agent.node import Agent
from shoal.config import Config
from shoal.identity import Identity, node_file
from shoal.manager import ca
from shoal.store.atrest import keyset, keywrap
from shoal.store.atrest.keyfile import DataKeyFile

PASSWORD = "raft-password-" + "7" * 40


class Crash(Exception):
    """The agent dies here."""


def make_manager(data_dir: Path, kek: bytes | None) -> tuple[bytes, bytes]:
    """A manager's files as an autolocked swarm writes them; (TLS key PEM, data key secret)."""
    root = ca.RootCA.create()
    key_pem, csr_pem = ca.new_node_key_and_csr()
    cert_pem = root.issue(csr_pem, "n" * 25, "manager", "c" * 25, ips=["127.0.0.1"])
    credentials.save(data_dir, root.cert_pem, cert_pem, key_pem, kek=kek)
    dek = DataKeyFile(data_dir / "keys" / "raft.dek", kek=kek).create()
    ident = Identity("n" * 25, "c" * 25, "manager", "127.0.0.1", raft_password=PASSWORD)
    ident.raft_password_wrapped = seal_password(PASSWORD, kek)
    ident.save(data_dir)
    return credentials.as_bytes(key_pem), dek.secret


def opens_with(data_dir: Path, kek: bytes) -> set[str]:
    """Which of the three files `kek` opens (each is wrapped: a file in clear opens with none)."""
    opened = set()
    try:
        credentials.load(data_dir, kek)
        opened.add("tls key")
    except keywrap.KeyWrapError:
        pass
    try:
        DataKeyFile(data_dir / "keys" / "raft.dek", kek=kek).load()
        opened.add("data key")
    except keywrap.KeyWrapError:
        pass
    wrapped = json.loads(node_file(data_dir).read_bytes())["raft_password_wrapped"]
    try:
        if keywrap.unwrap(kek, keywrap.PURPOSE_RAFT_PASSWORD, wrapped).decode() == PASSWORD:
            opened.add("password")
    except keywrap.KeyWrapError:
        pass
    return opened


def agent_for(data_dir: Path) -> Agent:
    return Agent(Config(data_dir=data_dir, run_dir=data_dir / "run", task_driver="sim"))


ALL = {"tls key", "data key", "password"}


def test_node_json_never_holds_the_wrapped_password_in_clear(tmp_path: Path) -> None:
    kek = keywrap.new_unlock_key()
    make_manager(tmp_path, kek)
    raw = node_file(tmp_path).read_bytes()
    assert PASSWORD.encode() not in raw and json.loads(raw)["raft_password"] == ""
    agent = agent_for(tmp_path)
    assert agent.locked and agent.identity is not None and agent.identity.raft_password == ""
    assert agent._check_kek(kek) == PASSWORD
    with pytest.raises(keywrap.WrongUnlockKey):
        agent._check_kek(keywrap.new_unlock_key())


def test_rewrap_moves_all_three_files_and_autolock_off_puts_them_in_clear(tmp_path: Path) -> None:
    old, new = keywrap.new_unlock_key(), keywrap.new_unlock_key()
    tls_key, secret = make_manager(tmp_path, old)
    agent = agent_for(tmp_path)
    agent.kek = old
    assert agent.identity is not None
    agent.identity.raft_password = agent._check_kek(old) or ""
    agent._on_unlock_key(new)
    assert opens_with(tmp_path, new) == ALL and opens_with(tmp_path, old) == set()
    assert PASSWORD.encode() not in node_file(tmp_path).read_bytes()
    agent.identity.raft_members = ["127.0.0.1:2378"]
    agent.identity.save(tmp_path)  # any later save keeps the wrapped form
    assert opens_with(tmp_path, new) == ALL
    agent._on_unlock_key(None)
    doc = json.loads(node_file(tmp_path).read_bytes())
    assert doc["raft_password"] == PASSWORD and doc["raft_password_wrapped"] is None
    assert credentials.load(tmp_path, None).key_pem == tls_key
    assert DataKeyFile(tmp_path / "keys" / "raft.dek").load().secret == secret
    assert not agent_for(tmp_path).locked
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["raft.dek"]  # no record, no .next


def test_turning_autolock_on_leaves_no_second_name_of_the_data_key_in_clear(tmp_path: Path) -> None:
    """A create that died between its link and its unlink left `raft.dek.tmp`, the key file's
    second name; the re-wrap renames a new file over `raft.dek`, and must not leave the old one,
    the key in clear, readable under the other name."""
    _, secret = make_manager(tmp_path, None)
    dek = tmp_path / "keys" / "raft.dek"
    os.link(dek, dek.with_name("raft.dek.tmp"))
    agent = agent_for(tmp_path)
    assert not agent.locked and agent.kek is None
    new = keywrap.new_unlock_key()
    agent._on_unlock_key(new)
    assert opens_with(tmp_path, new) == ALL
    assert sorted(p.name for p in dek.parent.iterdir()) == ["raft.dek"]
    clear = base64.b64encode(secret)
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and clear in p.read_bytes()]


def crash_points(tmp_path: Path) -> list[str]:
    """Every point `replace_all` can stop at, as a run without a crash passes them."""
    seen: list[str] = []
    d = tmp_path / "probe"
    d.mkdir()
    make_manager(d, keywrap.new_unlock_key())
    files = {p: b"x" for p in (credentials.key_path(d), d / "keys" / "raft.dek", node_file(d))}
    keyset.replace_all(d / "keys", files, step=seen.append)
    return seen


def test_crash_points_cover_every_write_and_rename(tmp_path: Path) -> None:
    points = crash_points(tmp_path)
    assert points == [
        "wrote swarm-node.key.next",
        "wrote raft.dek.next",
        "wrote node.json.next",
        "wrote the record",
        "committed",
        "renamed swarm-node.key",
        "renamed raft.dek",
        "renamed node.json",
    ]


@pytest.mark.parametrize("point", range(8))
def test_a_crash_at_any_point_of_a_rewrap_leaves_every_key_under_one_unlock_key(tmp_path: Path, point: int) -> None:
    stop_at = crash_points(tmp_path)[point]
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    old, new = keywrap.new_unlock_key(), keywrap.new_unlock_key()
    tls_key, secret = make_manager(data_dir, old)
    agent = agent_for(data_dir)
    agent.kek = old
    assert agent.identity is not None
    agent.identity.raft_password = agent._check_kek(old) or ""

    def step(name: str) -> None:
        if name == stop_at:
            raise Crash(name)

    real = keyset.replace_all
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(keyset, "replace_all", lambda d, files, **kw: real(d, files, **kw, step=step))
        with pytest.raises(Crash):
            agent._on_unlock_key(new)
    # an error rather than a crash: the agent's memory follows the files (a renewal saves under it)
    assert agent.kek == (new if point >= 4 else old), stop_at
    # the agent starts again: the half-done switch is finished (after the commit) or undone (before)
    restarted = agent_for(data_dir)
    committed = point >= 4
    kek = new if committed else old
    assert opens_with(data_dir, kek) == ALL, stop_at
    assert opens_with(data_dir, old if committed else new) == set(), stop_at
    assert restarted.locked and restarted._check_kek(kek) == PASSWORD
    assert credentials.load(data_dir, kek).key_pem == tls_key
    assert DataKeyFile(data_dir / "keys" / "raft.dek", kek=kek).load().secret == secret
    leftovers = [p.name for p in data_dir.rglob("*") if p.name.endswith((".next", ".commit", ".tmp"))]
    assert leftovers == [], leftovers


def test_a_crash_while_turning_autolock_off_leaves_no_key_in_clear_beside_the_wrapped_ones(tmp_path: Path) -> None:
    old = keywrap.new_unlock_key()
    tls_key, _ = make_manager(tmp_path, old)
    agent = agent_for(tmp_path)
    agent.kek = old
    assert agent.identity is not None
    agent.identity.raft_password = agent._check_kek(old) or ""

    def step(name: str) -> None:
        if name == "wrote node.json.next":
            raise Crash(name)

    real = keyset.replace_all
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(keyset, "replace_all", lambda d, files, **kw: real(d, files, **kw, step=step))
        with pytest.raises(Crash):
            agent._on_unlock_key(None)
    assert (credentials.key_path(tmp_path).with_name("swarm-node.key.next")).read_bytes() == tls_key  # in clear
    agent_for(tmp_path)  # the restart undoes it
    assert not credentials.key_path(tmp_path).with_name("swarm-node.key.next").exists()
    assert opens_with(tmp_path, old) == ALL


def test_a_renewal_racing_an_unlock_key_rotation_ends_wrapped_under_the_new_key(tmp_path: Path) -> None:
    """The CSR is out (the renewal awaits the CA) when the rotation re-wraps; the renewed key
    arrives afterwards and must be saved under the new key, not the one current when it started."""
    old, new = keywrap.new_unlock_key(), keywrap.new_unlock_key()
    make_manager(tmp_path, old)
    agent = agent_for(tmp_path)
    agent.kek = old
    assert agent.identity is not None
    agent.identity.raft_password = agent._check_kek(old) or ""
    ca_pem = credentials.read_ca(tmp_path)
    root = ca.RootCA.create()
    renewed_key, csr = ca.new_node_key_and_csr()
    renewed_cert = root.issue(csr, "n" * 25, "manager", "c" * 25, ips=["127.0.0.1"])

    async def scenario() -> None:
        answered = asyncio.Event()

        async def renew() -> tuple[str, dict[str, Any]]:
            await answered.wait()  # the CA is signing
            return renewed_key, {"Role": "manager", "Certificate": renewed_cert, "CACertificate": ca_pem.decode()}

        async def use(_creds: object, **_kw: object) -> None:
            pass

        agent._renew = renew  # type: ignore[method-assign]
        agent._use_credentials = use  # type: ignore[method-assign]
        renewal = asyncio.get_running_loop().create_task(agent._renew_certificate())
        await asyncio.sleep(0.01)
        agent._on_unlock_key(new)  # the manager's watch sees the rotated key meanwhile
        answered.set()
        await renewal

    asyncio.run(scenario())
    assert credentials.load(tmp_path, new).key_pem == credentials.as_bytes(renewed_key)
    assert credentials.load(tmp_path, new).cert_pem == credentials.as_bytes(renewed_cert)
    assert opens_with(tmp_path, new) == ALL and opens_with(tmp_path, old) == set()
