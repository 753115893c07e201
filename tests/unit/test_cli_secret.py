"""`shoal secret|config` and the service secret/config flags: docker's syntax, pure parts."""

from __future__ import annotations

import argparse
import base64

import pytest

from shoal.cli import secret as cli
from shoal.cli import service_args
from shoal.cli.errors import CLIError
from shoal.cli.main import build_parser, main
from shoal.cli.service_secrets import secret_ref


def test_create_request_is_base64_with_labels() -> None:
    body = cli.create_request("pw", b"\x00bin", ["a=1", "b"])
    assert body == {"Name": "pw", "Labels": {"a": "1", "b": ""}, "Data": base64.b64encode(b"\x00bin").decode()}


def test_missing_file_and_template_driver_are_clear_errors(tmp_path, capsys) -> None:
    with pytest.raises(CLIError, match="error reading content"):
        cli.read_data(str(tmp_path / "nope"))
    assert (
        main(["-H", f"unix://{tmp_path}/none.sock", "config", "create", "--template-driver", "golang", "c", "-"]) == 1
    )
    assert "--template-driver is not supported" in capsys.readouterr().err


def test_ls_rows_and_quiet() -> None:
    objs = [
        {
            "ID": "b" * 25,
            "CreatedAt": "2026-01-01T00:00:00Z",
            "UpdatedAt": "2026-01-01T00:00:00Z",
            "Spec": {"Name": "pw"},
        }
    ]
    text = cli.format_list(cli.SECRETS, objs, None, False, 2 * 10**18)
    assert text.splitlines()[0].split() == ["ID", "NAME", "DRIVER", "CREATED", "UPDATED"]
    assert "pw" in text.splitlines()[1]
    assert cli.format_list(cli.SECRETS, objs, None, True, 0) == "b" * 25 + "\n"
    pretty = cli.pretty(cli.CONFIGS, {**objs[0], "Spec": {"Name": "c", "Data": base64.b64encode(b"x=1").decode()}})
    assert pretty.endswith("Data:\nx=1\n")


def test_secret_flag_short_and_long_forms() -> None:
    assert secret_ref("pw") == {"SecretName": "pw", "File": {"Name": "pw", "UID": "0", "GID": "0", "Mode": 0o444}}
    assert secret_ref("source=pw,target=app/key,uid=33,gid=44,mode=0400") == {
        "SecretName": "pw",
        "File": {"Name": "app/key", "UID": "33", "GID": "44", "Mode": 0o400},
    }
    for bad in ("target=x", "source=pw,bogus=1", "source=pw,mode=rw", "source=pw,uid=www"):
        with pytest.raises(argparse.ArgumentTypeError):
            secret_ref(bad)


def test_rotation_flags_replace_the_old_reference() -> None:
    args = build_parser().parse_args(
        ["service", "update", "--secret-rm", "old", "--secret-add", "source=new,target=key", "s"]
    )
    spec = {
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "x",
                "Secrets": [{"SecretName": "old", "SecretID": "i", "File": {"Name": "key"}}],
            }
        }
    }
    container = service_args.update_spec(spec, args)["TaskTemplate"]["ContainerSpec"]
    assert container["Secrets"] == [
        {"SecretName": "new", "File": {"Name": "key", "UID": "0", "GID": "0", "Mode": 0o444}}
    ]
    args = build_parser().parse_args(["service", "create", "--config", "source=c,target=/etc/c.conf", "busybox"])
    assert (
        service_args.create_spec(args)["TaskTemplate"]["ContainerSpec"]["Configs"][0]["File"]["Name"] == "/etc/c.conf"
    )
