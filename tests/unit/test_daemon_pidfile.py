"""shoald's pidfile is replaced whole: `shoald_ctl.sh` polls it while shoald starts, and an empty
read made a healthy start look like an exit."""

from __future__ import annotations

import os
from pathlib import Path

from shoal.daemon import write_pidfile
from unit.test_files import reads_while_rewritten


def test_a_reader_never_sees_the_pidfile_empty_while_it_is_rewritten(tmp_path: Path) -> None:
    pidfile = tmp_path / "shoald.pid"
    write_pidfile(pidfile)
    assert reads_while_rewritten(pidfile, lambda: write_pidfile(pidfile)) == {f"{os.getpid()}\n"}
    assert [p.name for p in tmp_path.iterdir()] == ["shoald.pid"]
