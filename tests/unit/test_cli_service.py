"""shoal.cli service/ps/exec/kill/image: pure formatting, flag → ServiceSpec translation, update
merging, progress and log demultiplexing (no agent needed)."""

from __future__ import annotations

import argparse
import io
import json
from typing import Any

import pytest

from shoal.cli import service_args as sa
from shoal.cli.errors import CLIError
from shoal.cli.image import format_images, human_size, import_request, split_reference
from shoal.cli.main import build_parser
from shoal.cli.service import (
    format_services,
    format_tasks,
    ports_text,
    since_value,
    status_from_tasks,
    task_name,
)
from shoal.cli.service_logs import Demuxer, Lines, LogFormatter, parse_details
from shoal.cli.service_pretty import go_float, pretty_service
from shoal.cli.service_progress import Tracker, View, bar, trunc_error, up_to_date
from shoal.cli.tasks import command_text, exec_env, format_local_tasks, local_name, signal_name, status_text
from shoal.model.ids import parse_rfc3339

NOW = "2026-11-27T23:13:48.123456789Z"
NOW_NS = parse_rfc3339(NOW)
SVC_ID = "lo6p4xrhlz3nnlo06yg5yn1jy"
NODES = {"ickjus9bta1julsad2ls3paum": "swarm01", "ryc6zlbxrhvblc7lk8pl3jsva": "swarm02"}
IMAGE = "kalise/nodejs-web-app:latest"


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def create(*flags: str, image: str = "shoal/host") -> dict[str, Any]:
    return sa.create_spec(parse("service", "create", *flags, image), lambda ref: f"id-{ref}")


def update(spec: dict[str, Any], *flags: str) -> dict[str, Any]:
    return sa.update_spec(spec, parse("service", "update", *flags, "web"), lambda ref: f"id-{ref}")


def ago(seconds: float) -> str:
    from shoal.model.ids import format_rfc3339

    return format_rfc3339(NOW_NS - int(seconds * 1e9))


def seed_service(**spec_extra: Any) -> dict[str, Any]:
    spec = create("--name", "nodejs", "--replicas", "1", "--publish", "80:8080", "--constraint", "node.role==worker")
    spec["TaskTemplate"]["ContainerSpec"]["Image"] = IMAGE
    spec["UpdateConfig"] = dict(sa.UPDATE_DEFAULTS)
    spec.update(spec_extra)
    return {
        "ID": SVC_ID,
        "Version": {"Index": 12},
        "CreatedAt": NOW,
        "Spec": spec,
        "Endpoint": {"Spec": spec["EndpointSpec"], "Ports": spec["EndpointSpec"]["Ports"]},
        "ServiceStatus": {"RunningTasks": 1, "DesiredTasks": 1},
    }


def task(task_id: str, slot: int, node: str, state: str, *, desired: str = "running", age: float = 120, **kw: Any):
    t: dict[str, Any] = {
        "ID": task_id,
        "ServiceID": SVC_ID,
        "Slot": slot,
        "NodeID": node,
        "CreatedAt": ago(age + 1),
        "DesiredState": desired,
        "Spec": {"ContainerSpec": {"Image": IMAGE}},
        "Status": {"State": state, "Timestamp": ago(age), **kw},
    }
    return t


# --- value types ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("64M", 64 << 20), ("1g", 1 << 30), ("512k", 512 << 10), ("1.5GiB", 3 << 29), ("4096", 4096), ("2 mb", 2 << 20)],
)
def test_memory_uses_docker_binary_units(text: str, expected: int) -> None:
    assert sa.memory_bytes(text) == expected


