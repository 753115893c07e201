"""Autolock's wrapping of a manager's data key and TLS key by the unlock key (KEK)."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from shoal.agent import credentials
from shoal.errors import InvalidArgument
from shoal.store.atrest import keywrap
from shoal.store.atrest.keyfile import DataKeyFile


def test_unlock_key_prints_as_docker_does_and_parses_back() -> None:
    kek = bytes(range(32))
    text = keywrap.format_unlock_key(kek)
    # SwarmKit: "SWMKEY-1-" + base64.RawStdEncoding (no "=" padding): 43 characters for 32 bytes
    assert text == "SWMKEY-1-" + base64.b64encode(kek).decode().rstrip("=")
    assert len(text) == len("SWMKEY-1-") + 43 and "=" not in text
    assert keywrap.parse_unlock_key(text) == kek
    assert keywrap.parse_unlock_key(text + "\n") == kek  # a key pasted with its newline


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SWMKEY-2-AAAA",
        "SWMTKN-1-" + "A" * 43,
        "SWMKEY-1-not*base64",
        "SWMKEY-1-" + "A" * 20,
        "swmkey-1-" + "A" * 43,
    ],
)
def test_malformed_unlock_keys_are_refused_with_swarmkits_message(text: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        keywrap.parse_unlock_key(text)
    assert exc.value.message == "invalid key string" and exc.value.status == 400


def test_wrap_round_trip_and_wrong_key() -> None:
    kek, other = keywrap.new_unlock_key(), keywrap.new_unlock_key()
    wrapped = keywrap.wrap(kek, keywrap.PURPOSE_DATA_KEY, b"secret bytes")
    assert b"secret bytes" not in json.dumps(wrapped).encode()
    assert keywrap.unwrap(kek, keywrap.PURPOSE_DATA_KEY, wrapped) == b"secret bytes"
    with pytest.raises(keywrap.WrongUnlockKey):
        keywrap.unwrap(other, keywrap.PURPOSE_DATA_KEY, wrapped)
    # two wraps of the same secret share neither salt nor ciphertext
    again = keywrap.wrap(kek, keywrap.PURPOSE_DATA_KEY, b"secret bytes")
    assert again["Salt"] != wrapped["Salt"] and again["Sealed"] != wrapped["Sealed"]


def test_a_wrapped_key_cannot_be_passed_off_for_another_purpose_or_altered() -> None:
    kek = keywrap.new_unlock_key()
    wrapped = keywrap.wrap(kek, keywrap.PURPOSE_TLS_KEY, b"pem")
    with pytest.raises(keywrap.KeyWrapError, match=r"not a .raft-data-key."):
        keywrap.unwrap(kek, keywrap.PURPOSE_DATA_KEY, wrapped)
    relabelled = {**wrapped, "Purpose": keywrap.PURPOSE_DATA_KEY}  # the purpose is also the AEAD's data
    with pytest.raises(keywrap.WrongUnlockKey):
        keywrap.unwrap(kek, keywrap.PURPOSE_DATA_KEY, relabelled)
    sealed = bytearray(base64.b64decode(wrapped["Sealed"]))
    sealed[0] ^= 1
    with pytest.raises(keywrap.WrongUnlockKey):
        keywrap.unwrap(kek, keywrap.PURPOSE_TLS_KEY, {**wrapped, "Sealed": base64.b64encode(sealed).decode()})


def test_data_key_file_wrapped_needs_the_kek_and_rewraps_atomically(tmp_path: Path) -> None:
    kek, new = keywrap.new_unlock_key(), keywrap.new_unlock_key()
    path = tmp_path / "keys" / "raft.dek"
    key = DataKeyFile(path, kek=kek).create()
    raw = path.read_bytes()
    assert key.secret not in raw and base64.b64encode(key.secret) not in raw
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(keywrap.Locked, match="unlock the manager first"):
        DataKeyFile(path).load()
    with pytest.raises(keywrap.WrongUnlockKey):
        DataKeyFile(path, kek=new).load()
    assert DataKeyFile(path, kek=kek).load() == key
    # rotation: same key, new wrapping; the old KEK no longer opens it
    DataKeyFile(path, kek=kek).rewrap(new)
    assert DataKeyFile(path, kek=new).load() == key
    with pytest.raises(keywrap.WrongUnlockKey):
        DataKeyFile(path, kek=kek).load()
    # autolock off: in clear again, root-only
    DataKeyFile(path, kek=new).rewrap(None)
    assert not DataKeyFile(path).is_wrapped()
    assert DataKeyFile(path).load() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert base64.b64encode(key.secret) in path.read_bytes()
    assert sorted(p.name for p in path.parent.iterdir()) == ["raft.dek"]  # no temporary left behind


def test_tls_key_file_is_wrapped_and_rewrapped(tmp_path: Path) -> None:
    from shoal.manager import ca

    root = ca.RootCA.create()
    key_pem, csr_pem = ca.new_node_key_and_csr()
    cert_pem = root.issue(csr_pem, "n" * 25, "manager", "c" * 25, ips=["127.0.0.1"])
    kek, new = keywrap.new_unlock_key(), keywrap.new_unlock_key()
    credentials.save(tmp_path, root.cert_pem, cert_pem, key_pem, kek=kek)
    on_disk = credentials.key_path(tmp_path).read_bytes()
    body = credentials.as_bytes(key_pem).split(b"\n")[1]  # a line of the key's base64
    assert b"PRIVATE KEY" not in on_disk and body not in on_disk
    assert credentials.key_is_wrapped(tmp_path)
    with pytest.raises(keywrap.Locked):
        credentials.load(tmp_path, None)
    with pytest.raises(keywrap.WrongUnlockKey):
        credentials.load(tmp_path, new)
    assert credentials.load(tmp_path, kek).key_pem == credentials.as_bytes(key_pem)
    credentials.load(tmp_path, kek).server_context()  # the unwrapped key makes a working TLS context
    credentials.rewrap_key(tmp_path, kek, new)
    assert credentials.load(tmp_path, new).key_pem == credentials.as_bytes(key_pem)
    credentials.rewrap_key(tmp_path, new, None)
    assert not credentials.key_is_wrapped(tmp_path)
    assert credentials.load(tmp_path, None).key_pem == credentials.as_bytes(key_pem)
    assert stat.S_IMODE(credentials.key_path(tmp_path).stat().st_mode) == 0o600
