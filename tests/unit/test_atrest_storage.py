"""The sealed journal and snapshot files (store/atrest) on real files, and the pysyncobj seam."""

from __future__ import annotations

import gzip
import inspect
import logging
import time
from pathlib import Path

import pysyncobj.syncobj as pysyncobj_syncobj
import pytest
from pysyncobj.config import SERIALIZER_STATE
from pysyncobj.journal import FileJournal
from pysyncobj.serializer import Serializer

from shoal.store.atrest import hooks
from shoal.store.atrest.journal import SealedFileJournal
from shoal.store.atrest.keyfile import PlainKeyFile
from shoal.store.atrest.records import AtRestError, DataKey, RecordCipher
from shoal.store.atrest.snapshot import SealedSerializer

MARKER = b"atrest-marker-5f1c"


def entries(n: int, start: int = 1) -> list[tuple[bytes, int, int]]:
    return [(b"\x00cmd " + MARKER + b" %d" % i, i, 1) for i in range(start, start + n)]


def file_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file())


def test_the_journal_replays_its_entries_and_never_writes_them_in_clear(tmp_path: Path) -> None:
    cipher = RecordCipher(DataKey.generate())
    path = str(tmp_path / "raft.journal")
    journal = SealedFileJournal(path, cipher)
    for entry in entries(5):
        journal.add(*entry)
    journal.setCurrentTerm(3, "node-a")
    journal._destroy()
    assert MARKER not in file_bytes(tmp_path)
    again = SealedFileJournal(path, cipher)
    assert list(again) == entries(5)
    assert again.getCurrentTerm() == 3 and again.getVotedForNodeId() == "node-a"


def test_the_journal_replays_after_truncation_at_both_ends(tmp_path: Path) -> None:
    cipher = RecordCipher(DataKey.generate())
    path = str(tmp_path / "raft.journal")
    journal = SealedFileJournal(path, cipher)
    for entry in entries(10):
        journal.add(*entry)
    journal.deleteEntriesFrom(8)  # a conflicting tail from an old leader
    journal.deleteEntriesTo(3)  # compaction after a snapshot
    journal.add(*entries(1, start=9)[0])
    journal._destroy()
    assert list(SealedFileJournal(path, cipher)) == entries(6, start=4)


def test_a_tampered_journal_or_another_key_is_refused_on_replay(tmp_path: Path) -> None:
    cipher = RecordCipher(DataKey.generate())
    path = tmp_path / "raft.journal"
    journal = SealedFileJournal(str(path), cipher)
    for entry in entries(3):
        journal.add(*entry)
    journal._destroy()
    with pytest.raises(AtRestError, match="entry 1 was sealed with data key"):
        SealedFileJournal(str(path), RecordCipher(DataKey.generate()))
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"SHR1", 200) + 40] ^= 0x01  # inside a later entry's ciphertext
    path.write_bytes(bytes(raw))
    with pytest.raises(AtRestError, match=r"entry \d fails authentication"):
        SealedFileJournal(str(path), cipher)


def test_a_journal_from_before_encryption_is_refused_by_the_journal_and_sealed_by_prepare(tmp_path: Path) -> None:
    path = tmp_path / "raft.journal"
    legacy = FileJournal(str(path))
    for entry in entries(4):
        legacy.add(*entry)
    legacy.setCurrentTerm(5, "node-b")
    legacy._destroy()
    with pytest.raises(AtRestError, match="written before encryption at rest"):
        SealedFileJournal(str(path), RecordCipher(DataKey.generate()))
    cipher = hooks.prepare(path, tmp_path / "raft.dump", PlainKeyFile(tmp_path / "keys" / "raft.dek"))
    assert MARKER not in file_bytes(tmp_path)
    sealed = SealedFileJournal(str(path), cipher)
    assert list(sealed) == entries(4)
    assert (sealed.getCurrentTerm(), sealed.getVotedForNodeId()) == (5, "node-b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys", "raft.journal", "raft.journal.meta"]


def test_a_snapshot_from_before_encryption_is_sealed_by_prepare(tmp_path: Path) -> None:
    dump = tmp_path / "raft.dump"
    plain = Serializer(str(dump), 64, False, None, None, None)
    plain.serialize((*STATE, {"a"}), 8)
    assert MARKER in gzip.decompress(dump.read_bytes())
    cipher = hooks.prepare(tmp_path / "raft.journal", dump, PlainKeyFile(tmp_path / "keys" / "raft.dek"))
    assert MARKER not in dump.read_bytes()
    assert SealedSerializer(str(dump), 64, cipher, use_fork=False).deserialize() == (*STATE, {"a"})
    dump.write_bytes(gzip.compress(b"not a pickle"))
    with pytest.raises(AtRestError, match=r"cannot read the plain Raft snapshot .* to seal it"):
        hooks.prepare(tmp_path / "raft.journal", dump, PlainKeyFile(tmp_path / "keys" / "raft.dek"))


