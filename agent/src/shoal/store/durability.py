"""Flush the Raft journal to disk before anything that promises durability (notes/raft.md, defect 4).

pysyncobj writes its journal through an mmap and never syncs it, so an acknowledged write survives
a process crash but not a power loss of a majority. We sync at the three moments Raft needs it:
- a follower, before it acknowledges appended entries to the leader (`next_node_idx` success);
- the leader, before it sends new entries (so its own copy counts toward the majority only once
  it is on disk: every follower acknowledgement comes after it);
- any node, before it answers a write that committed (a single-member cluster has no followers).
The term and vote (`<journal>.meta`, replaced by rename) are synced before a vote leaves the node.
A new snapshot (`raft.dump`, written by a forked child or received from the leader, then renamed
into place) is synced on the tick that notices it, before the journal it shortens is synced.

Everything here runs on the tick thread. A sync is `fdatasync` on our own descriptor of the journal
file: it flushes the pages pysyncobj dirtied through its mapping, without touching its objects.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger("shoal.store")
SLOW_SYNC = 0.2  # a journal sync this long is said: the tick thread (heartbeats included) waits on it


class JournalFlusher:
    def __init__(self, journal: Path, dump: Path) -> None:
        self._journal = journal
        self._meta = Path(f"{journal}.meta")
        self._dump = dump
        self._dump_seen = self._stat(dump)
        self._fd: int | None = os.open(journal, os.O_RDONLY)
        self._fsync_path(journal.parent)  # the journal's directory entry, made by pysyncobj
        self._dirty = False
        self.durable_index = 0  # the journal is on disk up to this log index
        self.syncs = 0

    def mark_dirty(self) -> None:
        """Entries arrived from the leader (or a snapshot): the next acknowledgement must sync."""
        self._dirty = True

    def before_ack(self, last_index: int) -> None:
        # On success the follower's log ends exactly at `last_index` (pysyncobj truncates a
        # conflicting tail), so the durable mark may also move down here.
        if self._dirty or last_index != self.durable_index:
            self._sync()
        self.durable_index = last_index

    def before_replicate(self, last_index: int) -> None:
        if self._dirty or last_index > self.durable_index:
            self._sync()
            self.durable_index = last_index

    def before_answer(self, index: int) -> None:
        if self._dirty or index > self.durable_index:
            self._sync()
            self.durable_index = max(self.durable_index, index)

    def before_vote(self) -> None:
        self._fsync_path(self._meta)
        self._fsync_path(self._meta.parent)  # the rename that replaced it

    def check_dump(self) -> None:
        """Called every tick: sync a snapshot that appeared since the last look."""
        seen = self._stat(self._dump)
        if seen != self._dump_seen:
            self._dump_seen = seen
            if seen is not None:
                self._fsync_path(self._dump)
                self._fsync_path(self._dump.parent)

    @staticmethod
    def _stat(path: Path) -> tuple[int, int, int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _sync(self) -> None:
        if self._fd is None:
            return
        try:
            started = time.monotonic()
            os.fdatasync(self._fd)
            took = time.monotonic() - started
            if took > SLOW_SYNC:
                log.warning("syncing the Raft journal took %.2f s (the disk is busy)", took)
            self.syncs += 1
            self._dirty = False
        except OSError as exc:  # a full or failing disk: keep serving, say so loudly
            log.error("cannot sync the Raft journal %s: %s", self._journal, exc)

    @staticmethod
    def _fsync_path(path: Path) -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return  # not written yet
        try:
            os.fsync(fd)
        except OSError as exc:
            log.error("cannot sync %s: %s", path, exc)
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