@pytest.mark.parametrize("text", ["64X", "-1m", "", "m", "1.2.3g"])
def test_bad_memory_is_a_usage_error(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        sa.memory_bytes(text)


def test_cpus_become_nano_cpus() -> None:
    assert sa.nano_cpus("0.5") == 500_000_000
    assert sa.nano_cpus("2") == 2_000_000_000
    assert sa.nano_cpus("0.000000001") == 1
    for bad in ("0.0000000001", "-1", "half"):
        with pytest.raises(argparse.ArgumentTypeError):
            sa.nano_cpus(bad)


def test_ports_short_and_long_syntax() -> None:
    tcp = {"Protocol": "tcp", "PublishMode": "ingress"}
    assert sa.port_configs("80:8080") == [{**tcp, "TargetPort": 8080, "PublishedPort": 80}]
    assert sa.port_configs("8080") == [{**tcp, "TargetPort": 8080, "PublishedPort": 0}]
    assert sa.port_configs("53:53/UDP")[0]["Protocol"] == "udp"
    assert [(p["PublishedPort"], p["TargetPort"]) for p in sa.port_configs("8080-8081:80-81")] == [
        (8080, 80),
        (8081, 81),
    ]
    assert sa.port_configs("mode=host,target=8080,published=80") == [
        {"Protocol": "tcp", "TargetPort": 8080, "PublishedPort": 80, "PublishMode": "host"}
    ]
    assert sa.port_configs("target=53,protocol=udp")[0] == {
        "Protocol": "udp",
        "TargetPort": 53,
        "PublishedPort": 0,
        "PublishMode": "ingress",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("published=80", "missing mandatory field 'target'"),
        ("target=80,mode=bridge", "invalid publish mode"),
        ("target=80,protocol=icmp", "invalid protocol"),
        ("target=80,color=red", "invalid field key: color"),
        ("80:8080/icmp", "invalid proto"),
        ("0.0.0.0:80:8080", "hostip is not supported"),
        ("80-82:80-81", "invalid ranges"),
        ("80:70000", "invalid target port"),
        ("x:80", "invalid published port"),
    ],
)
def test_bad_ports_are_refused(text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        sa.port_configs(text)


def test_placement_pref_network_and_scale_specs() -> None:
    assert sa.placement_pref("spread=node.labels.zone") == {"Spread": {"SpreadDescriptor": "node.labels.zone"}}
    with pytest.raises(argparse.ArgumentTypeError, match="only spread"):
        sa.placement_pref("pack=node.labels.zone")
    assert sa.network("internal") == {"Target": "internal"}
    assert sa.network("name=backend,alias=api,alias=db") == {"Target": "backend", "Aliases": ["api", "db"]}
    assert sa.parse_scale("web=3") == ("web", 3)
    for bad in ("web", "web=-1", "=3", "web=x"):
        with pytest.raises(CLIError):
            sa.parse_scale(bad)


# --- create: flag → ServiceSpec -------------------------------------------------------------------


def test_create_seed_service_spec() -> None:
    spec = create("--replicas", "1", "--name", "nodejs", "--publish", "80:8080", "--constraint", "node.role==worker")
    assert spec == {
        "Name": "nodejs",
        "TaskTemplate": {
            "ContainerSpec": {"Image": "shoal/host"},
            "Resources": {"Limits": {}, "Reservations": {}},
            "Placement": {"Constraints": ["node.role==worker"]},
            "ForceUpdate": 0,
        },
        "Mode": {"Replicated": {"Replicas": 1}},
        "EndpointSpec": {
            "Mode": "vip",
            "Ports": [{"Protocol": "tcp", "TargetPort": 8080, "PublishedPort": 80, "PublishMode": "ingress"}],
        },
    }


def test_create_every_flag_family() -> None:
    args = parse(
        "service", "create", "--name", "web", "--replicas", "3", "--constraint", "node.role==worker",
        "--placement-pref", "spread=node.labels.zone", "--max-replicas", "2", "-e", "A=1", "--env", "B",
        "-w", "/srv", "-u", "nobody", "--hostname", "h1", "--entrypoint", "python3 -u",
        "--restart-condition", "on-failure", "--restart-delay", "2s", "--restart-max-attempts", "3",
        "--restart-window", "1m", "--update-parallelism", "2", "--update-delay", "10s",
        "--update-failure-action", "rollback", "--update-monitor", "30s", "--update-max-failure-ratio", "0.2",
        "--update-order", "start-first", "--rollback-parallelism", "0", "--rollback-failure-action", "continue",
        "--limit-cpu", "0.5", "--limit-memory", "64M", "--reserve-cpu", "0.25", "--reserve-memory", "1g",
        "--stop-grace-period", "30s", "--label", "tier=front", "--container-label", "c=1",
        "--network", "internal", "--network", "name=backend,alias=api",
        "-p", "80:8080", "-p", "mode=host,target=9090,published=9091,protocol=udp", "--endpoint-mode", "dnsrr",
        "shoal/host", "sleep", "3600",
    )  # fmt: skip
    spec = sa.create_spec(args, lambda ref: f"id-{ref}")
    t = spec["TaskTemplate"]
    assert t["ContainerSpec"] == {
        "Image": "shoal/host",
        "Command": ["python3", "-u"],
        "Args": ["sleep", "3600"],
        "Env": ["A=1", "B"],
        "Labels": {"c": "1"},
        "Dir": "/srv",
        "User": "nobody",
        "Hostname": "h1",
        "StopGracePeriod": 30 * 10**9,
    }
    assert t["Resources"] == {
        "Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 64 << 20},
        "Reservations": {"NanoCPUs": 250_000_000, "MemoryBytes": 1 << 30},
    }
    assert t["Placement"] == {
        "Constraints": ["node.role==worker"],
        "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}],
        "MaxReplicas": 2,
    }
    assert t["RestartPolicy"] == {"Condition": "on-failure", "Delay": 2 * 10**9, "MaxAttempts": 3, "Window": 60 * 10**9}
    assert t["Networks"] == [{"Target": "id-internal"}, {"Target": "id-backend", "Aliases": ["api"]}]
    assert spec["Labels"] == {"tier": "front"}
    assert spec["Mode"] == {"Replicated": {"Replicas": 3}}
    assert spec["UpdateConfig"] == {
        "Parallelism": 2,
        "Delay": 10 * 10**9,
        "FailureAction": "rollback",
        "Monitor": 30 * 10**9,
        "MaxFailureRatio": 0.2,
        "Order": "start-first",
    }
    # a family that is named gets SwarmKit's defaults for what is not named
    assert spec["RollbackConfig"] == {**sa.UPDATE_DEFAULTS, "Parallelism": 0, "FailureAction": "continue"}
    assert spec["EndpointSpec"]["Mode"] == "dnsrr"
    assert [p["PublishMode"] for p in spec["EndpointSpec"]["Ports"]] == ["ingress", "host"]


def test_create_leaves_unnamed_families_to_the_agent() -> None:
    spec = create()
    assert "UpdateConfig" not in spec and "RollbackConfig" not in spec
    assert "RestartPolicy" not in spec["TaskTemplate"]
    assert "Name" not in spec  # the agent names an unnamed service
    assert create("--restart-delay", "0s")["TaskTemplate"]["RestartPolicy"] == {**sa.RESTART_DEFAULTS, "Delay": 0}


def test_create_global_mode() -> None:
    assert create("--mode", "global")["Mode"] == {"Global": {}}
    with pytest.raises(CLIError, match="replicas can only be used with replicated mode"):
        create("--mode", "global", "--replicas", "2")
    with pytest.raises(CLIError, match="replicas-max-per-node"):
        create("--mode", "global", "--max-replicas", "1")


@pytest.mark.parametrize(
    "flags",
    [
        ("--replicas=-1",),
        ("--restart-delay", "5x"),
        ("--update-delay=-5s",),
        ("--mode", "sideways"),
        ("--restart-condition", "sometimes"),
        ("--update-failure-action", "explode"),
        ("--rollback-failure-action", "rollback"),
        ("--update-order", "random"),
        ("--update-max-failure-ratio", "1.5"),
        ("--limit-memory", "lots"),
        ("--publish", "80:http"),
        ("--endpoint-mode", "nat"),
        ("--placement-pref", "spread"),
    ],
)
def test_bad_create_flags_are_usage_errors(flags: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        parse("service", "create", *flags, "shoal/host")
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "invalid" in err or "negative" in err


def test_command_after_the_image_keeps_its_dashes() -> None:
    args = parse("service", "create", "--name", "x", "shoal/host", "sh", "-c", "echo --name")
    assert (args.name, args.image, args.command) == ("x", "shoal/host", ["sh", "-c", "echo --name"])


# --- update: merging flags into the fetched spec --------------------------------------------------


def test_update_env_constraints_labels_image_args() -> None:
    spec = create("-e", "A=1", "-e", "B=2", "--constraint", "node.role==worker", "--label", "x=1", "--name", "web")
    new = update(
        spec, "--env-add", "B=3", "--env-add", "C=4", "--env-rm", "A", "--constraint-add", "node.labels.zone==a",
        "--constraint-rm", "node.role==worker", "--label-add", "y=2", "--label-rm", "x", "--image", "shoal/hello",
        "--args", "sleep 10",
    )  # fmt: skip
    c = new["TaskTemplate"]["ContainerSpec"]
    assert c["Env"] == ["B=3", "C=4"]
    assert (c["Image"], c["Args"]) == ("shoal/hello", ["sleep", "10"])
    assert new["TaskTemplate"]["Placement"]["Constraints"] == ["node.labels.zone==a"]
    assert new["Labels"] == {"y": "2"}
    assert spec["TaskTemplate"]["ContainerSpec"]["Env"] == ["A=1", "B=2"]  # the input is not modified


def test_update_without_flags_changes_nothing() -> None:
    spec = create("--name", "web", "-p", "80:8080", "--update-delay", "1s")
    assert update(spec) == spec


def test_update_publish_add_and_rm() -> None:
    spec = create("-p", "80:8080", "-p", "mode=host,target=9090,published=9090")
    new = update(spec, "--publish-add", "443:8443", "--publish-add", "80:8080")
    assert [(p["PublishedPort"], p["TargetPort"]) for p in new["EndpointSpec"]["Ports"]] == [
        (80, 8080),
        (443, 8443),
        (9090, 9090),
    ]
    # publish-rm matches the target port, protocol and publish mode (docker's rule)
    for same in ("8080/udp", "9090"):
        assert update(new, "--publish-rm", same) == new
    gone = update(new, "--publish-rm", "mode=host,target=9090", "--publish-rm", "1:8080")
    assert [p["TargetPort"] for p in gone["EndpointSpec"]["Ports"]] == [8443]
    assert update(create(), "--publish-add", "80")["EndpointSpec"]["Ports"] == [
        {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 0, "PublishMode": "ingress"}
    ]


def test_update_networks_resolved_and_not_twice() -> None:
    spec = create("--network", "internal")
    new = update(spec, "--network-add", "backend", "--network-rm", "internal")
    assert new["TaskTemplate"]["Networks"] == [{"Target": "id-backend"}]
    with pytest.raises(CLIError, match="already attached to network"):
        update(spec, "--network-add", "internal")


def test_update_families_start_from_defaults_or_keep_what_is_there() -> None:
    spec = create()
    new = update(spec, "--update-parallelism", "3", "--restart-condition", "none", "--limit-memory", "128m")
    assert new["UpdateConfig"] == {**sa.UPDATE_DEFAULTS, "Parallelism": 3}
    assert new["TaskTemplate"]["RestartPolicy"] == {**sa.RESTART_DEFAULTS, "Condition": "none"}
    assert new["TaskTemplate"]["Resources"] == {"Limits": {"MemoryBytes": 128 << 20}, "Reservations": {}}
    again = update(new, "--update-delay", "5s")
    assert again["UpdateConfig"] == {**sa.UPDATE_DEFAULTS, "Parallelism": 3, "Delay": 5 * 10**9}
    # an agent's null family is replaced, not crashed on
    assert update({**spec, "UpdateConfig": None}, "--update-order", "start-first")["UpdateConfig"]["Order"] == (
        "start-first"
    )


def test_update_force_replicas_and_placement_prefs() -> None:
    spec = create("--placement-pref", "spread=node.labels.zone")
    new = update(spec, "--force", "--replicas", "4", "--placement-pref-rm", "spread=node.labels.zone",
                 "--placement-pref-add", "spread=node.labels.rack", "--max-replicas", "1")  # fmt: skip
    assert new["TaskTemplate"]["ForceUpdate"] == 1
    assert update(new, "--force")["TaskTemplate"]["ForceUpdate"] == 2
    assert new["Mode"] == {"Replicated": {"Replicas": 4}}
    assert new["TaskTemplate"]["Placement"] == {
        "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.rack"}}],
        "MaxReplicas": 1,
    }
    with pytest.raises(CLIError, match="replicas can only be used with replicated mode"):
        update(create("--mode", "global"), "--replicas", "2")


