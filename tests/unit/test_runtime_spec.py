"""Command, environment, user and limit resolution of a task spec against its image (pure)."""

from __future__ import annotations

import pytest

from shoal.model.errors import SpecError
from shoal.runtime.base import ExitStatus, RuntimeDriverError
from shoal.runtime.spec import (
    DEFAULT_PATH,
    final_env,
    hostname_for,
    limits_for,
    merge_env,
    netns_name,
    resolve_argv,
    resolve_user,
    stop_grace,
    working_dir,
)

IMAGE = {"Entrypoint": ["/entry", "-x"], "Cmd": ["serve", "--port", "80"], "Env": ["A=1", "B=2"], "WorkingDir": "/app"}

PASSWD = """root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
# a comment
app:x:1000:1000:App:/home/app:/bin/sh
"""
GROUP = """root:x:0:
daemon:x:1:
app:x:1000:
web:x:33:app,other
audio:x:29:other,app
"""


@pytest.mark.parametrize(
    ("spec", "argv"),
    [
        ({}, ["/entry", "-x", "serve", "--port", "80"]),
        ({"Args": ["debug"]}, ["/entry", "-x", "debug"]),  # Args replace Cmd only
        ({"Command": ["sleep"]}, ["sleep"]),  # Command replaces Entrypoint and drops Cmd
        ({"Command": ["sleep"], "Args": ["30"]}, ["sleep", "30"]),
    ],
)
def test_command_resolution_like_docker(spec: dict, argv: list[str]) -> None:
    assert resolve_argv(IMAGE, spec) == argv


def test_host_image_runs_args_and_needs_a_command() -> None:
    host = {"Entrypoint": None, "Cmd": None}
    assert resolve_argv(host, {"Args": ["sleep", "3600"]}) == ["sleep", "3600"]
    with pytest.raises(RuntimeDriverError, match="no command specified"):
        resolve_argv(host, {})


def test_env_merge_replaces_in_place_and_unsets_bare_keys() -> None:
    assert merge_env(["A=1", "B=2", "C=3"], ["B=20", "D=4", "C"]) == ["A=1", "B=20", "D=4"]


def test_final_env_adds_path_hostname_home() -> None:
    env = final_env(["A=1"], "web1", "/root")
    assert env == [f"PATH={DEFAULT_PATH}", "HOSTNAME=web1", "A=1", "HOME=/root"]
    kept = final_env(["PATH=/x", "HOME=/h", "HOSTNAME=old"], "web1", "/root")
    assert kept == ["HOSTNAME=web1", "PATH=/x", "HOME=/h"]


def test_working_dir_spec_over_image_and_absolute() -> None:
    assert working_dir(IMAGE, {}) == "/app"
    assert working_dir(IMAGE, {"Dir": "/tmp"}) == "/tmp"
    assert working_dir({}, {}) == "/"
    with pytest.raises(SpecError, match="absolute"):
        working_dir({}, {"Dir": "rel"})


@pytest.mark.parametrize(
    ("user", "uid", "gid", "groups", "home"),
    [
        ("", 0, 0, (), "/root"),
        ("root", 0, 0, (), "/root"),
        ("app", 1000, 1000, (33, 29), "/home/app"),  # supplementary groups from /etc/group
        ("1000", 1000, 1000, (33, 29), "/home/app"),
        ("app:web", 1000, 33, (), "/home/app"),  # an explicit group: no supplementary ones
        ("app:29", 1000, 29, (), "/home/app"),
        ("4242", 4242, 0, (), "/"),  # numeric and unknown: allowed, as runc does
        ("4242:4343", 4242, 4343, (), "/"),
    ],
)
def test_user_resolution_like_runc(user: str, uid: int, gid: int, groups: tuple[int, ...], home: str) -> None:
    u = resolve_user(user, PASSWD, GROUP)
    assert (u.uid, u.gid, u.groups, u.home) == (uid, gid, groups, home)


def test_unknown_user_or_group_names_are_errors() -> None:
    with pytest.raises(RuntimeDriverError, match="unable to find user nobody: no matching entries in passwd file"):
        resolve_user("nobody", PASSWD, GROUP)
    with pytest.raises(RuntimeDriverError, match="unable to find group staff"):
        resolve_user("app:staff", PASSWD, GROUP)
    assert resolve_user("", "", "").uid == 0  # a root filesystem without /etc/passwd


def test_limits_memory_minimum_and_cpu_quota() -> None:
    task = {"Spec": {"Resources": {"Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 64 << 20}}}}
    limits = limits_for(task)
    assert limits.any and limits.cpu_quota_us == 50_000 and limits.memory_bytes == 64 << 20
    assert not limits_for({"Spec": {}}).any
    with pytest.raises(SpecError, match="minimum memory limit allowed is 4MB"):
        limits_for({"Spec": {"Resources": {"Limits": {"MemoryBytes": 4 * 1024 * 1024 - 1}}}})
    assert limits_for({"Spec": {"Resources": {"Limits": {"MemoryBytes": 4 << 20}}}}).memory_bytes == 4 << 20
    assert limits_for({"Spec": {"Resources": {"Limits": {"NanoCPUs": 1000}}}}).cpu_quota_us == 1000  # kernel minimum


def test_hostname_netns_and_grace_defaults() -> None:
    task = {"ID": "abcdefghijklmnopqrstuvwxy", "Spec": {"ContainerSpec": {}}}
    assert hostname_for(task) == "abcdefghijkl"
    assert hostname_for({"ID": "x", "Spec": {"ContainerSpec": {"Hostname": "web"}}}) == "web"
    assert netns_name(task["ID"]) == "task-abcdefghijkl"
    assert stop_grace({}) == 10.0
    assert stop_grace({"StopGracePeriod": 2_500_000_000}) == 2.5


def test_exit_status_messages() -> None:
    assert ExitStatus(exit_code=137, signal=9).message == "task: non-zero exit (137)"
    assert ExitStatus(exit_code=0).message == ""
    assert ExitStatus(exit_code=127, error="starting task failed: x").message == "starting task failed: x"
