"""What a node remembers about its membership: /var/lib/shoal/node.json (0600) + certificates/."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shoal.files import write_atomic

NODE_FILE = "node.json"
CERT_DIR = "certificates"
RAFT_DIR = "raft"
KEY_DIR = "keys"  # the Raft data key (store/atrest/keyfile.py), apart from the data


@dataclass
class Identity:
    node_id: str
    cluster_id: str
    role: str  # the role this node currently acts as: "manager" or "worker"
    advertise_ip: str
    cluster_port: int = 2377
    raft_port: int = 2378
    listen_addr: str = "0.0.0.0:2377"
    managers: list[str] = field(default_factory=list)  # cluster API addresses "ip:port" last seen
    raft_password: str = ""  # managers only: the cluster secret that encrypts Raft
    # autolock: the password wrapped by the unlock key (store/atrest/keywrap.py); then node.json holds
    # only this and `raft_password` is known in memory once the manager is unlocked
    raft_password_wrapped: dict[str, Any] | None = None
    raft_members: list[str] = field(default_factory=list)  # managers only: last known Raft members

    @property
    def cluster_addr(self) -> str:
        return f"{self.advertise_ip}:{self.cluster_port}"

    @property
    def raft_addr(self) -> str:
        return f"{self.advertise_ip}:{self.raft_port}"

    def to_bytes(self) -> bytes:
        """node.json's content: never the password in clear when a wrapped one is kept."""
        doc = asdict(self)
        if self.raft_password_wrapped is not None:
            doc["raft_password"] = ""
        return json.dumps(doc, indent=2).encode()

    def save(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        # root only (the Raft password), durable: the node's membership must survive a power cut
        write_atomic(data_dir / NODE_FILE, self.to_bytes(), 0o600)

    @classmethod
    def load(cls, data_dir: Path) -> Identity | None:
        try:
            raw = json.loads((data_dir / NODE_FILE).read_text())
        except FileNotFoundError:
            return None
        return cls(**raw)


def node_file(data_dir: Path) -> Path:
    return data_dir / NODE_FILE


def cert_dir(data_dir: Path) -> Path:
    return data_dir / CERT_DIR


def raft_dir(data_dir: Path) -> Path:
    return data_dir / RAFT_DIR


def wipe(data_dir: Path) -> None:
    """Forget the swarm: identity, certificates, Raft data and its key (`swarm leave`)."""
    (data_dir / NODE_FILE).unlink(missing_ok=True)
    for sub in (CERT_DIR, RAFT_DIR, KEY_DIR):
        shutil.rmtree(data_dir / sub, ignore_errors=True)
