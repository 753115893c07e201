"""docker `--change` instructions for `image import`."""

from __future__ import annotations

import pytest

from shoal.model.errors import SpecError
from shoal.runtime.changes import apply_changes


def test_entrypoint_and_cmd_exec_and_shell_forms() -> None:
    cfg = apply_changes(None, ['ENTRYPOINT ["/bin/app", "--flag"]', "CMD serve --port 80"])
    assert cfg["Entrypoint"] == ["/bin/app", "--flag"]
    assert cfg["Cmd"] == ["/bin/sh", "-c", "serve --port 80"]
    # a later ENTRYPOINT resets an inherited CMD, as in a Dockerfile
    assert apply_changes(cfg, ["entrypoint /x"])["Cmd"] is None


def test_env_forms() -> None:
    cfg = apply_changes(None, ['ENV A=1 B="two words"', "ENV C legacy value", "ENV A=3"])
    assert cfg["Env"] == ["B=two words", "C=legacy value", "A=3"]


def test_workdir_expose_user_label_volume() -> None:
    cfg = apply_changes(
        None,
        ["WORKDIR /srv", "WORKDIR app", "EXPOSE 8080 53/udp 9000-9001", "USER app:web", "LABEL a=b", "VOLUME /data"],
    )
    assert cfg["WorkingDir"] == "/srv/app"
    assert cfg["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}, "9000/tcp": {}, "9001/tcp": {}}
    assert cfg["User"] == "app:web"
    assert cfg["Labels"] == {"a": "b"}
    assert cfg["Volumes"] == {"/data": {}}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("RUN make", "'RUN' is not a valid change command"),
        ("EXPOSE http", "invalid port"),
        ("EXPOSE 70000", "invalid port range"),
        ("ENV", "requires at least one argument"),
        ("ENV A=1 B", "Must be of the form: name=value"),
        ("CMD", "requires at least one argument"),
    ],
)
def test_bad_changes(change: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        apply_changes(None, [change])