def test_merge_env_and_ports_helpers() -> None:
    assert sa.merge_env(["A=1", "B=2"], ["A=3"], []) == ["A=3", "B=2"]
    assert sa.merge_env(["A=1"], ["A=2"], ["A"]) == ["A=2"]  # rm first, then add (docker)
    p = sa.port_configs("80:8080")[0]
    assert sa.merge_ports([p, p], [p], []) == [p]


# --- service ls -------------------------------------------------------------------------------------


def test_service_table_matches_the_seed() -> None:
    assert format_services([seed_service()]) == (
        "ID             NAME      MODE         REPLICAS   IMAGE                          PORTS\n"
        "lo6p4xrhlz3n   nodejs    replicated   1/1        kalise/nodejs-web-app:latest   *:80->8080/tcp\n"
    )


def test_service_table_global_max_replicas_order_and_quiet() -> None:
    glob = {
        "ID": "aaaaaaaaaaaaaaaaaaaaaaaaa",
        "Spec": {"Name": "agent", "Mode": {"Global": {}}, "TaskTemplate": {"ContainerSpec": {"Image": "x@sha256:ab"}}},
        "ServiceStatus": {"RunningTasks": 2, "DesiredTasks": 3},
    }
    capped = seed_service()
    capped["Spec"]["Name"] = "web10"
    capped["Spec"]["TaskTemplate"]["Placement"]["MaxReplicas"] = 2
    web2 = {**seed_service(), "ID": "b" * 25, "Spec": {**seed_service()["Spec"], "Name": "web2"}}
    lines = format_services([capped, glob, web2]).splitlines()
    assert [line.split()[1] for line in lines[1:]] == ["agent", "web2", "web10"]
    assert "global       2/3" in lines[1] and " x " in lines[1] + " "
    assert "1/1 (max 2 per node)" in lines[3]
    assert format_services([glob], quiet=True) == "a" * 25 + "\n"
    assert json.loads(format_services([glob], fmt="json"))["Replicas"] == "2/3"


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        ([(80, 80), (81, 81)], "*:80-81->80-81/tcp"),
        ([(80, 80), (81, 80)], "*:80-81->80/tcp"),
        ([(80, 80), (81, 81), (82, 80)], "*:80-81->80-81/tcp, *:82->80/tcp"),
        ([(80, 8080), (443, 8443)], "*:80->8080/tcp, *:443->8443/tcp"),
        ([(0, 8080)], ""),
    ],
)
def test_ports_column_groups_ranges_like_docker(ports: list[tuple[int, int]], expected: str) -> None:
    configs = [{"Protocol": "tcp", "PublishedPort": p, "TargetPort": t, "PublishMode": "ingress"} for p, t in ports]
    assert ports_text(configs) == expected


