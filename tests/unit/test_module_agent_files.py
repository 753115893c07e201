"""agent_files for real on a temporary directory: create, idempotence, content and mode changes, check and diff
mode, owners, and arguments refused before anything is written."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from unit.test_module_support import run_module

from ansible_collections.shoal.swarm.plugins.modules import agent_files  # isort: skip


def run(check: bool = False, diff: bool = False, **args: Any) -> tuple[bool, dict[str, Any]]:
    return run_module(agent_files, args, check=check, diff=diff)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(root: Path) -> dict[str, tuple[int, int, int, int, int, bytes | None]]:
    """Every path under ``root`` with its inode, mode, owner, group, mtime and content."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        content = path.read_bytes() if path.is_file() else None
        out[str(path)] = (st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, content)
    return out


def layout(root: Path) -> dict[str, Any]:
    return {
        "directories": [{"path": str(root / "etc" / "shoal")}, {"path": str(root / "private"), "mode": "0700"}],
        "files": [
            {"path": str(root / "etc" / "shoal" / "shoald.yml"), "content": "listen: 0.0.0.0\n"},
            {"path": str(root / "etc" / "shoal" / "certs.d" / "reg:5000" / "ca.crt"), "content": "PEM\n"},
            {"path": str(root / "private" / "token"), "content": "s3cret\n", "mode": "0600"},
        ],
    }


def test_creates_directories_parents_and_files(tmp_path: Path) -> None:
    failed, result = run(**layout(tmp_path))
    assert not failed, result
    assert result["changed"]
    assert result["changed_paths"] == [
        str(tmp_path / "etc" / "shoal"),
        str(tmp_path / "private"),
        str(tmp_path / "etc" / "shoal" / "shoald.yml"),
        str(tmp_path / "etc" / "shoal" / "certs.d" / "reg:5000" / "ca.crt"),
        str(tmp_path / "private" / "token"),
    ]
    assert (tmp_path / "etc" / "shoal" / "shoald.yml").read_text() == "listen: 0.0.0.0\n"
    assert (tmp_path / "etc" / "shoal" / "certs.d" / "reg:5000" / "ca.crt").read_text() == "PEM\n"
    assert (tmp_path / "private" / "token").read_text() == "s3cret\n"
    assert mode(tmp_path / "etc") == 0o755  # a parent the module created
    assert mode(tmp_path / "etc" / "shoal" / "certs.d") == 0o755
    assert mode(tmp_path / "private") == 0o700
    assert mode(tmp_path / "etc" / "shoal" / "shoald.yml") == 0o644
    assert mode(tmp_path / "private" / "token") == 0o600
    for path in tmp_path.rglob("*"):
        assert (path.stat().st_uid, path.stat().st_gid) == (0, 0), path
    # no temporary file left behind
    assert sorted(p.name for p in (tmp_path / "etc" / "shoal").iterdir()) == ["certs.d", "shoald.yml"]


def test_second_run_changes_and_touches_nothing(tmp_path: Path) -> None:
    args = layout(tmp_path)
    assert run(**args)[1]["changed"]
    before = snapshot(tmp_path)
    failed, again = run(diff=True, **args)
    assert not failed, again
    assert not again["changed"] and again["changed_paths"] == [] and again["diff"] == []
    assert snapshot(tmp_path) == before  # same inodes and mtimes: nothing rewritten


def test_content_change_rewrites_only_that_file(tmp_path: Path) -> None:
    args = layout(tmp_path)
    run(**args)
    target = tmp_path / "etc" / "shoal" / "shoald.yml"
    before = snapshot(tmp_path)
    args["files"][0]["content"] = "listen: 127.0.0.1\n"
    failed, result = run(diff=True, **args)
    assert not failed, result
    assert result["changed"] and result["changed_paths"] == [str(target)]
    assert result["diff"] == [
        {
            "before_header": str(target),
            "after_header": str(target),
            "before": "listen: 0.0.0.0\n",
            "after": "listen: 127.0.0.1\n",
        }
    ]
    assert target.read_text() == "listen: 127.0.0.1\n" and mode(target) == 0o644
    after = snapshot(tmp_path)
    assert after[str(target)][0] != before[str(target)][0]  # replaced by a new file (atomic rename)
    # the rest untouched (the directory of the file has a new mtime: an entry was renamed in it)
    rest = {str(target), str(target.parent)}
    assert {k: v for k, v in after.items() if k not in rest} == {k: v for k, v in before.items() if k not in rest}
    assert after[str(target.parent)][:4] == before[str(target.parent)][:4]


def test_mode_only_change_does_not_rewrite(tmp_path: Path) -> None:
    args = layout(tmp_path)
    run(**args)
    target = tmp_path / "private" / "token"
    ino, mtime = target.stat().st_ino, target.stat().st_mtime_ns
    args["files"][2]["mode"] = "0640"
    failed, result = run(diff=True, **args)
    assert not failed, result
    assert result["changed_paths"] == [str(target)]
    assert result["diff"] == [
        {"before_header": str(target), "after_header": str(target), "before": "mode: 0600\n", "after": "mode: 0640\n"}
    ]
    assert mode(target) == 0o640
    assert (target.stat().st_ino, target.stat().st_mtime_ns) == (ino, mtime)
    assert target.read_text() == "s3cret\n"


