"""shoal.cli: pure formatting, node resolution, filters, argument handling (no agent needed)."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from shoal.cli import args as argtypes
from shoal.cli.errors import APIError, CLIError
from shoal.cli.main import build_parser
from shoal.cli.node import (
    format_nodes,
    manager_status,
    node_row,
    resolve_node,
    sort_nodes,
    updated_spec,
    validate_update,
)
from shoal.cli.node_pretty import pretty_node
from shoal.cli.output import bytes_size, go_time, human_duration, render_format, table
from shoal.cli.swarm import (
    fallback_addr,
    init_request,
    init_text,
    join_command_text,
    join_request,
    manager_addr_from_info,
)
from shoal.cli.system import info_text, swarm_lines, version_text
from shoal.model.objects import new_node

NOW = "2026-11-27T23:13:48.123456789Z"
TLS = {
    "TrustRoot": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    "CertIssuerSubject": "MBM=",
    "CertIssuerPublicKey": "MFk=",
}


def node(node_id: str, host: str, role: str = "worker", **kw: Any) -> dict[str, Any]:
    return new_node(node_id, host, role, "10.213.0.10", NOW, engine_version="0.1.0", **kw)


# IDs from the seed tour; the tour lists swarm00 last, docker (and shoal) sort by hostname
SEED = [
    node("ickjus9bta1julsad2ls3paum", "swarm01", "manager", reachability="reachable"),
    node("ryc6zlbxrhvblc7lk8pl3jsva", "swarm02", "manager", reachability="unreachable", state="down"),
    node("tkxuxun03da7y2bozka50mpxi", "swarm00", "manager", leader=True, availability="drain"),
    node("mdmnfom70hh86go8up5zl272y", "swarm03", availability="pause", state="disconnected"),
]


# --- node ls ------------------------------------------------------------------------------------


def test_node_table_matches_docker_columns_and_widths() -> None:
    out = format_nodes(SEED, self_id="tkxuxun03da7y2bozka50mpxi")
    assert out == (
        "ID                            HOSTNAME   STATUS         AVAILABILITY   MANAGER STATUS   ENGINE VERSION\n"
        "tkxuxun03da7y2bozka50mpxi *   swarm00    Ready          Drain          Leader           0.1.0\n"
        "ickjus9bta1julsad2ls3paum     swarm01    Ready          Active         Reachable        0.1.0\n"
        "ryc6zlbxrhvblc7lk8pl3jsva     swarm02    Down           Active         Unreachable      0.1.0\n"
        "mdmnfom70hh86go8up5zl272y     swarm03    Disconnected   Pause                           0.1.0\n"
    )


def test_node_table_without_nodes_still_prints_the_header() -> None:
    assert format_nodes([]) == "ID        HOSTNAME   STATUS    AVAILABILITY   MANAGER STATUS   ENGINE VERSION\n"


def test_only_the_local_node_gets_a_star() -> None:
    lines = format_nodes(SEED, self_id="ickjus9bta1julsad2ls3paum").splitlines()
    assert [line.split()[1] == "*" for line in lines[1:]] == [False, True, False, False]
    assert "*" not in format_nodes(SEED, self_id="")


def test_quiet_prints_full_ids_sorted_by_hostname() -> None:
    assert format_nodes(SEED, quiet=True).split() == [
        "tkxuxun03da7y2bozka50mpxi",
        "ickjus9bta1julsad2ls3paum",
        "ryc6zlbxrhvblc7lk8pl3jsva",
        "mdmnfom70hh86go8up5zl272y",
    ]


def test_hostnames_sort_naturally_then_by_id() -> None:
    nodes = [node("b", "swarm10"), node("c", "swarm2"), node("z", "swarm1"), node("a", "swarm1")]
    assert [n["ID"] for n in sort_nodes(nodes)] == ["a", "z", "c", "b"]


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"role": "manager", "leader": True}, "Leader"),
        ({"role": "manager", "leader": True, "reachability": "unreachable"}, "Leader"),
        ({"role": "manager", "reachability": "reachable"}, "Reachable"),
        ({"role": "manager", "reachability": "unreachable"}, "Unreachable"),
        ({"role": "manager", "reachability": "unknown"}, "Unknown"),
        ({"role": "worker"}, ""),
    ],
)
def test_manager_status_mapping(kw: dict[str, Any], expected: str) -> None:
    role = kw.pop("role")
    assert manager_status(node("x", "h", role, **kw)) == expected


def test_node_row_fields_for_json_and_tls_status() -> None:
    n = node("abc", "swarm00", "manager", leader=True, tls=TLS)
    row = node_row(n, "abc", TLS)
    assert {k: v for k, v in row.items() if not k.startswith("_")} == {
        "ID": "abc",
        "Self": True,
        "Hostname": "swarm00",
        "Status": "Ready",
        "Availability": "Active",
        "ManagerStatus": "Leader",
        "EngineVersion": "0.1.0",
        "TLSStatus": "Ready",
    }
    assert node_row(n, "", {**TLS, "CertIssuerSubject": "other"})["TLSStatus"] == "Needs Rotation"
    assert node_row(n, "", None)["TLSStatus"] == "Unknown"


def test_node_ls_json_is_one_object_per_line_without_private_fields() -> None:
    out = format_nodes(SEED[:1], self_id="", fmt="json")
    assert out == (
        '{"Availability":"Active","EngineVersion":"0.1.0","Hostname":"swarm01","ID":"ickjus9bta1julsad2ls3paum",'
        '"ManagerStatus":"Reachable","Self":false,"Status":"Ready","TLSStatus":"Unknown"}\n'
    )


def test_node_ls_custom_templates() -> None:
    assert format_nodes(SEED, fmt="{{.Hostname}} {{.ManagerStatus}}") == (
        "swarm00 Leader\nswarm01 Reachable\nswarm02 Unreachable\nswarm03 \n"
    )
    assert format_nodes(SEED[:1], fmt="table {{.Hostname}}\\t{{.Self}}") == "HOSTNAME   SELF\nswarm01    false\n"
    assert format_nodes(SEED[:1], fmt="{{json .Hostname}}") == '"swarm01"\n'


@pytest.mark.parametrize(
    ("fmt", "message"),
    [("{{.Nope}}", "can't evaluate field Nope"), ("{{if .Self}}x{{end}}", "unsupported format")],
)
def test_bad_templates_are_refused_even_without_rows(fmt: str, message: str) -> None:
    with pytest.raises(CLIError, match=message):
        format_nodes([], fmt=fmt)


# --- filters ------------------------------------------------------------------------------------


def hosts(nodes: list[dict[str, Any]]) -> list[str]:
    return sorted(n["Description"]["Hostname"] for n in nodes)


def test_parse_filters() -> None:
    assert argtypes.parse_filters(["role=manager", "Role=worker", "node.label=a=b"]) == {
        "role": ["manager", "worker"],
        "node.label": ["a=b"],
    }
    with pytest.raises(CLIError, match="expected name=value"):
        argtypes.parse_filters(["role"])


# --- node references ------------------------------------------------------------------------------

REFS = [
    node("abc111", "alpha"),
    node("abc222", "beta"),
    node("def333", "abc"),  # a hostname that is also a prefix of other IDs
    node("fff444", "twin"),
    node("fff555", "twin"),
]


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("abc111", "abc111"),  # full ID
        ("beta", "abc222"),  # hostname
        ("abc1", "abc111"),  # unique prefix
        ("abc", "def333"),  # a hostname beats an ID prefix (SwarmKit's order)
        ("self", "abc222"),
    ],
)
def test_resolve_node(ref: str, expected: str) -> None:
    assert resolve_node(REFS, ref, self_id="abc222")["ID"] == expected


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("fff", "Error: node fff is ambiguous (2 matches found)"),
        ("twin", "Error: node twin is ambiguous (2 matches found)"),
        ("nope", "Error: No such node: nope"),
        ("", "Error: No such node: "),
    ],
)
def test_resolve_node_errors(ref: str, message: str) -> None:
    with pytest.raises(CLIError) as e:
        resolve_node(REFS, ref)
    assert e.value.message == message


def test_self_outside_a_swarm_is_an_error() -> None:
    with pytest.raises(CLIError, match="not part of a swarm"):
        resolve_node(REFS, "self", self_id="")


def test_a_full_id_wins_over_a_hostname() -> None:
    nodes = [node("abc111", "x"), node("zzz", "abc111")]
    assert resolve_node(nodes, "abc111")["ID"] == "abc111"


# --- node update ----------------------------------------------------------------------------------


def test_updated_spec_merges_in_docker_order_and_keeps_the_input() -> None:
    spec = {"Role": "worker", "Availability": "active", "Labels": {"a": "1", "b": "2"}}
    new = updated_spec(spec, availability="drain", role="manager", label_add=["c=3", "a=9", "flag"], label_rm=["b"])
    assert new == {"Role": "manager", "Availability": "drain", "Labels": {"a": "9", "c": "3", "flag": ""}}
    assert spec["Labels"] == {"a": "1", "b": "2"}
    # label-add runs before label-rm, as in docker
    assert updated_spec(spec, label_add=["z=1"], label_rm=["z"])["Labels"] == {"a": "1", "b": "2"}


def test_updated_spec_errors() -> None:
    with pytest.raises(CLIError, match="key nope doesn't exist in node's labels"):
        updated_spec({"Labels": {}}, label_rm=["nope"])
    with pytest.raises(CLIError, match="invalid label"):
        updated_spec({}, label_add=["=v"])


def test_validate_update() -> None:
    assert validate_update("DRAIN", "Manager") == ("drain", "manager")
    assert validate_update(None, None) == (None, None)
    with pytest.raises(CLIError, match="invalid availability 'busy'"):
        validate_update("busy", None)
    with pytest.raises(CLIError, match="invalid role 'boss'"):
        validate_update(None, "boss")


# --- node inspect --pretty ----------------------------------------------------------------------


def test_pretty_node_manager_with_tls() -> None:
    n = new_node(
        "tkxuxun03da7y2bozka50mpxi",
        "swarm00",
        "manager",
        "10.213.0.10",
        NOW,
        {"OS": "linux", "Architecture": "x86_64"},
        {"NanoCPUs": 4_000_000_000, "MemoryBytes": 1_044_275_200},
        {"zone": "a"},
        engine_version="0.1.0",
        tls=TLS,
        leader=True,
        labels={"dc": "east", "ssd": ""},
    )
    assert pretty_node(n) == (
        "ID:                     tkxuxun03da7y2bozka50mpxi\n"
        "Labels:\n"
        " - dc=east\n"
        " - ssd\n"
        "Hostname:               swarm00\n"
        "Joined at:              2026-11-27 23:13:48.123456789 +0000 UTC\n"
        "Status:\n"
        " State:                 Ready\n"
        " Availability:          Active\n"
        " Address:               10.213.0.10\n"
        "Manager Status:\n"
        " Address:               10.213.0.10:2377\n"
        " Raft Status:           Reachable\n"
        " Leader:                Yes\n"
        "Platform:\n"
        " Operating System:      linux\n"
        " Architecture:          x86_64\n"
        "Resources:\n"
        " CPUs:                  4\n"
        " Memory:                995.9MiB\n"
        "Engine Version:         0.1.0\n"
        "Engine Labels:\n"
        " - zone=a\n"
        "TLS Info:\n"
        " TrustRoot:\n"
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        " Issuer Subject:        MBM=\n"
        " Issuer Public Key:     MFk=\n"
    )


def test_pretty_worker_has_no_manager_status_nor_tls() -> None:
    out = pretty_node(node("w1", "swarm01"))
    assert "Manager Status" not in out and "TLS Info" not in out and "Labels" not in out
    assert " CPUs:                  0\n Memory:                0B\n" in out


# --- swarm ------------------------------------------------------------------------------------------

TOKEN = "SWMTKN-1-3mbvdd9cay5eobj2om2pg5bdnl22z0qntmvvvslzsyt14mhgro-2qdyke72teir2erm9tuezaudj"


def test_join_command_text() -> None:
    assert join_command_text("worker", TOKEN, "10.213.0.10:2377") == (
        "To add a worker to this swarm, run the following command:\n\n"
        f"    shoal swarm join --token {TOKEN} 10.213.0.10:2377\n\n"
    )


def test_init_text() -> None:
    assert init_text("tkxuxun03da7y2bozka50mpxi", TOKEN, "10.213.0.10:2377") == (
        "Swarm initialized: current node (tkxuxun03da7y2bozka50mpxi) is now a manager.\n\n"
        "To add a worker to this swarm, run the following command:\n\n"
        f"    shoal swarm join --token {TOKEN} 10.213.0.10:2377\n\n"
        "To add a manager to this swarm, run 'shoal swarm join-token manager' and follow the instructions.\n\n"
    )


def test_manager_address_from_info() -> None:
    info = {
        "Swarm": {
            "NodeID": "me",
            "NodeAddr": "10.213.0.11",
            "RemoteManagers": [
                {"NodeID": "other", "Addr": "10.213.0.10:2377"},
                {"NodeID": "me", "Addr": "10.213.0.11:2377"},
            ],
        }
    }
    assert manager_addr_from_info(info) == "10.213.0.11:2377"
    assert manager_addr_from_info({"Swarm": {"NodeID": "me"}}) == ""
    assert fallback_addr({"Swarm": {"NodeAddr": "10.213.0.12"}}) == "10.213.0.12:2377"
    assert fallback_addr({"Swarm": {"RemoteManagers": [{"NodeID": "x", "Addr": "10.213.0.10:2377"}]}}) == (
        "10.213.0.10:2377"
    )


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_init_request_body() -> None:
    args = parse(
        "swarm", "init", "--advertise-addr", "ens33", "--default-addr-pool", "10.10.0.0/16,10.20.0.0/16",
        "--default-addr-pool", "10.30.0.0/16", "--dispatcher-heartbeat", "1m30s", "--task-history-limit", "3",
    )  # fmt: skip
    assert init_request(args) == {
        "ListenAddr": "0.0.0.0:2377",
        "AdvertiseAddr": "ens33",
        "DefaultAddrPool": ["10.10.0.0/16", "10.20.0.0/16", "10.30.0.0/16"],
        "Spec": {"Dispatcher": {"HeartbeatPeriod": 90_000_000_000}, "Orchestration": {"TaskHistoryRetentionLimit": 3}},
    }
    assert init_request(parse("swarm", "init")) == {"ListenAddr": "0.0.0.0:2377", "AdvertiseAddr": "", "Spec": {}}


def test_join_request_body() -> None:
    args = parse("swarm", "join", "--token", TOKEN, "--advertise-addr", "10.213.0.11", "10.213.0.10:2377")
    assert join_request(args) == {
        "RemoteAddrs": ["10.213.0.10:2377"],
        "JoinToken": TOKEN,
        "ListenAddr": "0.0.0.0:2377",
        "AdvertiseAddr": "10.213.0.11",
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["swarm", "join", "10.213.0.10:2377"],  # no --token
        ["swarm", "join", "--token", "T"],  # no manager address
        ["swarm", "join-token"],
        ["swarm", "join-token", "admin"],
        ["swarm", "init", "--dispatcher-heartbeat", "soon"],
        ["swarm", "init", "--default-addr-pool", "10.0.0.0/99"],
        ["swarm", "update", "--task-history-limit", "-1"],
        ["node", "promote"],
        ["node", "update"],
        ["node", "rm"],
        ["node", "inspect"],
        ["bogus"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        parse(*argv)
    assert e.value.code == 2
    assert "usage: shoal" in capsys.readouterr().err


def test_aliases() -> None:
    assert parse("node", "list").func is parse("node", "ls").func
    assert parse("node", "remove", "x").func is parse("node", "rm", "x").func


# --- info and version -----------------------------------------------------------------------------

CLUSTER = {
    "ID": "n8v9vjxk1bqwqy6afoy7ap2tv",
    "Spec": {
        "Orchestration": {"TaskHistoryRetentionLimit": 5},
        "Raft": {"SnapshotInterval": 10000, "KeepOldSnapshots": 0, "ElectionTick": 10, "HeartbeatTick": 1},
        "Dispatcher": {"HeartbeatPeriod": 5_000_000_000},
        "CAConfig": {"NodeCertExpiry": 7_776_000_000_000_000},
        "EncryptionConfig": {"AutoLockManagers": False},
    },
    "DefaultAddrPool": ["10.0.0.0/8"],
    "SubnetSize": 24,
    "DataPathPort": 4789,
    "RootRotationInProgress": False,
}
ACTIVE = {
    "LocalNodeState": "active",
    "NodeID": "tkxuxun03da7y2bozka50mpxi",
    "NodeAddr": "10.213.0.10",
    "ControlAvailable": True,
    "Managers": 1,
    "Nodes": 3,
    "Cluster": CLUSTER,
    "RemoteManagers": [{"NodeID": "tkxuxun03da7y2bozka50mpxi", "Addr": "10.213.0.10:2377"}],
}


def test_swarm_lines_manager() -> None:
    assert swarm_lines(ACTIVE) == [
        " Swarm: active",
        "  NodeID: tkxuxun03da7y2bozka50mpxi",
        "  Is Manager: true",
        "  ClusterID: n8v9vjxk1bqwqy6afoy7ap2tv",
        "  Managers: 1",
        "  Nodes: 3",
        "  Default Address Pool: 10.0.0.0/8",
        "  SubnetSize: 24",
        "  Data Path Port: 4789",
        "  Orchestration:",
        "   Task History Retention Limit: 5",
        "  Raft:",
        "   Snapshot Interval: 10000",
        "   Number of Old Snapshots to Retain: 0",
        "   Heartbeat Tick: 1",
        "   Election Tick: 10",
        "  Dispatcher:",
        "   Heartbeat Period: 5 seconds",
        "  CA Configuration:",
        "   Expiry Duration: 3 months",
        "   Force Rotate: 0",
        "  Autolock Managers: false",
        "  Root Rotation In Progress: false",
        "  Node Address: 10.213.0.10",
        "  Manager Addresses:",
        "   10.213.0.10:2377",
    ]


def test_swarm_lines_show_shoals_raft_and_session_views() -> None:
    swarm = {
        **ACTIVE,
        "RemoteManagers": None,
        "Raft": {"Leader": "10.213.0.10:2378", "Members": ["10.213.0.10:2378", "10.213.0.11:2378"], "Quorum": True},
        "Session": {"Connected": False, "Error": None, "Peers": [{"Addr": "x"}]},
    }
    assert swarm_lines(swarm)[-7:] == [
        "  Node Address: 10.213.0.10",
        "  Raft Leader: 10.213.0.10:2378",
        "  Raft Members: 10.213.0.10:2378, 10.213.0.11:2378",
        "  Raft Quorum: true",
        "  Session Connected: false",
        "  Session Error: ",
        '  Session Peers: [{"Addr":"x"}]',
    ]


def test_swarm_lines_worker_and_inactive() -> None:
    worker = {**ACTIVE, "ControlAvailable": False, "Cluster": None}
    assert swarm_lines(worker)[:3] == [" Swarm: active", "  NodeID: tkxuxun03da7y2bozka50mpxi", "  Is Manager: false"]
    assert "  ClusterID" not in "\n".join(swarm_lines(worker))
    assert swarm_lines({"LocalNodeState": "inactive"}) == [" Swarm: inactive"]


def test_info_text_prints_what_the_agent_has() -> None:
    info = {
        "ServerVersion": "0.1.0",
        "Swarm": {"LocalNodeState": "inactive"},
        "Shoal": {"LoadBalancerBackend": "nftables", "DataplaneMode": "kernel", "TaskRuntime": "oci"},
        "DefaultRuntime": "runc",
        "Runtimes": {"runc": {"path": "/usr/sbin/runc"}},
        "KernelVersion": "6.1.0",
        "NCPU": 4,
        "MemTotal": 8_232_370_176,
        "Name": "swarm00",
        "Debug": False,
    }
    assert info_text(info) == (
        "Server:\n"
        " Server Version: 0.1.0\n"
        " Swarm: inactive\n"
        " Load balancer backend: nftables\n"
        " Dataplane Mode: kernel\n"
        " Task driver: oci\n"
        " Runtimes: runc\n"
        " Default Runtime: runc\n"
        " Kernel Version: 6.1.0\n"
        " CPUs: 4\n"
        " Total Memory: 7.667GiB\n"
        " Name: swarm00\n"
        " Debug Mode: false\n"
    )


def test_version_text() -> None:
    server = {
        "Platform": {"Name": "shoal"},
        "Version": "0.1.0",
        "ApiVersion": "1.56",
        "MinAPIVersion": "1.24",
        "Os": "linux",
        "Arch": "amd64",
        "Components": [{"Name": "Engine", "Version": "0.1.0"}, {"Name": "pysyncobj", "Version": "0.3.17"}],
    }
    out = version_text(server, "unix:///run/shoal/shoal.sock")
    assert out.startswith("Client:\n Version:           0.1.0\n Python version:    3.")
    assert out.endswith(
        "\nServer: shoal\n Engine:\n"
        "  Version:          0.1.0\n"
        "  API version:      1.56 (minimum version 1.24)\n"
        "  OS/Arch:          linux/amd64\n"
        "  Experimental:     false\n"
        " pysyncobj:\n"
        "  Version:          0.3.17\n"
    )
    assert "Server" not in version_text(None, "unix:///x")


# --- output helpers -------------------------------------------------------------------------------


def test_table_pads_like_tabwriter() -> None:
    assert table([["a", "bb", "c"], ["dddddddddd", "", "e"]]) == "a            bb        c\ndddddddddd             e\n"
    assert table([["k:", "v"]], min_width=20, padding=1) == "k:                  v\n"
    assert table([]) == ""


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "Less than a second"),
        (1_000_000_000, "1 second"),
        (5_000_000_000, "5 seconds"),
        (60_000_000_000, "About a minute"),
        (45 * 60_000_000_000, "45 minutes"),
        (3600_000_000_000, "About an hour"),
        (30 * 3600_000_000_000, "30 hours"),
        (5 * 86400_000_000_000, "5 days"),
        (21 * 86400_000_000_000, "3 weeks"),
        (90 * 86400_000_000_000, "3 months"),
        (800 * 86400_000_000_000, "2 years"),
    ],
)
def test_human_duration(ns: int, text: str) -> None:
    assert human_duration(ns) == text


def test_bytes_size_and_go_time() -> None:
    assert [bytes_size(x) for x in (0, 1023, 1024, 1_044_275_200, 8_232_370_176)] == [
        "0B",
        "1023B",
        "1KiB",
        "995.9MiB",
        "7.667GiB",
    ]
    assert go_time("2026-11-27T23:13:48Z") == "2026-11-27 23:13:48 +0000 UTC"
    assert go_time("2026-11-27T23:13:48.5+01:00") == "2026-11-27 22:13:48.5 +0000 UTC"
    assert go_time("yesterday") == "yesterday"


def test_render_format_json_of_whole_rows() -> None:
    rows = [{"A": 1, "_hidden": "x", "B": True}]
    assert render_format("json", rows, default_table="table {{.A}}", headers={}) == '{"A":1,"B":true}\n'
    assert render_format("{{json .}}", rows, default_table="table {{.A}}", headers={}) == '{"A":1,"B":true}\n'
    assert render_format("table", rows, default_table="table {{.A}}\t{{.B}}", headers={"A": "AA"}) == (
        "AA        B\n1         true\n"
    )


def test_api_error_wording() -> None:
    e = APIError(404, "node x not found")
    assert (str(e), e.status, e.message) == ("Error response from daemon: node x not found", 404, "node x not found")