STATE = ([{"_SyncObj__x": 1}, {"objects": {"service": {"s1": {"Name": MARKER.decode()}}}}], ("c2", 9, 1), ("c1", 8, 1))


def test_a_snapshot_is_sealed_and_loads_back(tmp_path: Path) -> None:
    cipher = RecordCipher(DataKey.generate())
    dump = tmp_path / "raft.dump"
    for fork in (False, True):
        serializer = SealedSerializer(str(dump), 1000, cipher, use_fork=fork)
        serializer.serialize((*STATE, {"a", "b"}), 8)
        for _ in range(500):
            state, ident = serializer.checkSerializing()
            if state != SERIALIZER_STATE.SERIALIZING:
                break
            time.sleep(0.01)
        assert (state, ident) == (SERIALIZER_STATE.SUCCESS, 8)
        assert MARKER not in dump.read_bytes()
        assert dump.stat().st_mode & 0o077 == 0
        assert serializer.deserialize() == (*STATE, {"a", "b"})


def test_a_snapshot_travels_in_clear_over_the_transport_and_lands_sealed_with_the_followers_key(
    tmp_path: Path,
) -> None:
    leader_dir, follower_dir = tmp_path / "leader", tmp_path / "follower"
    leader_dir.mkdir()
    follower_dir.mkdir()
    leader = SealedSerializer(str(leader_dir / "raft.dump"), 64, RecordCipher(DataKey.generate()), use_fork=False)
    follower_cipher = RecordCipher(DataKey.generate())
    follower = SealedSerializer(str(follower_dir / "raft.dump"), 64, follower_cipher, use_fork=False)
    leader.serialize((*STATE, {"a"}), 8)
    assert leader.checkSerializing()[0] == SERIALIZER_STATE.SUCCESS
    done = False
    for _ in range(1000):
        done = follower.setTransmissionData(leader.getTransmissionData("follower"))
        if done:
            break
    assert done
    assert MARKER not in file_bytes(follower_dir)
    assert follower.deserialize() == (*STATE, {"a"})
    reread = SealedSerializer(str(follower_dir / "raft.dump"), 64, follower_cipher, use_fork=False)
    assert reread.deserialize() == (*STATE, {"a"})


def test_a_snapshot_the_leader_cannot_open_is_not_sent_and_the_log_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dump = tmp_path / "raft.dump"
    leader = SealedSerializer(str(dump), 64, RecordCipher(DataKey.generate()), use_fork=False)
    assert leader.getTransmissionData("f") is None  # no snapshot yet: nothing to say
    assert "cannot send the Raft snapshot" not in caplog.text
    leader.serialize((*STATE, {"a"}), 8)
    other = SealedSerializer(str(dump), 64, RecordCipher(DataKey.generate()), use_fork=False)  # another key
    with caplog.at_level("ERROR", logger="shoal.store"):
        assert other.getTransmissionData("f") is None
    assert f"cannot send the Raft snapshot {dump} to a follower" in caplog.text


def test_prepare_creates_a_key_for_an_empty_data_dir_and_refuses_data_without_one(tmp_path: Path) -> None:
    journal, dump = tmp_path / "raft" / "raft.journal", tmp_path / "raft" / "raft.dump"
    journal.parent.mkdir()
    source = PlainKeyFile(tmp_path / "keys" / "raft.dek")
    cipher = hooks.prepare(journal, dump, source)
    assert source.load() == cipher.key
    SealedFileJournal(str(journal), cipher)._destroy()
    source.path.unlink()
    with pytest.raises(AtRestError, match=r"encrypted but its data key file .* is missing: refusing to start"):
        hooks.prepare(journal, dump, source)
    assert not source.exists()  # no new key made for data it could not read