def test_ports_column_skips_host_mode_and_splits_protocols() -> None:
    configs = [
        {"Protocol": "udp", "PublishedPort": 53, "TargetPort": 53, "PublishMode": "ingress"},
        {"Protocol": "tcp", "PublishedPort": 53, "TargetPort": 53},
        {"Protocol": "tcp", "PublishedPort": 80, "TargetPort": 80, "PublishMode": "host"},
    ]
    assert ports_text(configs) == "*:53->53/tcp, *:53->53/udp"
    assert ports_text(None) == ""


def test_service_filters_and_status_from_tasks() -> None:
    svc = seed_service(Labels={"tier": "front"})
    tasks = [
        task("t1", 1, "ickjus9bta1julsad2ls3paum", "running"),
        task("t2", 1, "ryc6zlbxrhvblc7lk8pl3jsva", "running"),  # on a down node: not counted as running
        task("t3", 1, "ickjus9bta1julsad2ls3paum", "failed", desired="shutdown"),
    ]
    assert status_from_tasks([svc], tasks, {"ickjus9bta1julsad2ls3paum"}) == {
        SVC_ID: {"RunningTasks": 1, "DesiredTasks": 1}
    }


# --- service ps -------------------------------------------------------------------------------------


def test_task_table_with_history_matches_the_seed() -> None:
    tasks = [
        task("faapm76m2wgdubylakmjnkwge", 1, "ickjus9bta1julsad2ls3paum", "failed", desired="shutdown", age=180,
             Err="task: non-zero exit (137)"),
        task("lmeet488s78qbt4ox6dgxp1a9", 1, "ryc6zlbxrhvblc7lk8pl3jsva", "running", age=120),
    ]  # fmt: skip
    out = format_tasks(tasks, {SVC_ID: "nodejs"}, NODES, NOW_NS)
    assert out.splitlines() == [
        "ID             NAME           IMAGE                          NODE      DESIRED STATE   CURRENT STATE  "
        "         ERROR                         PORTS",
        "lmeet488s78q   nodejs.1       kalise/nodejs-web-app:latest   swarm02   Running         Running 2 minut"
        "es ago                                 ",
        "faapm76m2wgd    \\_ nodejs.1   kalise/nodejs-web-app:latest   swarm01   Shutdown        Failed 3 minutes"
        ' ago    "task: non-zero exit (137)"   ',
    ]


