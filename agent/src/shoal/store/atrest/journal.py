"""pysyncobj's journal with every entry sealed before it reaches the file.

Why here: pysyncobj keeps the log in memory and mirrors each entry into its journal file as it
appends it (`Journal.add`), and reads the file back only when a replica is built. Sealing inside the
journal class is therefore the last step before the disk and decrypting inside its constructor is
the first step after it: pysyncobj's Raft logic, the wire (entries are sent from memory) and the
store's state machine all keep seeing plain commands, and no plain command is ever written.

The file layout is pysyncobj 0.3.17's `FileJournal` (header, then `size | idx term payload | size`
records, written through an mmap that `durability.JournalFlusher` syncs), with our own header name
so that a journal written before encryption is recognised (and sealed by `migrate.py` before this
class opens it) instead of misread, and the payload a sealed record (`records.py`) bound to the entry's index and term.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from pysyncobj.journal import Journal, MetaStorer, ResizableFile

from shoal.store.atrest.records import KIND_ENTRY, AtRestError, RecordCipher, entry_context

APP_NAME = b"SHOAL-SEALED-RAFT"  # pysyncobj writes b"PYSYNCOBJ" here
LEGACY_APP_NAME = b"PYSYNCOBJ"
NAME_SIZE = 24
VERSION_SIZE = 8
FORMAT_VERSION = 1
LAST_RECORD_OFFSET_OFFSET = NAME_SIZE + VERSION_SIZE + 4
FIRST_RECORD_OFFSET = LAST_RECORD_OFFSET_OFFSET + 4
Entry = tuple[bytes, int, int]  # (command, index, term), as pysyncobj keeps them


def header() -> bytes:
    name = APP_NAME.ljust(NAME_SIZE, b"\0")
    return name + b"sealed".ljust(VERSION_SIZE, b"\0") + struct.pack("<II", FORMAT_VERSION, FIRST_RECORD_OFFSET)


def read_app_name(path: Path) -> bytes | None:
    """The header name of an existing journal file (None if absent or empty)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(NAME_SIZE)
    except FileNotFoundError:
        return None
    return head.rstrip(b"\0") if head.strip(b"\0") else None


class SealedFileJournal(Journal):  # type: ignore[misc]  # pysyncobj has no type hints
    def __init__(self, path: str, cipher: RecordCipher) -> None:
        name = read_app_name(Path(path))
        if name is not None and name != APP_NAME:
            what = "written before encryption at rest" if name == LEGACY_APP_NAME else "not a shoal journal"
            raise AtRestError(f"the Raft journal {path} is {what} ({name!r}): refusing to read it")
        self._path = path
        self._cipher = cipher
        self._file = ResizableFile(path, defaultContent=header())
        self._entries: list[Entry] = []
        self._meta_storer = MetaStorer(path + ".meta")
        self._meta: dict[str, Any] = self._meta_storer.getMeta()
        self._meta_saved = True
        offset, end = FIRST_RECORD_OFFSET, self._last_record_offset()
        while offset < end:
            size = struct.unpack("<I", self._file.read(offset, 4))[0]
            data = self._file.read(offset + 4, size)
            idx, term = struct.unpack("<QQ", data[:16])
            where = f"Raft journal {path} entry {idx}"
            self._entries.append((cipher.open(KIND_ENTRY, entry_context(idx, term), data[16:], where), idx, term))
            offset += size + 8
        self._offset = offset

    def _last_record_offset(self) -> int:
        return int(struct.unpack("<I", self._file.read(LAST_RECORD_OFFSET_OFFSET, 4))[0])

    def _set_last_record_offset(self, offset: int) -> None:
        self._file.write(LAST_RECORD_OFFSET_OFFSET, struct.pack("<I", offset))

    # ---- the log
    def add(self, command: bytes, idx: int, term: int) -> None:
        self._entries.append((command, idx, term))
        sealed = self._cipher.seal(KIND_ENTRY, entry_context(idx, term), bytes(command))
        body = struct.pack("<QQ", idx, term) + sealed
        size = struct.pack("<I", len(body))
        record = size + body + size
        self._file.write(self._offset, record)
        self._offset += len(record)
        self._set_last_record_offset(self._offset)  # after the record: a torn write is not replayed

    def clear(self) -> None:
        self._entries = []
        self._set_last_record_offset(FIRST_RECORD_OFFSET)
        self._offset = FIRST_RECORD_OFFSET

    def __getitem__(self, item: Any) -> Any:
        return self._entries[item]

    def __len__(self) -> int:
        return len(self._entries)

    def deleteEntriesFrom(self, entryFrom: int) -> None:
        remove = len(self._entries) - entryFrom
        del self._entries[entryFrom:]
        offset = self._offset
        for _ in range(max(remove, 0)):
            offset -= struct.unpack("<I", self._file.read(offset - 4, 4))[0] + 8
        self._offset = offset
        self._set_last_record_offset(offset)

    def deleteEntriesTo(self, entryTo: int) -> None:
        kept = self._entries[entryTo:]
        self.clear()
        for entry in kept:
            self.add(*entry)

    def _destroy(self) -> None:
        self._file._destroy()

    def flush(self) -> None:
        self._file.flush()

    # ---- term, vote and commit index (`<journal>.meta`: no user data, kept as pysyncobj writes it)
    def setRaftCommitIndex(self, raftCommitIndex: int) -> None:
        self._meta["raftCommitIndex"] = raftCommitIndex
        self._meta_saved = False

    def getRaftCommitIndex(self) -> int:
        return int(self._meta.get("raftCommitIndex", 1))

    def setCurrentTerm(self, term: int, votedForNodeId: Any) -> None:
        self._meta["currentTerm"] = term
        self._meta["votedForNodeId"] = votedForNodeId
        self._meta_storer.storeMeta(self._meta)  # durable before any vote message (Raft §5)
        self._meta_saved = True

    def getCurrentTerm(self) -> int:
        return int(self._meta.get("currentTerm", 0))

    def getVotedForNodeId(self) -> Any:
        return self._meta.get("votedForNodeId")

    def onOneSecondTimer(self) -> None:
        if not self._meta_saved:
            self._meta_storer.storeMeta(self._meta)
            self._meta_saved = True
