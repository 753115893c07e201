"""`shoal swarm init --autolock`, `update --autolock`, `unlock-key`: flags, request bodies, texts."""

from __future__ import annotations

import argparse

import pytest

from shoal.cli.main import build_parser
from shoal.cli.swarm import init_request, spec_changes, unlock_command_text

KEY = "SWMKEY-1-" + "A" * 43


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_init_autolock_sends_dockers_field_and_the_spec_setting() -> None:
    body = init_request(parse("swarm", "init", "--autolock"))
    assert body["AutoLockManagers"] is True
    assert body["Spec"] == {"EncryptionConfig": {"AutoLockManagers": True}}
    assert "AutoLockManagers" not in init_request(parse("swarm", "init"))


@pytest.mark.parametrize(
    ("argv", "wanted"),
    [(["--autolock=true"], True), (["--autolock"], True), (["--autolock=false"], False), (["--autolock", "0"], False)],
)
def test_update_autolock_takes_a_go_bool(argv: list[str], wanted: bool) -> None:
    args = parse("swarm", "update", *argv)
    assert spec_changes({"Name": "default"}, args)["EncryptionConfig"] == {"AutoLockManagers": wanted}


def test_update_without_autolock_leaves_it_alone() -> None:
    assert "EncryptionConfig" not in spec_changes({}, parse("swarm", "update", "--task-history-limit", "2"))


def test_update_autolock_refuses_a_non_boolean(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse("swarm", "update", "--autolock=maybe")
    assert exc.value.code == 2 and "invalid boolean 'maybe'" in capsys.readouterr().err


def test_unlock_key_flags() -> None:
    args = parse("swarm", "unlock-key", "-q", "--rotate")
    assert args.quiet and args.rotate


def test_unlock_command_text_is_dockers_with_shoal() -> None:
    assert unlock_command_text(KEY) == (
        "To unlock a swarm manager after it restarts, run the `shoal swarm unlock`\n"
        "command and provide the following key:\n\n"
        f"    {KEY}\n\n"
        "Remember to store this key in a password manager, since without it you\n"
        "will not be able to restart the manager.\n"
    )
