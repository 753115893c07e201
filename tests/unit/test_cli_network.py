"""`shoal network`: pure formatting (ls table, inspect JSON, --format), create requests and their
local checks, filters; then every command against a real (tiny, in-process) HTTP server on a unix
socket that keeps networks in memory and records each request (no mocks)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from shoal.cli.errors import CLIError
from shoal.cli.network import (
    create_request,
    format_inspect,
    format_networks,
    network_row,
)
from shoal.cli.output import inspect_json
from shoal.errors import InvalidArgument
from shoal.manager.control.filters import filter_networks
from unit.test_cli_agent import FakeAgent, filtered, run

INGRESS_ID = "1qc6vhwhaeqn0n9z2hdlawz72"  # the seed tour's IDs
INTERNAL_ID = "kq7sc5qu1wlelrat8wnqob2g2"
GWBRIDGE_ID = "e73fde81ef50" + "4b1c" * 13
VXLAN = "com.docker.network.driver.overlay.vxlanid_list"


def overlay(net_id: str, name: str, subnet: str, vni: int, **extra: Any) -> dict[str, Any]:
    """A swarm network as GET /networks answers it (Docker Engine API `Network`)."""
    gateway = subnet.rsplit(".", 1)[0] + ".1"
    return {
        "Name": name,
        "Id": net_id,
        "Created": "2026-11-27T23:13:48.123456789Z",
        "Scope": "swarm",
        "Driver": "overlay",
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None, "Config": [{"Subnet": subnet, "Gateway": gateway}]},
        "Internal": False,
        "Attachable": False,
        "Ingress": False,
        "Containers": {},
        "Options": {VXLAN: str(vni)},
        "Labels": {},
        "Peers": [],
        **extra,
    }


def ingress() -> dict[str, Any]:
    net = overlay(INGRESS_ID, "ingress", "10.255.0.0/16", 4096, Ingress=True)
    net["Containers"] = {
        "ingress-sbox": {
            "Name": "ingress-endpoint",
            "EndpointID": "c8295e304e17f569575a6c0ba35c0d41a25515672776cf2da95f3715096ba442",
            "MacAddress": "02:42:0a:ff:00:03",
            "IPv4Address": "10.255.0.3/16",
            "IPv6Address": "",
        }
    }
    net["Peers"] = [
        {"Name": "swarm00", "IP": "10.213.0.10"},
        {"Name": "swarm01", "IP": "10.213.0.11"},
        {"Name": "swarm02", "IP": "10.213.0.12"},
    ]
    return net


def gwbridge() -> dict[str, Any]:
    net = overlay(GWBRIDGE_ID, "shoal_gwbridge", "172.18.0.0/16", 0, Scope="local", Driver="bridge")
    net["Options"] = {"com.docker.network.bridge.enable_icc": "false"}
    return net


def internal() -> dict[str, Any]:
    return overlay(INTERNAL_ID, "internal", "172.30.0.0/24", 4097, Attachable=True, Labels={"tier": "back"})


SEED = [internal(), gwbridge(), ingress()]


# --- ls ------------------------------------------------------------------------------------------------


def test_ls_table_matches_docker_columns_sorted_by_name() -> None:
    assert format_networks(SEED) == (
        "NETWORK ID     NAME             DRIVER    SCOPE\n"
        "1qc6vhwhaeqn   ingress          overlay   swarm\n"
        "kq7sc5qu1wle   internal         overlay   swarm\n"
        "e73fde81ef50   shoal_gwbridge   bridge    local\n"
    )


def test_ls_sorts_digits_as_numbers_and_handles_no_networks() -> None:
    nets = [overlay("b" * 25, "net10", "10.0.10.0/24", 4098), overlay("a" * 25, "net2", "10.0.2.0/24", 4099)]
    assert [line.split()[1] for line in format_networks(nets).splitlines()[1:]] == ["net2", "net10"]
    assert format_networks([]) == "NETWORK ID   NAME      DRIVER    SCOPE\n"


def test_ls_quiet_no_trunc_and_formats() -> None:
    assert format_networks(SEED, quiet=True) == "1qc6vhwhaeqn\nkq7sc5qu1wle\ne73fde81ef50\n"
    assert format_networks(SEED, quiet=True, trunc=False).splitlines() == [INGRESS_ID, INTERNAL_ID, GWBRIDGE_ID]
    assert format_networks(SEED, "{{.Name}}: {{.Labels}} {{.Internal}}") == (
        "ingress:  false\ninternal: tier=back false\nshoal_gwbridge:  false\n"
    )
    assert format_networks([internal()], "table {{.ID}}\t{{.IPv6}}\t{{.CreatedAt}}", trunc=False) == (
        "NETWORK ID                  IPV6      CREATED AT\n"
        f"{INTERNAL_ID}   false     2026-11-27 23:13:48.123456789 +0000 UTC\n"
    )
    (line,) = format_networks([internal()], "json").splitlines()
    assert json.loads(line) == {
        "CreatedAt": "2026-11-27 23:13:48.123456789 +0000 UTC",
        "Driver": "overlay",
        "ID": "kq7sc5qu1wle",
        "IPv6": "false",
        "Internal": "false",
        "Labels": "tier=back",
        "Name": "internal",
        "Scope": "swarm",
    }
    with pytest.raises(CLIError, match="can't evaluate field Subnet"):
        format_networks(SEED, "{{.Subnet}}")


def test_row_of_a_sparse_network_never_fails() -> None:
    assert network_row({"Name": "x"})["CreatedAt"] == ""
    assert network_row({"Name": "x", "Created": "not a time"})["CreatedAt"] == "not a time"


@pytest.mark.parametrize(
    ("filters", "names"),
    [
        ({"driver": ["overlay"]}, ["internal", "ingress"]),
        ({"driver": ["bridge"], "scope": ["local"]}, ["shoal_gwbridge"]),
        ({"name": ["in"]}, ["internal", "ingress"]),  # docker: equal, or found as a regex
        ({"name": ["^int"]}, ["internal"]),
        ({"name": ["ingress", "internal"]}, ["internal", "ingress"]),
        ({"name": ["[bad"]}, []),
        ({"id": ["kq7sc"]}, ["internal"]),
        ({"label": ["tier"]}, ["internal"]),
        ({"label": ["tier=front"]}, []),
        ({"type": ["builtin"]}, ["shoal_gwbridge", "ingress"]),
        ({"type": ["custom"]}, ["internal"]),
        ({"scope": ["swarm"], "name": ["gw"]}, []),
    ],
)
def test_filters(filters: dict[str, list[str]], names: list[str]) -> None:
    # the agent's filters (manager/control/filters.py) on the seed tour's networks
    assert [n["Name"] for n in filter_networks(SEED, filters, set())] == names


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"dangling": ["maybe"]}, "invalid filter 'dangling=maybe'"),
        ({"scope": ["cluster"]}, "invalid filter 'scope=cluster'"),
        ({"type": ["mine"]}, "invalid filter 'type=mine'"),
        ({"colour": ["red"]}, "invalid filter 'colour'"),
    ],
)
def test_bad_filters(filters: dict[str, list[str]], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        filter_networks(SEED, filters, set())


# --- inspect -------------------------------------------------------------------------------------------

SEED_INSPECT = """\
[
    {
        "Name": "ingress",
        "Id": "1qc6vhwhaeqn0n9z2hdlawz72",
        "Created": "2026-11-27T23:13:48.123456789Z",
        "Scope": "swarm",
        "Driver": "overlay",
        "EnableIPv6": false,
        "IPAM": {
            "Driver": "default",
            "Options": null,
            "Config": [
                {
                    "Subnet": "10.255.0.0/16",
                    "Gateway": "10.255.0.1"
                }
            ]
        },
        "Internal": false,
        "Attachable": false,
        "Ingress": true,
        "Containers": {
            "ingress-sbox": {
                "Name": "ingress-endpoint",
                "EndpointID": "c8295e304e17f569575a6c0ba35c0d41a25515672776cf2da95f3715096ba442",
                "MacAddress": "02:42:0a:ff:00:03",
                "IPv4Address": "10.255.0.3/16",
                "IPv6Address": ""
            }
        },
        "Options": {
            "com.docker.network.driver.overlay.vxlanid_list": "4096"
        },
        "Labels": {},
        "Peers": [
            {
                "Name": "swarm00",
                "IP": "10.213.0.10"
            },
            {
                "Name": "swarm01",
                "IP": "10.213.0.11"
            },
            {
                "Name": "swarm02",
                "IP": "10.213.0.12"
            }
        ]
    }
]
"""


def test_inspect_json_is_the_seed_shape_indented_by_4_in_api_key_order() -> None:
    assert inspect_json([ingress()]) == SEED_INSPECT
    assert inspect_json([]) == "[]\n"


def test_inspect_format_fields_paths_and_json() -> None:
    nets = [ingress(), internal()]
    assert format_inspect("{{.Name}} {{.Attachable}}", nets) == "ingress false\ninternal true\n"
    assert format_inspect("{{.Options.com}}", []) == ""  # nothing found: nothing to check it against
    text = format_inspect("{{json .IPAM.Config}} {{.IPAM.Driver}} {{json .Options}}", [internal()])
    # as docker's: a struct's fields in their order (Subnet, then Gateway), a map's keys sorted
    assert text == '[{"Subnet":"172.30.0.0/24","Gateway":"172.30.0.1"}] default {"' + VXLAN + '":"4097"}\n'
    # the Go-template evaluator every inspect uses: range, index, if
    text = format_inspect(
        '{{range .IPAM.Config}}{{.Subnet}} via {{.Gateway}}{{end}} {{index .Labels "tier"}}', [internal()]
    )
    assert text == "172.30.0.0/24 via 172.30.0.1 back\n"
    assert format_inspect("{{if .Attachable}}attachable{{end}} {{.Labels.nope}}|", [internal()]) == "attachable |\n"
    assert json.loads(format_inspect("json", [internal()]))["Labels"] == {"tier": "back"}
    assert json.loads(format_inspect("{{json .}}", [internal()]))["Id"] == INTERNAL_ID


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("{{.IPAM.Config.Subnet}}", r"at <\.IPAM\.Config\.Subnet>: can't evaluate field Subnet"),
        ("{{.IPAM.Nope}}", "can't evaluate field Nope"),
        ("{{.Nope}}", "can't evaluate field Nope"),
        ("{{range .IPAM.Config}}{{.Subnet}}", "unexpected EOF"),
        ("table {{.Name}}", "unsupported format 'table'"),
    ],
)
def test_inspect_format_errors(fmt: str, message: str) -> None:
    with pytest.raises(CLIError, match=message):
        format_inspect(fmt, [internal()])


# --- create: the request and its local checks -----------------------------------------------------------


def test_create_request_full_and_default() -> None:
    assert create_request(
        "internal",
        subnets=["172.30.0.0/24"],
        gateways=["172.30.0.254"],
        attachable=True,
        internal=True,
        labels=["tier=back", "team"],
        options=["encrypted", "a=b=c"],
    ) == {
        "Name": "internal",
        "Driver": "overlay",
        "Internal": True,
        "Attachable": True,
        "Ingress": False,
        "IPAM": {
            "Driver": "default",
            "Config": [{"Subnet": "172.30.0.0/24", "Gateway": "172.30.0.254"}],
            "Options": {},
        },
        "Options": {"encrypted": "", "a": "b=c"},
        "Labels": {"tier": "back", "team": ""},
    }
    body = create_request("back-end.v2_x")
    assert body["IPAM"] == {"Driver": "default", "Config": [], "Options": {}}
    assert (body["Driver"], body["Internal"], body["Attachable"], body["Labels"]) == ("overlay", False, False, {})
    assert create_request("n", subnets=["172.30.0.0/24"])["IPAM"]["Config"] == [{"Subnet": "172.30.0.0/24"}]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"driver": "bridge"}, "only overlay networks can be created in swarm scope"),
        ({"subnets": ["172.30.0.0/33"]}, "invalid CIDR address: 172.30.0.0/33"),
        ({"subnets": ["banana"]}, "invalid CIDR address: banana"),
        ({"subnets": ["172.30.0.0"]}, "prefix length is missing"),
        ({"subnets": ["172.30.0.5/24"]}, r"host bits are set \(did you mean 172.30.0.0/24\?\)"),
        ({"subnets": ["fd00::/64"]}, "only IPv4"),
        ({"subnets": ["172.30.0.0/30"]}, "/29 or larger"),
        ({"subnets": ["10.1.0.0/24", "10.2.0.0/24"]}, "only one --subnet"),
        ({"gateways": ["10.0.0.1"]}, "must have a corresponding subnet"),
        ({"subnets": ["172.30.0.0/24"], "gateways": ["172.31.0.1"]}, "no matching subnet for gateway 172.31.0.1"),
        ({"subnets": ["172.30.0.0/24"], "gateways": ["172.30.0.0"]}, "not a usable address"),
        ({"subnets": ["172.30.0.0/24"], "gateways": ["172.30.0.255"]}, "not a usable address"),
        ({"subnets": ["172.30.0.0/24"], "gateways": ["172.30.0.1/24"]}, "invalid gateway 172.30.0.1/24"),
        ({"labels": ["=x"]}, "invalid label"),
        ({"options": ["=x"]}, "invalid option"),
    ],
)
def test_create_request_refuses_bad_input(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(CLIError, match=message):
        create_request("internal", **kwargs)


@pytest.mark.parametrize("name", ["-x", "has space", "a/b", "x" * 64, ""])
def test_create_request_refuses_bad_names(name: str) -> None:
    with pytest.raises(CLIError, match="invalid network name"):
        create_request(name)


# --- against a fake agent -------------------------------------------------------------------------------


class FakeNetworks(FakeAgent):
    """FakeAgent plus networks and services in memory, answering as the agent's /networks does."""

    def __init__(self, sock: str) -> None:
        super().__init__(sock)
        self.networks: dict[str, dict[str, Any]] = {n["Id"]: n for n in (ingress(), gwbridge())}
        self.services: dict[str, dict[str, Any]] = {}

    def find_network(self, ref: str) -> dict[str, Any] | None:
        for match in (lambda n: n["Id"] == ref, lambda n: n["Name"] == ref, lambda n: n["Id"].startswith(ref)):
            found = [n for n in self.networks.values() if match(n)]
            if len(found) == 1:
                return found[0]
        return None

    def find_service(self, ref: str) -> dict[str, Any] | None:
        for s in self.services.values():
            if ref in (s["ID"], s["Spec"]["Name"]):
                return s
        return None

    def route(self, method: str, path: str, q: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if (method, path) == ("POST", "/networks/create"):
            if self.find_network(body["Name"]):
                return 409, {"message": f"network with name {body['Name']} already exists"}
            net_id = f"{len(self.networks):03d}newnet{body['Name']}".ljust(25, "x")[:25]
            config = body["IPAM"]["Config"] or [{"Subnet": f"10.0.{len(self.networks)}.0/24"}]
            self.networks[net_id] = overlay(net_id, body["Name"], config[0]["Subnet"], 4095 + len(self.networks))
            return 201, {"Id": net_id, "Warning": ""}
        if (method, path) == ("GET", "/networks"):
            in_use = {i for s in self.services.values() for i in s.get("_networks", ())}
            return filtered(
                q, lambda f: sorted(filter_networks(list(self.networks.values()), f, in_use), key=lambda n: n["Name"])
            )
        if parts[0] == "networks" and len(parts) == 2:
            net = self.find_network(parts[1])
            if net is None or (method == "DELETE" and parts[1] != net["Id"]):  # DELETE wants the ID
                return 404, {"message": f"network {parts[1]} not found"}
            if method == "GET":
                return 200, net
            if method == "DELETE":
                users = [s["Spec"]["Name"] for s in self.services.values() if net["Id"] in s.get("_networks", ())]
                if users:
                    return 409, {"message": f"network {net['Name']} is in use by service {', '.join(users)}"}
                if net["Scope"] == "local":
                    return 403, {"message": f"{net['Name']} is a pre-defined network and cannot be removed"}
                del self.networks[net["Id"]]
                return 204, None
        if (method, path) == ("GET", "/services"):
            return 200, list(self.services.values())
        if parts[0] == "services" and len(parts) == 2 and method == "GET":
            svc = self.find_service(parts[1])
            return (200, svc) if svc else (404, {"message": f"service {parts[1]} not found"})
        return super().route(method, path, q, body)

    def add_service(self, name: str, ports: list[dict[str, Any]], networks: tuple[str, ...] = ()) -> None:
        svc_id = f"{name}svc".ljust(25, "0")
        self.services[svc_id] = {
            "ID": svc_id,
            "Spec": {"Name": name, "TaskTemplate": {"Networks": [{"Target": n} for n in networks]}},
            "Endpoint": {"Spec": {"Mode": "vip"}, "Ports": ports},
            "_networks": networks,
        }


@pytest.fixture
def agent() -> Iterator[FakeNetworks]:
    # a short path: AF_UNIX paths are limited to 107 bytes, pytest's tmp_path can be longer
    with tempfile.TemporaryDirectory(prefix="shoalnet") as d:
        a = FakeNetworks(os.path.join(d, "shoal.sock"))
        yield a
        a.close()


Cap = pytest.CaptureFixture[str]


def test_create_prints_the_id_and_sends_docker_request(agent: FakeNetworks, capsys: Cap) -> None:
    rc, out, err = run(
        agent,
        capsys,
        *("network", "create", "--driver=overlay", "--subnet=172.30.0.0/24", "--attachable", "internal"),
    )
    assert (rc, err) == (0, "")
    net_id = out.strip()
    assert agent.networks[net_id]["Name"] == "internal"
    assert agent.requests[-1] == (
        "POST",
        "/networks/create",
        {},
        {
            "Name": "internal",
            "Driver": "overlay",
            "Internal": False,
            "Attachable": True,
            "Ingress": False,
            "IPAM": {"Driver": "default", "Config": [{"Subnet": "172.30.0.0/24"}], "Options": {}},
            "Options": {},
            "Labels": {},
        },
    )
    rc, out, err = run(agent, capsys, "network", "create", "-o", "k=v", "--label", "a=b", "--internal", "back")
    assert rc == 0
    body = agent.requests[-1][3]
    assert (body["Options"], body["Labels"], body["Internal"], body["IPAM"]["Config"]) == (
        {"k": "v"},
        {"a": "b"},
        True,
        [],
    )


def test_create_conflict_is_the_agents_message(agent: FakeNetworks, capsys: Cap) -> None:
    rc, out, err = run(agent, capsys, "network", "create", "ingress")
    assert (rc, out) == (1, "")
    assert err == "Error response from daemon: network with name ingress already exists\n"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--subnet", "172.30.0.0/33"), "invalid CIDR address: 172.30.0.0/33 (expected"),
        (("--subnet", "172.30.0.0/24", "--gateway", "10.0.0.1"), "no matching subnet for gateway 10.0.0.1"),
        (("--gateway", "10.0.0.1"), "every ip-range or gateway must have a corresponding subnet\n"),
        (("-d", "bridge"), "only overlay networks can be created in swarm scope"),
    ],
)
def test_create_bad_input_exits_1_before_any_call(agent: FakeNetworks, capsys: Cap, flags: Any, message: str) -> None:
    rc, out, err = run(agent, capsys, "network", "create", *flags, "internal")
    assert (rc, out) == (1, "")
    assert message in err and "Traceback" not in err
    assert agent.requests == []