def test_task_rows_order_names_and_columns() -> None:
    long_err = "no suitable node (3 nodes not available for new tasks)"
    tasks = [
        task("c" * 25, 10, "ickjus9bta1julsad2ls3paum", "running", age=5),
        task("b" * 25, 2, "", "pending", age=0.2, Err=long_err),
        task("a" * 25, 0, "ryc6zlbxrhvblc7lk8pl3jsva", "running", age=70,
             PortStatus={"Ports": [{"Protocol": "tcp", "PublishedPort": 80, "TargetPort": 8080}]}),
    ]  # fmt: skip
    lines = format_tasks(tasks, {SVC_ID: "web"}, NODES, NOW_NS).splitlines()
    # global task names carry the node ID; slots sort as numbers
    assert [line.split()[1] for line in lines[1:]] == ["web.2", "web.10", "web.ryc6zlbxrhvblc7lk8pl3jsva"]
    assert "Pending less than a second ago" in lines[1]
    assert '"no suitable node (3 nodes not\u2026"' in lines[1]
    assert "Running 5 seconds ago" in lines[2]
    assert "Running about a minute ago" in lines[3] and lines[3].endswith("*:80->8080/tcp")
    wide = format_tasks(tasks, {SVC_ID: "web"}, NODES, NOW_NS, trunc=False)
    assert "c" * 25 in wide and f'"{long_err}"' in wide
    assert (
        format_tasks(tasks, {SVC_ID: "web"}, NODES, NOW_NS, quiet=True) == "bbbbbbbbbbbb\ncccccccccccc\naaaaaaaaaaaa\n"
    )


