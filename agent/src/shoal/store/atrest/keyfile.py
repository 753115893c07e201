"""Where a manager's data key lives: a root-only file of its own, apart from the data it protects.

SwarmKit keeps its DEK in the manager's TLS key file (`swarm/certificates/swarm-node.key`), away
from `swarm/raft/`; shoal keeps it in `<state dir>/keys/raft.dek` (directory 0700, file 0600).

`DataKeySource` is the seam for autolock (issue 15): today `PlainKeyFile` stores the key as is;
a locked manager will use a source that stores it wrapped by the unlock key (KEK) and can only
`load()` once unlocked. The store only ever calls `load()` and `create()`.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Protocol

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


class PlainKeyFile:
    """The key in clear in a root-only file (no autolock)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> DataKey:
        try:
            raw = json.loads(self.path.read_text())
            if raw.get("Format") != FORMAT or raw.get("Algorithm") != ALGORITHM:
                raise ValueError(f"unsupported key format {raw.get('Format')!r}/{raw.get('Algorithm')!r}")
            if raw.get("Wrapped"):
                raise ValueError("the key is wrapped (autolock): unlock the manager first")
            return DataKey(bytes.fromhex(raw["KeyID"]), base64.b64decode(raw["Key"], validate=True))
        except FileNotFoundError:
            raise AtRestError(f"the data key file {self.path} is missing") from None
        except (OSError, ValueError, KeyError, TypeError, AtRestError) as exc:
            raise AtRestError(f"cannot read the data key file {self.path}: {exc}") from None

    def create(self) -> DataKey:
        key = DataKey.generate()
        body = {
            "Format": FORMAT,
            "Algorithm": ALGORITHM,
            "KeyID": key.key_id.hex(),
            "Wrapped": False,
            "Key": base64.b64encode(key.secret).decode(),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path.parent, 0o700)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(body, fh)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, self.path)  # never replace an existing key: it would orphan its data
        except FileExistsError:
            raise AtRestError(f"the data key file {self.path} already exists") from None
        finally:
            tmp.unlink()
        _fsync_dir(self.path.parent)
        return key


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
