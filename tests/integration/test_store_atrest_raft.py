"""Encryption at rest on real pysyncobj replicas in this process (127.0.0.1 only): a follower that
lost its data receives the leader's snapshot and stores it under its own key; a tampered journal or
another manager's key stops the replica from being built, with the reason."""

from __future__ import annotations

import shutil
import zlib
from pathlib import Path

import pytest

from integration.test_store_raft import PASSWORD, free_port, ids, leader_of, start, wait_for
from shoal.store import Change, RaftConfig, ReplicatedStore
from shoal.store.atrest.keyfile import PlainKeyFile, default_key_path
from shoal.store.atrest.records import AtRestError, RecordCipher
from shoal.store.atrest.snapshot import open_sealed
from shoal.store.config import DUMP_FILE, JOURNAL_FILE

MARKER = "atrest-raft-marker-3e9a"


def marked(obj_id: str) -> Change:
    spec = {"Name": f"{MARKER}-{obj_id}", "Env": [f"TOKEN={MARKER}"]}
    return Change("create", "task", {"ID": obj_id, "CreatedAt": "t", "UpdatedAt": "t", "Spec": spec})


def files_with(root: Path, marker: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and marker in p.read_bytes()]


def data_dir(root: Path, addr: str) -> Path:
    return root / addr.replace(":", "_")


def test_a_snapshot_sent_to_a_follower_is_stored_under_the_followers_key(tmp_path: Path) -> None:
    addrs = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    stores = start(addrs, tmp_path, log_compaction_min_entries=20)
    try:
        leader = leader_of(stores)
        lost = next(s for s in stores if s is not leader)
        lost_addr, lost_dir = lost.addr, data_dir(tmp_path, lost.addr)
        lost.close()
        stores.remove(lost)
        shutil.rmtree(lost_dir)  # its disk is gone, key included: it comes back empty
        default_key_path(lost_dir).unlink()
        for i in range(40):  # past the compaction threshold: the leader's log no longer starts at 1
            leader.commit([marked(f"t{i}")])
        wait_for(lambda: (data_dir(tmp_path, leader.addr) / DUMP_FILE).exists(), 5.0, "the leader's snapshot")
        (back,) = start([lost_addr], tmp_path, peers=addrs, log_compaction_min_entries=20)
        stores.append(back)
        wait_for(lambda: ids(back) == ids(leader), 10.0, "the emptied follower to catch up")
        dump = lost_dir / DUMP_FILE
        wait_for(dump.exists, 5.0, "the received snapshot on disk")
        own = RecordCipher(PlainKeyFile(default_key_path(lost_dir)).load())
        leaders = RecordCipher(PlainKeyFile(default_key_path(data_dir(tmp_path, leader.addr))).load())
        assert own.key.key_id != leaders.key.key_id
        assert MARKER.encode() in zlib.decompress(open_sealed(str(dump), own))
        with pytest.raises(AtRestError, match="sealed with data key"):
            open_sealed(str(dump), leaders)
        assert files_with(tmp_path, MARKER.encode()) == []
    finally:
        for s in stores:
            s.close()


def test_a_tampered_journal_or_another_members_key_is_refused_with_the_reason(tmp_path: Path) -> None:
    addr = f"127.0.0.1:{free_port()}"
    directory = tmp_path / "raft"
    config = RaftConfig(addr, [], directory, PASSWORD)
    store = ReplicatedStore(config)
    leader_of([store])
    store.commit([marked("only")])
    store.close()
    key = default_key_path(directory)
    saved = key.read_bytes()
    other = PlainKeyFile(tmp_path / "other.dek")
    other.create()
    key.unlink()
    shutil.copyfile(other.path, key)
    with pytest.raises(AtRestError, match=r"Raft journal .* entry 1 was sealed with data key"):
        ReplicatedStore(config)
    key.write_bytes(saved)
    journal = directory / JOURNAL_FILE
    raw = bytearray(journal.read_bytes())
    raw[raw.rindex(b"SHR1") + 30] ^= 0x01  # inside the last entry's ciphertext
    journal.write_bytes(bytes(raw))
    with pytest.raises(AtRestError, match="fails authentication"):
        ReplicatedStore(config)
    raw[raw.rindex(b"SHR1") + 30] ^= 0x01
    journal.write_bytes(bytes(raw))
    store = ReplicatedStore(config)  # the same port again: the refused builds left nothing listening
    try:
        leader_of([store])
        assert ids(store) == ["only"]
    finally:
        store.close()


def test_plain_raft_data_from_before_encryption_is_sealed_in_place_on_start(tmp_path: Path) -> None:
    addr = f"127.0.0.1:{free_port()}"
    directory = tmp_path / "raft"
    plain = RaftConfig(addr, [], directory, PASSWORD, log_compaction_min_entries=20, unsealed_for_benchmarks=True)
    store = ReplicatedStore(plain)  # pysyncobj's own files, as a manager before issue 13 wrote them
    leader_of([store])
    for i in range(30):  # a snapshot, then more journal entries
        store.commit([marked(f"t{i}")])
    wait_for((directory / DUMP_FILE).exists, 5.0, "a plain snapshot")
    for i in range(30, 35):
        store.commit([marked(f"t{i}")])
    before = store.export_state()
    store.close()
    assert files_with(directory, MARKER.encode()) != []  # in clear in the journal (dump: gzip)
    assert not default_key_path(directory).exists()
    plain.unsealed_for_benchmarks = False
    store = ReplicatedStore(plain)
    try:
        wait_for(lambda: store.applied_index >= before["Index"], 5.0, "replay of the sealed files")
        assert store.export_state()["Objects"] == before["Objects"]
        assert files_with(tmp_path, MARKER.encode()) == []
        assert (directory / JOURNAL_FILE).read_bytes().startswith(b"SHOAL-SEALED-RAFT")
        assert (directory / DUMP_FILE).read_bytes().startswith(b"SHR1")  # the gzip one was sealed too
    finally:
        store.close()