def test_task_names_are_not_indented_outside_tables() -> None:
    tasks = [task("a" * 25, 1, "n1", "running", age=5), task("b" * 25, 1, "n1", "failed", desired="shutdown")]
    rows = [json.loads(line) for line in format_tasks(tasks, {SVC_ID: "web"}, {}, NOW_NS, fmt="json").splitlines()]
    assert [r["Name"] for r in rows] == ["web.1", "web.1"]
    assert rows[0]["Node"] == "n1"  # an unknown node shows its ID
    assert task_name({"Slot": 3}, "web") == "web.3"


def test_pretty_matches_the_seed_layout() -> None:
    assert pretty_service(seed_service(), now_ns=NOW_NS) == (
        "\n"
        "ID:             lo6p4xrhlz3nnlo06yg5yn1jy\n"
        "Name:           nodejs\n"
        "Service Mode:   Replicated\n"
        " Replicas:      1\n"
        "Placement:\n"
        " Constraints:   [node.role==worker]\n"
        "UpdateConfig:\n"
        " Parallelism:   1\n"
        " On failure:    pause\n"
        " Monitoring Period: 5s\n"
        " Max failure ratio: 0\n"
        " Update order:      stop-first\n"
        "ContainerSpec:\n"
        " Image:         kalise/nodejs-web-app:latest\n"
        "Resources:\n"
        "Endpoint Mode:  vip\n"
        "Ports:\n"
        " PublishedPort = 80\n"
        "  Protocol = tcp\n"
        "  TargetPort = 8080\n"
        "  PublishMode = ingress\n"
    )


def test_pretty_optional_sections() -> None:
    spec = create(
        "--name", "web", "--mode", "global", "--label", "tier=front", "--placement-pref", "spread=node.labels.zone",
        "--rollback-delay", "3s", "--update-delay", "1m30s", "--update-max-failure-ratio", "0.25",
        "--limit-cpu", "1.5", "--limit-memory", "64M", "--reserve-memory", "1g", "-e", "A=1", "-w", "/srv",
        "-u", "nobody", "--network", "internal", "--endpoint-mode", "dnsrr",
    )  # fmt: skip
    spec["TaskTemplate"]["ContainerSpec"]["Args"] = ["sleep", "60"]
    svc = {
        "ID": SVC_ID,
        "Spec": spec,
        "UpdateStatus": {"State": "completed", "StartedAt": ago(120), "CompletedAt": ago(60), "Message": "done"},
    }
    out = pretty_service(svc, {"id-internal": "internal"}, now_ns=NOW_NS)
    for expected in (
        "Labels:\n tier=front\n",
        "Service Mode:   Global\nUpdateStatus:\n State:         completed\n",
        " Started:       2 minutes ago\n Completed:     About a minute ago\n Message:       done\n",
        " Preferences:   [spread=node.labels.zone]\n",
        " Delay:         1m30s\n",
        " Max failure ratio: 0.25\n",
        "RollbackConfig:\n Parallelism:   1\n Delay:         3s\n On failure:    pause\n",
        " Rollback order:    stop-first\n",
        " Args:          sleep 60\n Env:           A=1\n Dir:           /srv\n User: nobody\n",
        "Resources:\n Reservations:\n  Memory:       1GiB\n Limits:\n  CPU:          1.5\n  Memory:       64MiB\n",
        "Networks: internal\nEndpoint Mode:  dnsrr\n",
    ):
        assert expected in out
    assert "Replicas" not in out and "Ports:" not in out
    assert (go_float(0), go_float(2.0), go_float(0.5)) == ("0", "2", "0.5")


# --- progress -----------------------------------------------------------------------------------------

ACTIVE = {"n1", "n2"}


def replicated(n: int) -> dict[str, Any]:
    return {"ID": SVC_ID, "Spec": {"Mode": {"Replicated": {"Replicas": n}}}}


def test_tracker_replicated_progress_and_convergence() -> None:
    tr = Tracker()
    done, lines = tr.update(replicated(2), [task("a", 1, "n1", "running"), task("b", 2, "n2", "preparing")], ACTIVE)
    assert not done
    assert lines == [
        ("overall progress", "1 out of 2 tasks"),
        ("1/2", ""),
        ("2/2", ""),
        ("1/2", "running  "),
        ("2/2", "preparing"),
    ]
    done, lines = tr.update(replicated(2), [task("a", 1, "n1", "running"), task("b", 2, "n2", "running")], ACTIVE)
    assert done and lines[0] == ("overall progress", "2 out of 2 tasks")


def test_tracker_prefers_the_live_task_of_a_slot_and_ignores_down_nodes() -> None:
    tasks = [
        task("old", 1, "n1", "failed", desired="shutdown", Err="task: non-zero exit (137)"),
        task("new", 1, "n2", "starting"),
        task("gone", 2, "n9", "running"),  # its node is down
    ]
    tr = Tracker()
    done, lines = tr.update(replicated(2), tasks, ACTIVE, rollback=True)
    assert not done
    assert lines[0] == ("overall progress", "rolling back update: 0 out of 2 tasks")
    assert ("1/2", "starting ") in lines and tr.running == 0


