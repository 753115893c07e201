"""`shoal service create|update --cap-add/--cap-drop`: create writes the lists, update applies docker's
add/remove tri-state against the service's current lists (docker/cli's updateCapabilities)."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.cli import service_args, service_container
from shoal.cli.main import build_parser
from shoal.model.service import validate_service_spec


def updated(container: dict[str, Any], *flags: str) -> dict[str, Any]:
    args = build_parser().parse_args(["service", "update", *flags, "web"])
    spec = service_args.update_spec({"Name": "web", "TaskTemplate": {"ContainerSpec": container}}, args)
    service_container.apply_update(spec["TaskTemplate"]["ContainerSpec"], args)
    return spec["TaskTemplate"]["ContainerSpec"]


@pytest.mark.parametrize(
    ("add", "drop", "flags", "want_add", "want_drop"),
    [
        # adding a capability the service does not drop adds it, keeping the others
        (["CAP_NET_ADMIN"], [], ["--cap-add", "sys_time"], ["CAP_NET_ADMIN", "CAP_SYS_TIME"], []),
        # adding one it drops only takes it off the drop list (tri-state), a second add adds it
        ([], ["CAP_CHOWN", "CAP_KILL"], ["--cap-add", "CHOWN"], [], ["CAP_KILL"]),
        # dropping one it adds only takes it off the add list
        (["CAP_NET_ADMIN", "CAP_SYS_TIME"], [], ["--cap-drop", "net_admin"], ["CAP_SYS_TIME"], []),
        # dropping another one drops it
        (["CAP_SYS_TIME"], ["CAP_KILL"], ["--cap-drop", "CAP_CHOWN"], ["CAP_SYS_TIME"], ["CAP_CHOWN", "CAP_KILL"]),
        # both in one update: adding wins, the drop is ignored
        ([], [], ["--cap-add", "NET_RAW", "--cap-drop", "net_raw"], ["CAP_NET_RAW"], []),
        # ALL stands alone once there
        (["CAP_SYS_TIME"], [], ["--cap-add", "ALL"], ["ALL"], []),
        # duplicates and case go
        (["CAP_SYS_TIME"], [], ["--cap-add", "cap_sys_time", "--cap-add", "SYS_TIME"], ["CAP_SYS_TIME"], []),
    ],
)
def test_update_merges_like_docker(add, drop, flags, want_add, want_drop) -> None:
    container = updated({"Image": "a", "CapabilityAdd": add, "CapabilityDrop": drop}, *flags)
    assert container["CapabilityAdd"] == want_add
    assert container.get("CapabilityDrop", []) == want_drop
    validate_service_spec({"Name": "web", "TaskTemplate": {"ContainerSpec": container}})


def test_add_of_a_dropped_capability_twice_ends_added() -> None:
    once = updated({"Image": "a", "CapabilityDrop": ["CAP_CHOWN"]}, "--cap-add", "CAP_CHOWN")
    assert once.get("CapabilityAdd", []) == [] and once["CapabilityDrop"] == []
    twice = updated(once, "--cap-add", "CAP_CHOWN")
    assert twice["CapabilityAdd"] == ["CAP_CHOWN"] and twice["CapabilityDrop"] == []


def test_update_without_the_flags_leaves_the_lists() -> None:
    container = {"Image": "a", "CapabilityAdd": ["net_admin"], "CapabilityDrop": ["CAP_KILL"]}
    assert updated(dict(container), "--env-add", "A=1")["CapabilityAdd"] == ["net_admin"]
    assert "CapabilityAdd" not in updated({"Image": "a"}, "--cap-drop", "KILL")


def test_create_writes_the_lists_as_given() -> None:
    args = build_parser().parse_args(
        ["service", "create", "--cap-add", "NET_ADMIN", "--cap-drop", "ALL", "--name", "w", "shoal/host"]
    )
    spec = service_args.create_spec(args)
    service_container.apply_create(spec["TaskTemplate"]["ContainerSpec"], args)
    container = spec["TaskTemplate"]["ContainerSpec"]
    assert container["CapabilityAdd"] == ["NET_ADMIN"] and container["CapabilityDrop"] == ["ALL"]
