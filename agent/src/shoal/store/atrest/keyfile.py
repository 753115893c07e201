"""Where a manager's data key lives: a root-only file of its own, apart from the data it protects.

SwarmKit keeps its DEK in the manager's TLS key file (`swarm/certificates/swarm-node.key`), away
from `swarm/raft/`; shoal keeps it in `<state dir>/keys/raft.dek` (directory 0700, file 0600).

`DataKeySource` is the seam for autolock (issue 15): `DataKeyFile` stores the key as is without
autolock, and wrapped by the unlock key (KEK, `keywrap.py`) with it; a file holding a wrapped key
can only be `load()`ed by a `DataKeyFile` given that KEK (`keywrap.Locked` otherwise). The store
only ever calls `load()` and `create()`; the agent calls `rewrap()` when autolock or its key changes.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Protocol

from shoal.files import fsync_path, write_atomic
from shoal.store.atrest import keywrap
from shoal.store.atrest.records import AtRestError, DataKey

KEY_DIR = "keys"
KEY_FILE = "raft.dek"
FORMAT = 1
ALGORITHM = "AES-256-GCM"


class DataKeySource(Protocol):
    path: Path

    def exists(self) -> bool: ...

    def load(self) -> DataKey:
        """The key, or AtRestError saying why not (missing, unreadable, malformed, locked)."""
        ...

    def create(self) -> DataKey:
        """Generate and store a new key (never overwrites one)."""
        ...


def default_key_path(raft_data_dir: Path) -> Path:
    """`<state>/keys/raft.dek` for `<state>/raft`; for any other layout, a file named after the
    data dir in a `keys` directory beside it (so two replicas in one directory never share one)."""
    data = Path(raft_data_dir)
    name = KEY_FILE if data.name == "raft" else f"{data.name}.dek"
    return data.parent / KEY_DIR / name


class DataKeyFile:
    """The key in a root-only file: in clear without autolock, wrapped by `kek` with it."""

    def __init__(self, path: Path, kek: bytes | None = None) -> None:
        self.path = Path(path)
        self.kek = kek

    def exists(self) -> bool:
        return self.path.exists()

    def is_wrapped(self) -> bool:
        try:
            return bool(json.loads(self.path.read_text()).get("Wrapped"))
        except (OSError, ValueError, AttributeError):
            return False

    def load(self) -> DataKey:
        try:
            raw = json.loads(self.path.read_text())
            if raw.get("Format") != FORMAT or raw.get("Algorithm") != ALGORITHM:
                raise ValueError(f"unsupported key format {raw.get('Format')!r}/{raw.get('Algorithm')!r}")
            wrapped = bool(raw.get("Wrapped"))
            if wrapped and self.kek is None:
                raise keywrap.Locked(f"the data key in {self.path} is wrapped (autolock): unlock the manager first")
            key_id = bytes.fromhex(raw["KeyID"])
            if not wrapped:
                return DataKey(key_id, base64.b64decode(raw["Key"], validate=True))
            wrapped_key = raw["Key"]
        except FileNotFoundError:
            raise AtRestError(f"the data key file {self.path} is missing") from None
        except keywrap.Locked:
            raise
        except (OSError, ValueError, KeyError, TypeError, AtRestError) as exc:
            raise AtRestError(f"cannot read the data key file {self.path}: {exc}") from None
        assert self.kek is not None
        return DataKey(key_id, keywrap.unwrap(self.kek, keywrap.PURPOSE_DATA_KEY, wrapped_key))

    def create(self) -> DataKey:
        key = DataKey.generate()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path.parent, 0o700)
        # not write_atomic, which replaces: a link never does, and an existing key must never be
        # replaced (it would orphan its data)
        tmp = self._write_tmp(self._body(key, self.kek))
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            raise AtRestError(f"the data key file {self.path} already exists") from None
        finally:
            tmp.unlink()
        fsync_path(self.path.parent)
        return key

    def rewrapped(self, kek: bytes | None) -> bytes:
        """The file's content with the same key wrapped by `kek` (in clear for None), for a
        `keyset.replace_all` of every key file at once. Needs the current KEK in `self.kek`.
        Removes a crashed create's leftover too (`_remove_leftover`): the autolock re-wrap, which
        comes this way and not through `rewrap`, must not leave the key under its old wrapping."""
        body = json.dumps(self._body(self.load(), kek)).encode()
        self._remove_leftover()
        return body

    def rewrap(self, kek: bytes | None) -> None:
        """Store the same key wrapped by `kek` (in clear for None); the file is replaced atomically,
        so a crash leaves the old wrapping or the new one. Needs the current KEK in `self.kek`."""
        key = self.load()
        self._remove_leftover()
        write_atomic(self.path, json.dumps(self._body(key, kek)), 0o600)
        self.kek = kek

    def _remove_leftover(self) -> None:
        """Remove `create`'s temporary file that a crash left (`_write_tmp`), before a re-wrap.

        Needed: it is a second name of the key file as it was (a crash between create's link and
        its unlink), and a re-wrap renames a new file over the key's name, so the old one, the key
        in clear or under the old unlock key, would stay readable under this one. Safe once `load`
        has read the key file: the leftover is then that same file, or a key that a create never
        linked (so never used). Done before the new wrapping is written, so that the directory
        fsync that makes the new wrapping durable (write_atomic's, replace_all's) makes this unlink
        durable with it."""
        self._tmp.unlink(missing_ok=True)

    @staticmethod
    def _body(key: DataKey, kek: bytes | None) -> dict[str, object]:
        secret: object = (
            base64.b64encode(key.secret).decode()
            if kek is None
            else keywrap.wrap(kek, keywrap.PURPOSE_DATA_KEY, key.secret)
        )
        return {
            "Format": FORMAT,
            "Algorithm": ALGORITHM,
            "KeyID": key.key_id.hex(),
            "Wrapped": kek is not None,
            "Key": secret,
        }

    @property
    def _tmp(self) -> Path:
        return self.path.with_name(self.path.name + ".tmp")

    def _write_tmp(self, body: dict[str, object]) -> Path:
        """`create`'s temporary file: a new file, exactly 0600. One left by a crash is removed, not
        written through: it may be readable by others, or (a crash between the link and the unlink)
        a second name of the key itself, which a truncation would destroy. A fixed name, so that
        the next create or re-wrap (`_remove_leftover`) removes such a leftover (it may hold the
        key in clear)."""
        tmp = self._tmp
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            os.fchmod(fh.fileno(), 0o600)  # whatever the umask
            json.dump(body, fh)
            fh.flush()
            os.fsync(fh.fileno())
        return tmp


PlainKeyFile = DataKeyFile  # the name before autolock: a DataKeyFile without a KEK