def test_prepare_authenticates_the_snapshot_that_pysyncobj_would_only_log(tmp_path: Path) -> None:
    dump = tmp_path / "raft.dump"
    source = PlainKeyFile(tmp_path / "keys" / "raft.dek")
    cipher = hooks.prepare(tmp_path / "raft.journal", dump, source)
    serializer = SealedSerializer(str(dump), 64, cipher, use_fork=False)
    serializer.serialize((*STATE, set()), 8)
    hooks.prepare(tmp_path / "raft.journal", dump, source)  # fine as written
    raw = bytearray(dump.read_bytes())
    raw[-1] ^= 0x80
    dump.write_bytes(bytes(raw))
    with pytest.raises(AtRestError, match=r"Raft snapshot .* fails authentication"):
        hooks.prepare(tmp_path / "raft.journal", dump, source)


def test_the_seam_swaps_pysyncobjs_factories_only_while_building(tmp_path: Path) -> None:
    # The pinned pysyncobj builds its journal and serializer from these module names (hooks.py).
    before = pysyncobj_syncobj.createJournal, pysyncobj_syncobj.Serializer
    cipher = RecordCipher(DataKey.generate())
    with hooks.sealed_storage(cipher):
        journal = pysyncobj_syncobj.createJournal(str(tmp_path / "raft.journal"))
        serializer = pysyncobj_syncobj.Serializer(str(tmp_path / "raft.dump"), 64, True, None, None, None)
        assert isinstance(journal, SealedFileJournal) and isinstance(serializer, SealedSerializer)
        journal._destroy()
    assert (pysyncobj_syncobj.createJournal, pysyncobj_syncobj.Serializer) == before
    source = inspect.getsource(pysyncobj_syncobj.SyncObj.__init__)
    assert "createJournal(self.__conf.journalFile)" in source and "Serializer(self.__conf.fullDumpFile" in source


def _sent_snapshot(tmp_path: Path) -> tuple[SealedSerializer, SealedSerializer]:
    leader_dir, follower_dir = tmp_path / "leader", tmp_path / "follower"
    leader_dir.mkdir()
    follower_dir.mkdir()
    leader = SealedSerializer(str(leader_dir / "raft.dump"), 16, RecordCipher(DataKey.generate()), use_fork=False)
    follower = SealedSerializer(str(follower_dir / "raft.dump"), 16, RecordCipher(DataKey.generate()), use_fork=False)
    leader.serialize((*STATE, {"a"}), 8)
    assert leader.checkSerializing()[0] == SERIALIZER_STATE.SUCCESS
    return leader, follower


def test_a_snapshot_chunk_lost_in_transit_is_never_loaded_and_the_next_transfer_lands_whole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """pysyncobj advances a transfer even when sending a chunk failed (the connection dropped and
    came back between two rounds): the follower glued the chunks around the gap and failed to load
    the dump ("invalid load key"), staying behind while it served assignments from its replica."""
    leader, follower = _sent_snapshot(tmp_path)
    chunks = []
    while True:
        data = leader.getTransmissionData("follower")
        chunks.append(data)
        if data[2]:
            break
    assert len(chunks) > 3
    with caplog.at_level(logging.WARNING, logger="shoal.store"):
        done = [follower.setTransmissionData(c) for i, c in enumerate(chunks) if i != 1]
    assert not any(done), "a snapshot with a gap was taken as received"
    assert "out of order" in caplog.text
    # the leader starts over (pysyncobj does once the follower answers it is still behind)
    again = []
    while True:
        data = leader.getTransmissionData("follower")
        again.append(follower.setTransmissionData(data))
        if data[2]:
            break
    assert again[-1] and not any(again[:-1])
    assert follower.deserialize() == (*STATE, {"a"})


def test_a_snapshot_transfer_replaced_midway_by_a_newer_one_lands_whole(tmp_path: Path) -> None:
    leader, follower = _sent_snapshot(tmp_path)
    assert not follower.setTransmissionData(leader.getTransmissionData("follower"))
    leader.cancelTransmisstion("follower")  # the leader saw the follower disconnected: starts over
    while True:
        data = leader.getTransmissionData("follower")
        if follower.setTransmissionData(data):
            break
        assert not data[2]
    assert follower.deserialize() == (*STATE, {"a"})


def test_a_snapshot_from_a_leader_before_chunk_offsets_still_lands(tmp_path: Path) -> None:
    leader, follower = _sent_snapshot(tmp_path)  # a rolling upgrade: the leader still sends 3-tuples
    while True:
        chunk, first, last, _ = leader.getTransmissionData("follower")
        if follower.setTransmissionData((chunk, first, last)):
            break
        assert not last
    assert follower.deserialize() == (*STATE, {"a"})