def test_tracker_reports_task_errors_and_global_mode() -> None:
    tr = Tracker()
    _, lines = tr.update(replicated(1), [task("a", 1, "", "pending", Err="no suitable node")], ACTIVE)
    assert lines[-1] == ("1/1", "no suitable node") and tr.last_error == "no suitable node"
    glob = {"ID": SVC_ID, "Spec": {"Mode": {"Global": {}}}}
    assert Tracker().update(glob, [], ACTIVE) == (False, [("overall progress", "waiting for new tasks")])
    done, lines = Tracker().update(glob, [task("a", 0, "n1", "running"), task("b", 0, "n2", "running")], ACTIVE)
    assert done and lines[0] == ("overall progress", "2 out of 2 tasks") and ("n1", "running  ") in lines


def test_progress_helpers() -> None:
    assert bar(9, 9, width=80) == ""
    assert bar(9, 9, width=120) == " [" + "=" * 50 + ">]"
    assert bar(3, 9, width=120).count("=") == 16
    assert trunc_error("x" * 80) == "x" * 74 + "\u2026"
    t1, t2 = {"Spec": {"A": 1}}, {"Spec": {"A": 2}}
    assert up_to_date([t1, t2], {"A": 2}) == [t2]
    assert up_to_date([t1, t2], {"A": 3}) == [t1, t2]


def test_view_prints_changes_only_when_not_a_terminal() -> None:
    out = io.StringIO()
    view = View(out, tty=False)
    for key, text in [("overall progress", "0 out of 1 tasks"), ("1/1", ""), ("1/1", "running  ")]:
        view.set(key, text)
        view.set(key, text)
    view.draw()
    assert out.getvalue() == "overall progress: 0 out of 1 tasks\n1/1: running\n"
    tty = io.StringIO()
    view = View(tty, tty=True)
    view.set("a", "1")
    view.draw()
    view.set("a", "2")
    view.draw()
    assert tty.getvalue() == "\r\x1b[2Ka: 1\n\x1b[1A\r\x1b[2Ka: 2\n"


# --- logs ---------------------------------------------------------------------------------------------