def test_usage_errors_exit_2(agent: FakeNetworks, capsys: Cap) -> None:
    for argv in (("network", "create"), ("network", "rm"), ("network", "inspect"), ("network", "ls", "--nope")):
        with pytest.raises(SystemExit) as e:
            run(agent, capsys, *argv)
        assert e.value.code == 2
    assert agent.requests == []
    rc, out, _ = run(agent, capsys, "network")  # the group alone: its help, like docker
    assert rc == 0 and "inspect" in out and "create" in out


def test_ls_and_filters(agent: FakeNetworks, capsys: Cap) -> None:
    rc, out, _ = run(agent, capsys, "network", "ls")
    assert rc == 0
    assert out == (
        "NETWORK ID     NAME             DRIVER    SCOPE\n"
        "1qc6vhwhaeqn   ingress          overlay   swarm\n"
        "e73fde81ef50   shoal_gwbridge   bridge    local\n"
    )
    assert run(agent, capsys, "network", "ls", "-q", "--filter", "driver=overlay")[1] == "1qc6vhwhaeqn\n"
    assert run(agent, capsys, "network", "list", "--no-trunc", "-q", "-f", "scope=local")[1] == GWBRIDGE_ID + "\n"
    assert run(agent, capsys, "network", "ls", "--format", "{{.Name}}/{{.Driver}}", "-f", "name=gw")[1] == (
        "shoal_gwbridge/bridge\n"
    )
    rc, out, err = run(agent, capsys, "network", "ls", "-f", "colour=blue")
    assert (rc, out) == (1, "")
    assert "invalid filter 'colour'" in err  # the agent's refusal (400), printed


