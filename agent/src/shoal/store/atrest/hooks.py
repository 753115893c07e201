"""Put the sealed journal and snapshot under pysyncobj, and refuse state this manager cannot read.

pysyncobj 0.3.17 builds its journal (`createJournal`) and snapshot handler (`Serializer`) inside
`SyncObj.__init__`, from names in its `syncobj` module, and has no parameter to pass others; it
also replays the journal right there, before its tick thread starts. So `sealed_storage()` swaps
those two names for our factories for the length of one construction (under a lock: two replicas
built at once in one process each get their own key). Like the other private seams in
notes/raft.md this depends on the pinned version; tests/unit/test_atrest_*.py checks it holds.

`prepare()` runs before that: pysyncobj logs and ignores a snapshot it cannot load (and would then
start from what is left of the journal), so the snapshot is authenticated here first, and every
reason not to start (missing key, wrong key, tampered or foreign files) is an AtRestError. Plain
files from before encryption at rest are sealed in place here (`migrate.py`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pysyncobj.syncobj as pysyncobj_syncobj
from pysyncobj.journal import MemoryJournal

from shoal.store.atrest import migrate
from shoal.store.atrest.journal import APP_NAME, LEGACY_APP_NAME, SealedFileJournal, read_app_name
from shoal.store.atrest.keyfile import DataKeyFile, DataKeySource, default_key_path
from shoal.store.atrest.records import AtRestError, RecordCipher
from shoal.store.atrest.snapshot import SealedSerializer, open_sealed

GZIP_MAGIC = b"\x1f\x8b"  # how pysyncobj's own (plain) snapshots begin
_build_lock = threading.Lock()


def key_source_for(data_dir: Path, source: DataKeySource | None) -> DataKeySource:
    return source if source is not None else DataKeyFile(default_key_path(data_dir))


def prepare(journal: Path, dump: Path, source: DataKeySource) -> RecordCipher:
    """This manager's record cipher: its key loaded (or created for a new or not yet encrypted data
    dir), plain files from before encryption at rest sealed in place, the data dir checked to be
    readable with it."""
    name = read_app_name(journal)
    if name not in (None, APP_NAME, LEGACY_APP_NAME):
        raise AtRestError(f"the Raft journal {journal} is not a shoal journal ({name!r}): refusing to read it")
    legacy_journal = name == LEGACY_APP_NAME
    legacy_dump = dump.exists() and dump.read_bytes()[:2] == GZIP_MAGIC
    sealed_data = (journal.exists() and not legacy_journal) or (dump.exists() and not legacy_dump)
    if source.exists():
        key = source.load()
    elif sealed_data:
        raise AtRestError(
            f"the Raft data in {journal.parent} is encrypted but its data key file {source.path} is "
            "missing: refusing to start with an empty state. Restore the key file, or remove this "
            "manager from the swarm and join it again with an empty data directory"
        )
    else:
        key = source.create()  # a new manager, or one whose data predates encryption at rest
    cipher = RecordCipher(key)
    if legacy_journal:
        migrate.seal_legacy_journal(journal, cipher)
    if legacy_dump:
        migrate.seal_legacy_snapshot(dump, cipher)
    if dump.exists():
        open_sealed(str(dump), cipher)  # authenticates it now: pysyncobj would only log a failure
    return cipher


@contextlib.contextmanager
def sealed_storage(cipher: RecordCipher) -> Iterator[None]:
    """While it is open, a SyncObj built in this process writes its journal and snapshot sealed."""

    def create_journal(path: str | None) -> Any:
        return MemoryJournal() if path is None else SealedFileJournal(path, cipher)

    def create_serializer(
        path: str | None, batch: int, use_fork: bool, serializer: Callable[..., Any] | None, *rest: Any
    ) -> Any:
        if path is None or serializer is not None:
            raise AtRestError("the sealed store needs a snapshot file and pysyncobj's own serializer")
        return SealedSerializer(path, batch, cipher, use_fork)

    with _build_lock:
        saved = pysyncobj_syncobj.createJournal, pysyncobj_syncobj.Serializer
        pysyncobj_syncobj.createJournal = create_journal
        pysyncobj_syncobj.Serializer = create_serializer
        try:
            yield
        finally:
            pysyncobj_syncobj.createJournal, pysyncobj_syncobj.Serializer = saved