def test_directory_mode_and_owner_changes(tmp_path: Path) -> None:
    args = layout(tmp_path)
    run(**args)
    private = tmp_path / "private"
    os.chown(private, 65534, 65534)
    private.chmod(0o750)
    failed, result = run(diff=True, **args)
    assert not failed, result
    assert result["changed_paths"] == [str(private)]
    assert result["diff"][0]["before"] == "mode: 0750\nowner: nobody\ngroup: nogroup\n"
    assert result["diff"][0]["after"] == "mode: 0700\nowner: root\ngroup: root\n"
    assert mode(private) == 0o700 and (private.stat().st_uid, private.stat().st_gid) == (0, 0)


def test_owner_and_group_of_a_file(tmp_path: Path) -> None:
    target = tmp_path / "owned"
    item = {"path": str(target), "content": "x\n", "owner": "nobody", "group": "nogroup", "mode": "0640"}
    failed, result = run(files=[item])
    assert not failed and result["changed"], result
    assert (target.stat().st_uid, target.stat().st_gid) == (65534, 65534) and mode(target) == 0o640
    ino = target.stat().st_ino
    failed, result = run(diff=True, files=[{**item, "group": "root"}])
    assert not failed and result["changed_paths"] == [str(target)], result
    assert result["diff"][0]["before"] == "group: nogroup\n" and result["diff"][0]["after"] == "group: root\n"
    assert (target.stat().st_uid, target.stat().st_gid, target.stat().st_ino) == (65534, 0, ino)
    assert mode(target) == 0o640
    assert not run(files=[{**item, "group": "root"}])[1]["changed"]


def test_check_mode_reports_and_changes_nothing(tmp_path: Path) -> None:
    failed, result = run(check=True, diff=True, **layout(tmp_path))
    assert not failed, result
    assert result["changed"] and len(result["changed_paths"]) == 5
    assert list(tmp_path.iterdir()) == []
    shoal = str(tmp_path / "etc" / "shoal")
    assert result["diff"][0] == {
        "before_header": shoal,
        "after_header": shoal,
        "before": "state: absent\n",
        "after": "state: directory\n",
    }
    assert result["diff"][2]["before"] == "" and result["diff"][2]["after"] == "listen: 0.0.0.0\n"
    # on an existing tree: a content change and a mode change predicted, neither made
    args = layout(tmp_path)
    run(**args)
    before = snapshot(tmp_path)
    args["files"][0]["content"] = "other\n"
    args["directories"][1]["mode"] = "0755"
    failed, result = run(check=True, **args)
    assert not failed and result["changed"], result
    assert result["changed_paths"] == [str(tmp_path / "private"), str(tmp_path / "etc" / "shoal" / "shoald.yml")]
    assert "diff" not in result
    assert snapshot(tmp_path) == before


def test_diff_of_a_new_file(tmp_path: Path) -> None:
    target = tmp_path / "new.txt"
    failed, result = run(diff=True, files=[{"path": str(target), "content": "one\ntwo\n"}])
    assert not failed, result
    assert result["diff"] == [
        {"before_header": str(target), "after_header": str(target), "before": "", "after": "one\ntwo\n"}
    ]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"files": [{"path": "relative/file", "content": "x"}]}, "must be absolute"),
        ({"directories": [{"path": "relative"}]}, "must be absolute"),
        ({"files": [{"path": "{root}/good", "content": "y"}]}, "duplicate path"),
        ({"directories": [{"path": "{root}/good/"}]}, "duplicate path"),
        ({"files": [{"path": "{root}/f", "content": "x", "mode": "644"}]}, "mode must be an octal"),
        ({"files": [{"path": "{root}/f", "content": "x", "mode": "0689"}]}, "mode must be an octal"),
        ({"directories": [{"path": "{root}/d", "mode": "rwx"}]}, "mode must be an octal"),
        ({"files": [{"path": "{root}/f", "content": "x", "owner": "no-such-user"}]}, "unknown owner"),
        ({"directories": [{"path": "{root}/d", "group": "no-such-group"}]}, "unknown group"),
        ({"files": [{"path": "{root}/good/inner", "content": "x"}]}, "which is a file"),
        ({"directories": [{"path": "{root}/existing"}]}, "is not a directory"),
        ({"files": [{"path": "{root}/existing/below", "content": "x"}]}, "is not a directory"),
        ({"files": [{"path": "{root}/adir", "content": "x"}]}, "is not a regular file"),
    ],
)
def test_bad_arguments_change_nothing(tmp_path: Path, bad: dict[str, Any], message: str) -> None:
    (tmp_path / "existing").write_text("a file\n")
    (tmp_path / "adir").mkdir()
    before = snapshot(tmp_path)
    args: dict[str, Any] = {
        "directories": [{"path": str(tmp_path / "newdir")}],
        "files": [{"path": str(tmp_path / "good"), "content": "good\n"}],
    }
    for key, items in bad.items():
        args[key] = args[key] + [{**i, "path": i["path"].format(root=tmp_path)} for i in items]
    failed, result = run(**args)
    assert failed and message in result["msg"], result
    assert not result["changed"] and result["changed_paths"] == []
    assert snapshot(tmp_path) == before
