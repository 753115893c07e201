"""The sealed-record format and the data key file (store/atrest): round trip, tamper, wrong key."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from shoal.store.atrest import keywrap
from shoal.store.atrest.keyfile import DataKeyFile, PlainKeyFile, default_key_path
from shoal.store.atrest.records import KIND_ENTRY, KIND_SNAPSHOT, AtRestError, DataKey, RecordCipher, entry_context

SECRET = b"service web env PASSWORD=hunter2"


def test_a_record_round_trips_and_hides_its_plaintext() -> None:
    cipher = RecordCipher(DataKey.generate())
    record = cipher.seal(KIND_ENTRY, entry_context(7, 2), SECRET)
    assert SECRET not in record and b"hunter2" not in record
    assert cipher.open(KIND_ENTRY, entry_context(7, 2), record, "entry 7") == SECRET
    assert cipher.seal(KIND_ENTRY, entry_context(7, 2), SECRET) != record  # a fresh nonce each time


def test_a_modified_record_fails_authentication() -> None:
    cipher = RecordCipher(DataKey.generate())
    record = bytearray(cipher.seal(KIND_ENTRY, entry_context(7, 2), SECRET))
    record[-20] ^= 0x01
    with pytest.raises(AtRestError, match="entry 7 fails authentication: it was modified"):
        cipher.open(KIND_ENTRY, entry_context(7, 2), bytes(record), "entry 7")


def test_a_record_moved_to_another_index_or_kind_fails_authentication() -> None:
    cipher = RecordCipher(DataKey.generate())
    record = cipher.seal(KIND_ENTRY, entry_context(7, 2), SECRET)
    with pytest.raises(AtRestError, match="fails authentication"):
        cipher.open(KIND_ENTRY, entry_context(8, 2), record, "entry 8")
    with pytest.raises(AtRestError, match="fails authentication"):
        cipher.open(KIND_SNAPSHOT, entry_context(7, 2), record, "snapshot")


def test_another_key_is_named_as_the_wrong_key() -> None:
    mine, other = DataKey.generate(), DataKey.generate()
    record = RecordCipher(other).seal(KIND_SNAPSHOT, b"", SECRET)
    with pytest.raises(AtRestError, match=f"sealed with data key {other.key_id.hex()}.*key is {mine.key_id.hex()}"):
        RecordCipher(mine).open(KIND_SNAPSHOT, b"", record, "snapshot")


def test_a_same_id_but_different_key_still_fails_authentication() -> None:
    key = DataKey.generate()
    forged = DataKey(key.key_id, os.urandom(32))
    record = RecordCipher(forged).seal(KIND_SNAPSHOT, b"", SECRET)
    with pytest.raises(AtRestError, match="fails authentication"):
        RecordCipher(key).open(KIND_SNAPSHOT, b"", record, "snapshot")


@pytest.mark.parametrize("junk", [b"", b"SHR1", b"\x1f\x8b" + bytes(60), b"PYSYNCOBJ" + bytes(60)])
def test_what_is_not_a_record_says_so(junk: bytes) -> None:
    with pytest.raises(AtRestError, match="not an encrypted shoal record"):
        RecordCipher(DataKey.generate()).open(KIND_SNAPSHOT, b"", junk, "snapshot")


def test_a_key_never_prints_its_secret() -> None:
    key = DataKey.generate()
    assert key.secret.hex() not in repr(key) and key.key_id.hex() in repr(key)


def test_the_key_file_is_root_only_and_loads_back(tmp_path: Path) -> None:
    source = PlainKeyFile(default_key_path(tmp_path / "raft"))
    assert source.path == tmp_path / "keys" / "raft.dek"
    assert not source.exists()
    key = source.create()
    assert stat.S_IMODE(source.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(source.path.parent.stat().st_mode) == 0o700
    assert source.load() == key
    assert [p.name for p in source.path.parent.iterdir()] == ["raft.dek"]


def test_an_existing_key_is_never_replaced(tmp_path: Path) -> None:
    source = PlainKeyFile(tmp_path / "keys" / "raft.dek")
    key = source.create()
    with pytest.raises(AtRestError, match="already exists"):
        source.create()
    assert source.load() == key


def test_what_a_crashed_create_left_never_reaches_the_key(tmp_path: Path) -> None:
    source = PlainKeyFile(tmp_path / "keys" / "raft.dek")
    leftover = source.path.with_name("raft.dek.tmp")
    source.path.parent.mkdir(mode=0o700)
    leftover.write_text("junk")  # died before its link: a temporary file that others could read
    leftover.chmod(0o644)
    key = source.create()
    assert stat.S_IMODE(source.path.stat().st_mode) == 0o600 and not leftover.exists()
    os.link(source.path, leftover)  # died between its link and its unlink: a second name of the key
    with pytest.raises(AtRestError, match="already exists"):
        source.create()
    assert source.load() == key  # not truncated through that name
    os.link(source.path, leftover)
    kek = keywrap.new_unlock_key()
    source.rewrap(kek)  # the key in clear does not stay under that name once wrapped
    assert sorted(p.name for p in source.path.parent.iterdir()) == ["raft.dek"]
    assert DataKeyFile(source.path, kek=kek).load() == key


def test_replicas_in_one_directory_get_a_key_each(tmp_path: Path) -> None:
    assert default_key_path(tmp_path / "m0") != default_key_path(tmp_path / "m1")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "cannot read the data key file"),
        (json.dumps({"Format": 2, "Algorithm": "AES-256-GCM"}), "unsupported key format"),
        (json.dumps({"Format": 1, "Algorithm": "AES-256-GCM", "KeyID": "00" * 8, "Key": "AAAA"}), "32-byte"),
        (json.dumps({"Format": 1, "Algorithm": "AES-256-GCM", "Wrapped": True}), "unlock the manager first"),
    ],
)
def test_a_bad_key_file_is_a_clear_error(tmp_path: Path, body: str, reason: str) -> None:
    path = tmp_path / "raft.dek"
    path.write_text(body)
    with pytest.raises(AtRestError, match=reason):
        PlainKeyFile(path).load()


def test_a_missing_key_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AtRestError, match=r"raft\.dek is missing"):
        PlainKeyFile(tmp_path / "raft.dek").load()