def frame(stream: int, data: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


def test_demuxer_reassembles_frames_split_anywhere() -> None:
    data = frame(1, b"hello\n") + frame(2, b"oops\n") + frame(1, b"")
    for cut in range(len(data) + 1):
        d = Demuxer()
        assert d.feed(data[:cut]) + d.feed(data[cut:]) == [(1, b"hello\n"), (2, b"oops\n"), (1, b"")]
        assert d.close() == []


def test_demuxer_passes_raw_text_through_and_shows_a_truncated_frame() -> None:
    d = Demuxer()
    assert d.feed(b"plain text\n") == [(1, b"plain text\n")]
    d = Demuxer()
    assert d.feed(frame(1, b"abcdef")[:-2]) == []
    assert d.close() == [(1, b"abcd")]


def test_lines_split_on_newlines_and_flush_the_tail() -> None:
    buf = Lines()
    assert buf.feed(b"a\nb") == [b"a\n"]
    assert buf.feed(b"c\nd") == [b"bc\n"]
    assert buf.flush() == [b"d"]


DETAILS = "com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s1,com.docker.swarm.task.id=" + "t" * 25


def test_log_lines_get_docker_prefixes() -> None:
    tasks = {"t" * 25: {"ID": "t" * 25, "Slot": 3}}
    fmt = LogFormatter(tasks.get, {"s1": "nodejs"}.get, {"n1": "swarm01"}.get, padding=2)
    assert fmt.format(f"{DETAILS} hello world\n") == "nodejs.3.tttttttttttt@swarm01     | hello world\n"
    assert fmt.format("no details here\n") == "no details here\n"
    fmt = LogFormatter(tasks.get, {"s1": "nodejs"}.get, {"n1": "swarm01"}.get, timestamps=True, no_task_ids=True)
    assert fmt.format(f"2026-11-27T23:13:48Z {DETAILS} hi\n") == "2026-11-27T23:13:48Z nodejs.3@swarm01    | hi\n"
    fmt = LogFormatter(tasks.get, {"s1": "nodejs"}.get, {"n1": "swarm01"}.get, details=True, no_trunc=True)
    assert fmt.format(f"{DETAILS},env=a%20b x\n") == f"nodejs.3.{'t' * 25}@swarm01    | env=a b x\n"


def test_parse_details() -> None:
    assert parse_details("a=1,b=x%2Cy") == {"a": "1", "b": "x,y"}
    assert parse_details("hello") is None


def test_since_values() -> None:
    assert since_value("42m", 10_000.0) == str(10_000 - 42 * 60)
    assert since_value("2026-11-27T23:13:48Z", 0) == str(NOW_NS // 10**9)
    assert since_value("1700000000", 0) == "1700000000"
    with pytest.raises(CLIError):
        since_value("yesterday", 0)


# --- shoal ps / exec / kill -------------------------------------------------------------------------


def local_task(**kw: Any) -> dict[str, Any]:
    t = task("faapm76m2wgdubylakmjnkwge", 1, "n1", "running", age=120)
    t["Spec"]["ContainerSpec"].update(Args=["python3", "-m", "http.server", "8080"])
    t.update(Name="nodejs.1", Pid=4242)
    t.update(kw)
    return t


def test_local_task_table() -> None:
    done = local_task(ID="x" * 25, Name="", Labels={"com.docker.swarm.service.name": "busybox"}, Pid=0)
    done["Status"] = {"State": "failed", "Timestamp": ago(5), "ContainerStatus": {"ExitCode": 137}}
    out = format_local_tasks([local_task(), done], NOW_NS, show_all=True)
    lines = out.splitlines()
    assert lines[0].split() == ["TASK", "ID", "NAME", "IMAGE", "COMMAND", "CREATED", "STATUS", "PID"]
    assert "nodejs.1.faapm76m2wgdubylakmjnkwge" in lines[1] and lines[1].split()[-3:] == ["2", "minutes", "4242"]
    assert "busybox.1.xxxxxxxxxxxxxxxxxxxxxxxxx" in lines[2] and "Exited (137) 5 seconds ago" in lines[2]
    assert format_local_tasks([local_task(), done], NOW_NS).count("\n") == 2  # finished tasks need -a
    assert format_local_tasks([local_task()], NOW_NS, quiet=True) == "faapm76m2wgd\n"


def test_local_task_helpers() -> None:
    assert local_name(local_task(Name="web.2.faapm76m2wgdubylakmjnkwge")) == "web.2.faapm76m2wgdubylakmjnkwge"
    assert local_name({"ID": "abc", "ServiceID": "svcid", "Slot": 0, "NodeID": "n1"}) == "svcid.n1.abc"
    assert command_text({"Argv": ["sleep", "3600"]}) == '"sleep 3600"'
    assert command_text(local_task(), trunc=False) == '"python3 -m http.server 8080"'
    starting = {"Status": {"State": "starting", "Timestamp": ago(3)}}
    assert status_text(starting, NOW_NS) == "Starting 3 seconds ago"
    assert signal_name("kill") == signal_name("SIGKILL") == signal_name("9") == "KILL"
    assert signal_name("term") == "TERM"
    for bad in ("NOPE", "999"):
        with pytest.raises(argparse.ArgumentTypeError):
            signal_name(bad)
    assert exec_env({"A": 1}) == {"A": "1"}
    assert exec_env(["A=1", "B=x=y"]) == {"A": "1", "B": "x=y"}


# --- images -------------------------------------------------------------------------------------------


def test_image_table_and_sizes() -> None:
    images = [
        {
            "Name": "shoal/host",
            "Tag": "latest",
            "ID": "sha256:" + "a" * 64,
            "Created": "2024-01-01T00:00:00Z",
            "Size": 0,
        },
        {"Name": "busybox", "Tag": "1.36", "ID": "sha256:" + "b" * 64, "Created": ago(90), "Size": 4_261_000},
    ]
    assert format_images(images, NOW_NS).splitlines() == [
        "REPOSITORY   TAG       IMAGE ID       CREATED              SIZE",
        "busybox      1.36      bbbbbbbbbbbb   About a minute ago   4.26MB",
        "shoal/host   latest    aaaaaaaaaaaa   2 years ago          0B",
    ]
    assert format_images(images, NOW_NS, quiet=True) == "bbbbbbbbbbbb\naaaaaaaaaaaa\n"
    assert (human_size(999), human_size(13_300), human_size(1e9)) == ("999B", "13.3kB", "1GB")


def test_image_references_and_import_request(tmp_path: Any) -> None:
    assert split_reference("busybox") == ("busybox", "latest")
    assert split_reference("localhost:5000/app:v2") == ("localhost:5000/app", "v2")
    assert split_reference("localhost:5000/app") == ("localhost:5000/app", "latest")
    with pytest.raises(CLIError):
        split_reference("app:")
    body = import_request(str(tmp_path), "app:v1", ['ENTRYPOINT ["/bin/app"]'])
    assert body == {"Source": str(tmp_path), "Name": "app", "Tag": "v1", "Changes": ['ENTRYPOINT ["/bin/app"]']}
    with pytest.raises(CLIError, match="no such file"):
        import_request(str(tmp_path / "missing.tar"), "app", [])
