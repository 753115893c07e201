"""The agent_wheelhouse lookup runs the role's build script on the controller and fails with the script's message.

Run through `ansible` (a child process): the plugin loader sets its options from its DOCUMENTATION, and the
controller's state stays out of this process (the in-process module tests need module_utils' own warnings).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "roles" / "agent" / "files" / "build_wheelhouse.py"


def lookup(tmp_path: Path, source: Path, dest: Path) -> tuple[int, dict]:
    expression = (
        f"{{{{ lookup('shoal.swarm.agent_wheelhouse', source='{source}', dest='{dest}', python='{sys.executable}') }}}}"
    )
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=str(REPO / "playbooks" / "collections"),
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_STDOUT_CALLBACK="json",
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
    )
    argv = [str(Path(sys.executable).parent / "ansible"), "localhost", "-c", "local", "-m", "ansible.builtin.debug"]
    proc = subprocess.run([*argv, "-a", f"msg={expression}"], env=env, capture_output=True, text=True, timeout=120)
    out = json.loads(proc.stdout)
    (play,) = out["plays"]
    (task,) = play["tasks"]
    return proc.returncode, task["hosts"]["localhost"]


def current_wheelhouse(tmp_path: Path) -> tuple[Path, Path]:
    """A source and a stand-in archive whose digest is current (what the script writes after a build)."""
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1"\ndependencies = []\n')
    (source / "pkg" / "a.py").write_text("A = 1\n")
    dest = tmp_path / "wheelhouse"
    dest.mkdir()
    digest = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); import build_wheelhouse as b; from pathlib import Path;"
            "print(b.source_digest(Path(sys.argv[2]), b.python_tag(sys.executable)))",
            str(SCRIPT.parent),
            str(source),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (dest / "source.digest").write_text(digest + "\n")
    with tarfile.open(dest / "shoal-wheelhouse.tar", "w") as tar:
        tar.add(source / "pyproject.toml", arcname="x-1-py3-none-any.whl")
        tar.add(source / "pkg" / "a.py", arcname="x-1-py3-none-any.whl.pyc.tar.gz")  # not a wheel: not listed
    (dest / "shoal-install.sh").write_bytes(b"#!/bin/sh\n")
    return source, dest


def test_an_up_to_date_wheelhouse_is_answered_without_a_build(tmp_path: Path) -> None:
    source, dest = current_wheelhouse(tmp_path)
    rc, result = lookup(tmp_path, source, dest)
    assert rc == 0, result
    answer = result["msg"]
    assert answer["changed"] is False
    assert answer["wheels"] == ["x-1-py3-none-any.whl"]
    assert answer["digest"] == (dest / "source.digest").read_text().strip()
    assert answer["archive"] == str(dest / "shoal-wheelhouse.tar")
    assert answer["installer"] == str(dest / "shoal-install.sh")


def test_a_failed_build_fails_with_the_scripts_message(tmp_path: Path) -> None:
    rc, result = lookup(tmp_path, tmp_path, tmp_path / "wh")
    assert rc != 0 and result.get("failed"), result
    assert "building the wheelhouse failed" in result["msg"] and "is not the shoal agent package" in result["msg"]
    assert not (tmp_path / "wh" / "shoal-wheelhouse.tar").exists()


def test_a_source_whose_pyproject_has_no_project_is_refused_by_name(tmp_path: Path) -> None:
    source = tmp_path / "repo"  # the repository's root rather than its agent/: a pyproject.toml of tools only
    source.mkdir()
    (source / "pyproject.toml").write_text("[tool.ruff]\nline-length = 120\n")
    rc, result = lookup(tmp_path, source, tmp_path / "wh")
    assert rc != 0 and result.get("failed"), result
    assert "its pyproject.toml has no [project] table" in result["msg"] and "KeyError" not in result["msg"]
    assert not (tmp_path / "wh" / "shoal-wheelhouse.tar").exists()
