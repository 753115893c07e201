"""Raft data written before encryption at rest (pysyncobj's plain files) is sealed in place on the
first start of the new version, once, before pysyncobj opens it.

Each file is rewritten beside itself and renamed over the original, so a crash leaves either the
plain file (migrated again on the next start) or the sealed one, never half of each. The blocks of
the plain copies stay on the disk until the filesystem reuses them: the log says so.
"""

from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path

from pysyncobj import pickle as pysyncobj_pickle
from pysyncobj.journal import FileJournal

from shoal.files import fsync_path
from shoal.store.atrest.journal import SealedFileJournal
from shoal.store.atrest.records import AtRestError, RecordCipher
from shoal.store.atrest.snapshot import encode, write_sealed

log = logging.getLogger("shoal.store")


def seal_legacy_journal(journal: Path, cipher: RecordCipher) -> int:
    """Rewrite pysyncobj's plain journal sealed; its `.meta` (term, vote, commit index) stays."""
    plain = FileJournal(str(journal))
    entries = [plain[i] for i in range(len(plain))]
    plain._destroy()
    tmp = journal.with_name(journal.name + ".sealing")
    tmp.unlink(missing_ok=True)
    sealed = SealedFileJournal(str(tmp), cipher)
    for command, idx, term in entries:
        sealed.add(command, idx, term)
    sealed.flush()
    sealed._destroy()
    fsync_path(tmp)
    os.replace(tmp, journal)
    Path(f"{tmp}.meta").unlink(missing_ok=True)
    fsync_path(journal.parent)
    log.warning(
        "sealed the plain Raft journal %s (%d entries) at rest; its plain blocks may stay on the disk until reused",
        journal,
        len(entries),
    )
    return len(entries)


def seal_legacy_snapshot(dump: Path, cipher: RecordCipher) -> None:
    try:
        with gzip.open(dump, "rb") as fh:
            data = pysyncobj_pickle.load(fh)  # pysyncobj's own file, as it would have loaded it
    except Exception as exc:
        raise AtRestError(f"cannot read the plain Raft snapshot {dump} to seal it: {exc!r}") from None
    write_sealed(str(dump), f"{dump}.sealing", cipher, encode(data))
    fsync_path(dump)
    fsync_path(dump.parent)
    log.warning("sealed the plain Raft snapshot %s at rest; its plain blocks may stay on the disk until reused", dump)
