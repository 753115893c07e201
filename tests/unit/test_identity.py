"""node.json (`shoal.identity`): root only whatever the umask, saved whole, loaded back."""

from __future__ import annotations

import stat
from pathlib import Path

from shoal.identity import Identity, node_file
from unit.test_files import umask


def test_node_json_is_exactly_0600_whatever_the_umask_and_was_there(tmp_path: Path) -> None:
    ident = Identity("n" * 25, "c" * 25, "manager", "10.0.0.1", raft_password="secret", managers=["10.0.0.1:2377"])
    node_file(tmp_path).write_text("{}")
    node_file(tmp_path).chmod(0o644)  # an older file that others could read
    with umask(0o277):  # would make a file created 0600 only 0400
        ident.save(tmp_path)
    assert stat.S_IMODE(node_file(tmp_path).stat().st_mode) == 0o600
    assert Identity.load(tmp_path) == ident
    assert [p.name for p in tmp_path.iterdir()] == ["node.json"]  # no temporary file left
