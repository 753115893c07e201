"""pysyncobj's snapshot ("full dump") handling with the file sealed under this manager's key.

Why here: pysyncobj writes a snapshot in a forked child (`Serializer.serialize`), sends a follower
the raw bytes of its dump file (`getTransmissionData`) and writes what it receives straight into its
own dump file (`setTransmissionData`). Its `serializer`/`deserializer` hooks would cover the first
step only, and they turn the fork off and hand over no state. So this class takes the Serializer's
place whole (same methods, `hooks.py` installs it): the child seals before writing; a leader opens
its sealed file and sends the plain payload over the (password-encrypted) Raft transport, since the
follower has a key of its own; a follower gathers the chunks in memory and writes them sealed with
its key. No plain snapshot byte reaches a file.

Payload: zlib (fast level) of the pickled tuple pysyncobj passes, (state, entry, entry, members).

Chunks: pysyncobj's (bytes, first, last) with a fourth item, (offset, size, sha256 of the payload).
pysyncobj advances a transfer even when sending a chunk failed (the connection to the follower
dropped and came back before its next round noticed): gluing the chunks around the gap gave a
follower a dump it "failed to load" (invalid load key), and it stayed behind for good while
answering nodes from its replica. A chunk out of order now drops the transfer; the follower stays
behind, answers the leader so, and the leader sends the snapshot again from its start.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import zlib
from pathlib import Path
from typing import Any

from pysyncobj.atomic_replace import atomicReplace
from pysyncobj.config import SERIALIZER_STATE

from shoal.store.atrest.records import KIND_SNAPSHOT, RecordCipher

log = logging.getLogger("shoal.store")

NO_CONTEXT = b""  # a snapshot has one place only; its kind keeps it out of the journal


def encode(data: Any) -> bytes:
    return zlib.compress(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL), 1)


def decode(payload: bytes) -> Any:
    # Unpickled only after the AEAD authenticated it (or, received, after the password transport did).
    return pickle.loads(zlib.decompress(payload))


def write_sealed(path: str, tmp: str, cipher: RecordCipher, payload: bytes) -> None:
    sealed = cipher.seal(KIND_SNAPSHOT, NO_CONTEXT, payload)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(sealed)
    atomicReplace(tmp, path)  # durability.JournalFlusher syncs it on the tick that sees it


def open_sealed(path: str, cipher: RecordCipher) -> bytes:
    return cipher.open(KIND_SNAPSHOT, NO_CONTEXT, Path(path).read_bytes(), f"Raft snapshot {path}")


class SealedSerializer:
    def __init__(self, path: str, batch_size: int, cipher: RecordCipher, use_fork: bool = True) -> None:
        self._path = path
        self._batch = batch_size
        self._cipher = cipher
        self._fork = use_fork and hasattr(os, "fork")
        self._pid = 0  # >0 child writing; -1 done, -2 failed (no fork); 0 idle
        self._current_id: Any = None
        self._transmissions: dict[Any, dict[str, Any]] = {}
        self._incoming: bytearray | None = None
        self._incoming_meta: tuple[int, str] | None = None  # (size, sha256) of the payload on its way
        self._received: bytes | None = None  # the payload just written, so it is not read back

    # ---- writing a snapshot of our own state
    # Method names are pysyncobj's Serializer's, misspelt `cancelTransmisstion` included.
    def checkSerializing(self) -> tuple[int, Any]:
        pid = self._pid
        if pid in (-1, -2):
            self._pid = 0
            self._transmissions = {}
            return (SERIALIZER_STATE.SUCCESS if pid == -1 else SERIALIZER_STATE.FAILED), self._current_id
        if pid == 0:
            return SERIALIZER_STATE.NOT_SERIALIZING, None
        try:
            rpid, status = os.waitpid(pid, os.WNOHANG)
        except OSError:
            self._pid = 0
            return SERIALIZER_STATE.FAILED, self._current_id
        if rpid != pid:
            return SERIALIZER_STATE.SERIALIZING, self._current_id
        self._pid = 0
        if status == 0:
            self._transmissions = {}
            return SERIALIZER_STATE.SUCCESS, self._current_id
        return SERIALIZER_STATE.FAILED, self._current_id

    def serialize(self, data: Any, id: Any) -> None:
        if self._pid != 0:
            return
        self._current_id = id
        if self._fork:
            pid = os.fork()
            if pid != 0:
                self._pid = pid
                return
            # The child: no locks, no logging (another thread may have held them at fork time).
            try:
                write_sealed(self._path, self._path + ".tmp", self._cipher, encode(data))
            except BaseException:
                os._exit(1)
            os._exit(0)
        try:
            write_sealed(self._path, self._path + ".tmp", self._cipher, encode(data))
            self._pid = -1
        except Exception:
            self._pid = -2

    def deserialize(self) -> Any:
        payload, self._received = self._received, None
        return decode(payload if payload is not None else open_sealed(self._path, self._cipher))

    # ---- sending our snapshot to a follower: the plain payload, over the encrypted transport
    def getTransmissionData(self, transmissionID: Any) -> Any:
        if self._pid != 0:
            return None
        sending = self._transmissions.get(transmissionID)
        if sending is None:
            try:
                payload = open_sealed(self._path, self._cipher)
            except FileNotFoundError:
                return None  # no snapshot yet: pysyncobj retries later
            except Exception as exc:
                # unreadable (edited, wrong key): say why, or a follower waits for it in silence
                log.error("cannot send the Raft snapshot %s to a follower: %s", self._path, exc)
                return None
            digest = hashlib.sha256(payload).hexdigest()
            sending = self._transmissions[transmissionID] = {"data": payload, "sent": 0, "digest": digest}
        offset = sending["sent"]
        chunk = sending["data"][offset : offset + self._batch]
        sending["sent"] += len(chunk)
        last = not chunk
        if last:
            self._transmissions.pop(transmissionID, None)
        return chunk, offset == 0, last, (offset, len(sending["data"]), sending["digest"])

    def cancelTransmisstion(self, id: Any) -> None:
        self._transmissions.pop(id, None)

    # ---- receiving the leader's snapshot: gathered in memory, written sealed with our key
    def setTransmissionData(self, data: Any) -> bool:
        if data is None:
            return False
        chunk, first, last, *meta = data
        if not meta:  # from a leader before the chunks said where they go: taken in order, as then
            meta = [(len(self._incoming) if self._incoming is not None and not first else 0, -1, "")]
        offset, size, digest = meta[0]
        if first:
            self._incoming, self._incoming_meta = bytearray(), (size, digest)
        if self._incoming is None:
            return False  # the rest of a dropped transfer: the leader starts over after its last chunk
        if offset != len(self._incoming) or self._incoming_meta != (size, digest):
            log.warning(
                "Raft snapshot from the leader: chunk at %d out of order (%d bytes received): "
                "dropped, the leader sends it again",
                offset,
                len(self._incoming),
            )
            self._incoming = self._incoming_meta = None
            return False
        self._incoming += bytes(chunk)
        if not last:
            return False
        payload, self._incoming, self._incoming_meta = bytes(self._incoming), None, None
        if size >= 0 and (len(payload) != size or hashlib.sha256(payload).hexdigest() != digest):
            log.warning("Raft snapshot from the leader: %d of %d bytes or a wrong digest: dropped", len(payload), size)
            return False
        try:
            write_sealed(self._path, self._path + ".1.tmp", self._cipher, payload)
        except OSError:
            log.exception("cannot write the snapshot received from the leader")
            return False
        self._received = payload
        return True
