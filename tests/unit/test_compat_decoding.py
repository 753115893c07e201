"""Pieces real docker clients rely on: network create bodies decoded as Go does (case-insensitive
names), network settings shoal does not act on yet refused, and the log details prefix the docker
CLI parses (cli/command/service/logs.go: `k=v,k=v ` with query-escaped keys and values)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

import pytest

from shoal.api.logs import details_prefix, task_context
from shoal.errors import SpecError
from shoal.manager.control import services as services_control
from shoal.model.network import validate_create


def test_network_create_fields_match_case_insensitively() -> None:
    req = validate_create(
        {"name": "backend", "driver": "overlay", "attachable": True, "ipam": {"config": [{"subnet": "10.9.0.0/24"}]}},
        [],
    )
    assert (req["Name"], req["Subnet"], req["Gateway"], req["Attachable"]) == (
        "backend",
        "10.9.0.0/24",
        "10.9.0.1",
        True,
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"IPAM": {"Driver": "dhcp"}}, "IPAM.Driver 'dhcp' is not supported yet"),
        ({"IPAM": {"Config": [{"Subnet": "10.9.0.0/24", "IPRange": "10.9.0.0/25"}]}}, "IPAM.Config.IPRange"),
        ({"IPAM": {"Config": [{"Subnet": "10.9.0.0/24", "AuxiliaryAddresses": {"a": "10.9.0.9"}}]}}, "Auxiliary"),
        ({"Scope": "local"}, "Scope 'local' is not supported yet"),
        ({"ConfigOnly": True}, "ConfigOnly True is not supported yet"),
        ({"EnableIPv4": False}, "EnableIPv4 False is not supported yet"),
        ({"Encrypted": True}, "unknown field 'Encrypted' in network create request"),
    ],
)
def test_network_settings_not_acted_on_are_refused(body: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as exc:
        validate_create({"Name": "n", "Driver": "overlay", **body}, [])
    assert message in exc.value.message
    assert exc.value.status == 400


def test_network_create_as_the_docker_cli_sends_it_passes() -> None:
    body = {
        "Name": "n",
        "CheckDuplicate": True,
        "Driver": "overlay",
        "Scope": "",
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": {}, "Config": [{"Subnet": "10.9.0.0/24"}]},
        "Internal": False,
        "Attachable": True,
        "Ingress": False,
        "ConfigOnly": False,
        "ConfigFrom": None,
        "Options": {},
        "Labels": {},
    }
    assert validate_create(body, [])["Subnet"] == "10.9.0.0/24"


def parse_details_as_docker_cli(text: str) -> dict[str, str]:
    """A transcription of the docker CLI's logdetails.ParseLogDetails."""
    out = {}
    for pair in text.split(","):
        parts = pair.split("=", 1)
        if len(parts) != 2:
            raise ValueError("invalid details format")
        out[unquote_plus(parts[0])] = unquote_plus(parts[1])
    return out


def test_details_prefix_is_what_the_docker_cli_parses() -> None:
    task = {"ID": "t1", "NodeID": "n1", "ServiceID": "s1"}
    line = details_prefix(task_context(task)) + b"Hello world\n"
    # the CLI splits the line at the first space: details, then the message
    details, message = line.decode().split(" ", 1)
    assert message == "Hello world\n"
    assert parse_details_as_docker_cli(details) == {
        "com.docker.swarm.node.id": "n1",
        "com.docker.swarm.service.id": "s1",
        "com.docker.swarm.task.id": "t1",
    }
    assert details.startswith("com.docker.swarm.node.id=n1,")  # sorted by key, as Docker writes them


def test_details_are_query_escaped() -> None:
    raw = details_prefix({"b": "x y,z=1", "a": "é"})
    assert raw == b"a=%C3%A9,b=x+y%2Cz%3D1 "
    assert parse_details_as_docker_cli(raw.decode().rstrip(" ")) == {"a": "é", "b": "x y,z=1"}


class FakeStore:
    """A StoreReader over plain lists (an empty cluster but for what a test puts in)."""

    def __init__(self, **objects: list[dict[str, Any]]) -> None:
        self.objects = objects

    def get(self, kind: str, obj_id: str) -> dict[str, Any] | None:
        return next((o for o in self.list(kind) if o["ID"] == obj_id), None)

    def list(self, kind: str) -> list[dict[str, Any]]:
        return [dict(o) for o in self.objects.get(kind, [])]

    def list_shared(self, kind: str) -> list[dict[str, Any]]:
        return list(self.objects.get(kind, []))

    def find_by_name(self, kind: str, name: str) -> dict[str, Any] | None:
        return next((o for o in self.list(kind) if o["Spec"]["Name"] == name), None)


@pytest.mark.parametrize("key", ["Name", "name", "NAME"])
def test_service_create_takes_the_name_in_any_case(key: str) -> None:
    service, _ = services_control.create(FakeStore(), {key: "web", "taskTemplate": {"containerSpec": {"image": "i"}}})
    assert service["Spec"]["Name"] == "web"
    assert service["Spec"]["TaskTemplate"]["Runtime"] == "container"
    unnamed, _ = services_control.create(FakeStore(), {key: "", "TaskTemplate": {"ContainerSpec": {"Image": "i"}}})
    assert unnamed["Spec"]["Name"] not in ("", "web")  # generated, as dockerd names an unnamed service