def test_inspect_found_and_missing(agent: FakeNetworks, capsys: Cap) -> None:
    rc, out, err = run(agent, capsys, "network", "inspect", "ingress")
    assert (rc, err) == (0, "")
    assert json.loads(out) == [ingress()]
    assert out.startswith('[\n    {\n        "Name": "ingress",\n        "Id": "1qc6vhwhaeqn0n9z2hdlawz72",\n')
    rc, out, err = run(agent, capsys, "network", "inspect", "1qc6", "nope")
    assert rc == 1
    assert [n["Id"] for n in json.loads(out)] == [INGRESS_ID]
    assert err == "Error: No such network: nope\n"
    rc, out, err = run(agent, capsys, "network", "inspect", "-f", "{{.Name}} {{json .IPAM.Config}}", "ingress")
    assert (rc, out) == (0, 'ingress [{"Subnet":"10.255.0.0/16","Gateway":"10.255.0.1"}]\n')
    rc, out, err = run(agent, capsys, "network", "inspect", "--format", "{{.Options}}", "shoal_gwbridge")
    assert (rc, out) == (0, "map[com.docker.network.bridge.enable_icc:false]\n")  # Go's map, as docker prints it


def test_rm_by_name_id_and_prefix_uses_the_full_id(agent: FakeNetworks, capsys: Cap) -> None:
    for name in ("a", "b", "c"):
        run(agent, capsys, "network", "create", name)
    ids = {n["Name"]: n["Id"] for n in agent.networks.values()}
    rc, out, err = run(agent, capsys, "network", "rm", "a", ids["b"], ids["c"][:10])
    assert (rc, out, err) == (0, f"a\n{ids['b']}\n{ids['c'][:10]}\n", "")
    assert agent.calls("DELETE") == [f"DELETE /networks/{ids[n]}" for n in ("a", "b", "c")]
    assert {n["Name"] for n in agent.networks.values()} == {"ingress", "shoal_gwbridge"}


def test_rm_reports_each_failure_and_removes_the_rest(agent: FakeNetworks, capsys: Cap) -> None:
    run(agent, capsys, "network", "create", "internal")
    run(agent, capsys, "network", "create", "spare")
    internal_id = next(n["Id"] for n in agent.networks.values() if n["Name"] == "internal")
    agent.add_service("nodejs", [], networks=(internal_id,))
    rc, out, err = run(agent, capsys, "network", "remove", "internal", "nope", "spare", "shoal_gwbridge")
    assert (rc, out) == (1, "spare\n")
    assert err == (
        "Error response from daemon: network internal is in use by service nodejs\n"
        "Error: No such network: nope\n"
        "Error response from daemon: shoal_gwbridge is a pre-defined network and cannot be removed\n"
    )
    assert {n["Name"] for n in agent.networks.values()} == {"ingress", "internal", "shoal_gwbridge"}
