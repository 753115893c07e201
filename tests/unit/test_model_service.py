"""shoal.model.service: ServiceSpec validation and defaults, the Service object, status counts."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shoal.model.errors import SpecError
from shoal.model.service import (
    mode_kind,
    only_placement_differs,
    rollback_spec,
    service_object,
    service_status,
    spec_differs_for_tasks,
    updated_service,
    validate_service_spec,
)

NOW = "2026-01-02T03:04:05.000000000Z"
LATER = "2026-01-02T03:05:00.000000000Z"
S = 1_000_000_000


def spec(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": "shoal/hello"}}}
    base.update(over)
    return base


def task_template(**over: Any) -> dict[str, Any]:
    tt: dict[str, Any] = {"ContainerSpec": {"Image": "shoal/hello"}}
    tt.update(over)
    return tt


def bad(s: Any, message: str, current: dict[str, Any] | None = None) -> None:
    with pytest.raises(SpecError) as e:
        validate_service_spec(s, current)
    assert message in e.value.message
    assert e.value.status == 400


# --- defaults -----------------------------------------------------------------------------------


def test_minimal_spec_gets_docker_defaults() -> None:
    out = validate_service_spec(spec())
    assert out["Name"] == "web"
    assert out["Labels"] == {}
    tt = out["TaskTemplate"]
    assert tt["ContainerSpec"] == {
        "Image": "shoal/hello",
        "Labels": {},
        "Command": [],
        "Args": [],
        "Env": [],
        "Dir": "",
        "User": "",
        "Hostname": "",
        "StopGracePeriod": 10 * S,
        "StopSignal": "",
    }
    assert tt["Resources"] == {
        "Limits": {"NanoCPUs": 0, "MemoryBytes": 0, "Pids": 0},
        "Reservations": {"NanoCPUs": 0, "MemoryBytes": 0},
    }
    assert tt["RestartPolicy"] == {"Condition": "any", "Delay": 5 * S, "MaxAttempts": 0, "Window": 0}
    assert tt["Placement"] == {"Constraints": [], "Preferences": [], "MaxReplicas": 0, "Platforms": []}
    assert tt["Networks"] == []
    assert tt["ForceUpdate"] == 0
    assert tt["Runtime"] == "container"
    assert out["Mode"] == {"Replicated": {"Replicas": 1}}
    update = {
        "Parallelism": 1,
        "Delay": 0,
        "FailureAction": "pause",
        "Monitor": 5 * S,
        "MaxFailureRatio": 0.0,
        "Order": "stop-first",
    }
    assert out["UpdateConfig"] == update
    assert out["RollbackConfig"] == update
    assert out["EndpointSpec"] == {"Mode": "vip", "Ports": []}


def test_validation_is_idempotent() -> None:
    full = spec(
        Labels={"a": "b"},
        TaskTemplate=task_template(
            ContainerSpec={"Image": "img", "Command": ["sleep"], "Args": ["1"], "Env": ["A=1", "B"], "Dir": "/srv"},
            Resources={"Limits": {"MemoryBytes": 64 << 20, "NanoCPUs": 2 * S}, "Reservations": {"NanoCPUs": S}},
            RestartPolicy={"Condition": "on-failure", "Delay": "1s", "MaxAttempts": 3, "Window": "1m"},
            Placement={
                "Constraints": ["node.role==worker"],
                "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.dc"}}],
            },
            Networks=[{"Target": "net1", "Aliases": []}],
        ),
        EndpointSpec={"Ports": [{"TargetPort": 8080, "PublishedPort": 80}]},
    )
    once = validate_service_spec(full)
    assert validate_service_spec(copy.deepcopy(once)) == once
    assert validate_service_spec(copy.deepcopy(once), current=once) == once


def test_durations_accept_go_strings_and_integers() -> None:
    out = validate_service_spec(
        spec(
            TaskTemplate=task_template(
                ContainerSpec={"Image": "i", "StopGracePeriod": "1m30s"},
                RestartPolicy={"Delay": 0, "Window": "2h"},
            ),
            UpdateConfig={"Delay": "500ms", "Monitor": 7},
            RollbackConfig={"Delay": 3 * S},
        )
    )
    assert out["TaskTemplate"]["ContainerSpec"]["StopGracePeriod"] == 90 * S
    assert out["TaskTemplate"]["RestartPolicy"]["Delay"] == 0  # 0 is kept, not replaced by the default
    assert out["TaskTemplate"]["RestartPolicy"]["Window"] == 2 * 3600 * S
    assert out["UpdateConfig"]["Delay"] == 500_000_000
    assert out["UpdateConfig"]["Monitor"] == 7
    assert out["RollbackConfig"]["Delay"] == 3 * S


def test_enums_are_case_insensitive_and_normalised() -> None:
    out = validate_service_spec(
        spec(
            TaskTemplate=task_template(RestartPolicy={"Condition": "ON-FAILURE"}),
            UpdateConfig={"FailureAction": "Rollback", "Order": "START-FIRST", "Parallelism": 0},
            RollbackConfig={"FailureAction": "continue"},
            EndpointSpec={"Mode": "DNSRR", "Ports": [{"TargetPort": 53, "Protocol": "UDP", "PublishMode": "host"}]},
        )
    )
    assert out["TaskTemplate"]["RestartPolicy"]["Condition"] == "on-failure"
    assert out["UpdateConfig"]["FailureAction"] == "rollback"
    assert out["UpdateConfig"]["Order"] == "start-first"
    assert out["UpdateConfig"]["Parallelism"] == 0  # all at once
    assert out["RollbackConfig"]["FailureAction"] == "continue"
    assert out["EndpointSpec"] == {
        "Mode": "dnsrr",
        "Ports": [{"Name": "", "Protocol": "udp", "TargetPort": 53, "PublishedPort": 0, "PublishMode": "host"}],
    }


def test_ports_get_defaults() -> None:
    out = validate_service_spec(
        spec(EndpointSpec={"Ports": [{"TargetPort": 80, "PublishedPort": 8080, "Name": "web"}]})
    )
    assert out["EndpointSpec"]["Ports"] == [
        {"Name": "web", "Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"}
    ]


def test_global_mode() -> None:
    out = validate_service_spec(spec(Mode={"Global": {}}))
    assert out["Mode"] == {"Global": {}}
    assert mode_kind(out) == "global"
    assert mode_kind(validate_service_spec(spec(Mode={"Replicated": {"Replicas": 0}}))) == "replicated"


def test_replicas_null_means_one_and_float_integers_pass() -> None:
    assert validate_service_spec(spec(Mode={"Replicated": {}}))["Mode"] == {"Replicated": {"Replicas": 1}}
    assert validate_service_spec(spec(Mode={"Replicated": {"Replicas": 3.0}}))["Mode"]["Replicated"]["Replicas"] == 3


def test_runtime_reads_container_whatever_the_driver() -> None:
    # the docker CLI refuses to update a ContainerSpec service whose Runtime is not "container"
    for given in ("container", "", None, "Container"):
        out = validate_service_spec(spec(TaskTemplate=task_template(Runtime=given)))
        assert out["TaskTemplate"]["Runtime"] == "container"
    bad(spec(TaskTemplate=task_template(Runtime="process")), "invalid TaskTemplate.Runtime: 'process'")
    bad(spec(TaskTemplate=task_template(Runtime="podman")), "TaskTemplate.Runtime 'podman' is not supported yet")
    bad(spec(TaskTemplate=task_template(Runtime="plugin")), "TaskTemplate.Runtime 'plugin' is not supported yet")


def test_network_aliases_are_kept_once_each_and_must_be_dns_names() -> None:
    out = validate_service_spec(
        spec(TaskTemplate=task_template(Networks=[{"Target": "net1", "Aliases": ["db", "db", "x.y"]}]))
    )
    assert out["TaskTemplate"]["Networks"] == [{"Target": "net1", "Aliases": ["db", "x.y"]}]
    bad(
        spec(TaskTemplate=task_template(Networks=[{"Target": "net1", "Aliases": ["not a name"]}])),
        "TaskTemplate.Networks[0].Aliases: invalid network alias 'not a name'",
    )
    out = validate_service_spec(spec(TaskTemplate=task_template(Networks=[{"Target": "net1", "Aliases": None}])))
    assert out["TaskTemplate"]["Networks"] == [{"Target": "net1", "Aliases": []}]


def test_field_names_match_case_insensitively_as_go_decodes() -> None:
    # community.docker (docker SDK) sends {"replicated": {"Replicas": 2}}
    body = {
        "name": "web",
        "taskTemplate": {"containerSpec": {"image": "img", "env": ["A=1"]}, "restartpolicy": {"condition": "none"}},
        "mode": {"replicated": {"replicas": 2}},
        "endpointSpec": {"ports": [{"targetPort": 80, "publishedPort": 8080}]},
    }
    out = validate_service_spec(body)
    assert out["Name"] == "web"
    assert out["Mode"] == {"Replicated": {"Replicas": 2}}
    assert out["TaskTemplate"]["ContainerSpec"]["Env"] == ["A=1"]
    assert out["TaskTemplate"]["RestartPolicy"]["Condition"] == "none"
    assert out["EndpointSpec"]["Ports"][0]["PublishedPort"] == 8080
    # map keys (labels, env) keep their case; the later of two spellings wins, as in Go
    labelled = validate_service_spec({**body, "Labels": {"Tier": "a"}, "labels": {"Tier": "b"}})
    assert labelled["Labels"] == {"Tier": "b"}
    bad({**body, "Mode": {"replicatedd": {}}}, "unknown field 'replicatedd' in Mode")


def test_docker_cli_zero_values_are_accepted_and_dropped() -> None:
    # What `docker service create` sends for fields shoal does not implement.
    container = {
        "Image": "img",
        "Init": False,
        "DNSConfig": {},
        "Isolation": "default",
        "Privileges": {"CredentialSpec": None, "SELinuxContext": None, "NoNewPrivileges": False},
        "Mounts": [],
        "TTY": False,
    }
    out = validate_service_spec(
        spec(
            TaskTemplate=task_template(
                ContainerSpec=container,
                Resources={"Limits": {}, "Reservations": {"GenericResources": None}},
                LogDriver=None,
            )
        )
    )
    assert "Init" not in out["TaskTemplate"]["ContainerSpec"]
    assert "LogDriver" not in out["TaskTemplate"]


def test_oci_container_fields_are_kept() -> None:
    container = {"Image": "img", "Init": True, "ReadOnly": True}
    container |= {"CapabilityAdd": ["NET_ADMIN"], "CapabilityDrop": ["ALL"]}
    out = validate_service_spec(spec(TaskTemplate=task_template(ContainerSpec=container)))["TaskTemplate"]
    c = out["ContainerSpec"]
    assert (c["Init"], c["ReadOnly"], c["CapabilityAdd"], c["CapabilityDrop"]) == (True, True, ["NET_ADMIN"], ["ALL"])


def test_top_level_networks_move_into_the_task_template() -> None:
    out = validate_service_spec(spec(Networks=[{"Target": "net1"}]))
    assert out["TaskTemplate"]["Networks"] == [{"Target": "net1", "Aliases": []}]
    assert "Networks" not in out
    same = validate_service_spec(
        spec(Networks=[{"Target": "n"}], TaskTemplate=task_template(Networks=[{"Target": "n"}]))
    )
    assert same["TaskTemplate"]["Networks"] == [{"Target": "n", "Aliases": []}]


def test_network_driver_opts_kept() -> None:
    with pytest.raises(SpecError, match=r"Networks\[0\]\.DriverOpts .* is not supported yet"):
        validate_service_spec(spec(TaskTemplate=task_template(Networks=[{"Target": "n", "DriverOpts": {"a": "1"}}])))
    out = validate_service_spec(spec(TaskTemplate=task_template(Networks=[{"Target": "n", "DriverOpts": {}}])))
    assert out["TaskTemplate"]["Networks"] == [{"Target": "n", "Aliases": []}]


def test_placement_kept() -> None:
    placement = {
        "Constraints": ["node.labels.zone==a", "node.role!=manager"],
        "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.rack"}}],
        "MaxReplicas": 2,
        "Platforms": [{"Architecture": "x86_64", "OS": "linux"}],
    }
    out = validate_service_spec(spec(TaskTemplate=task_template(Placement=placement)))
    assert out["TaskTemplate"]["Placement"] == placement


def test_stop_signal_forms() -> None:
    for sig in ("SIGTERM", "term", "9", "SIGUSR1"):
        out = validate_service_spec(spec(TaskTemplate=task_template(ContainerSpec={"Image": "i", "StopSignal": sig})))
        assert out["TaskTemplate"]["ContainerSpec"]["StopSignal"] == sig


def test_minimum_resources_pass() -> None:
    res = {
        "Limits": {"MemoryBytes": 4 << 20, "NanoCPUs": 1_000_000, "Pids": 10},
        "Reservations": {"MemoryBytes": 4 << 20},
    }
    out = validate_service_spec(spec(TaskTemplate=task_template(Resources=res)))
    assert out["TaskTemplate"]["Resources"]["Limits"] == {"MemoryBytes": 4 << 20, "NanoCPUs": 1_000_000, "Pids": 10}


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("s", "message"),
    [
        ({"TaskTemplate": {"ContainerSpec": {"Image": "i"}}}, "name must be provided"),
        (spec(Name=""), "name must be provided"),
        (spec(Name="a.b"), 'invalid name "a.b": name must be valid as a DNS name component'),
        (spec(Name="-web"), "name must be valid as a DNS name component"),
        (spec(Name="web-"), "name must be valid as a DNS name component"),
        (spec(Name="a b"), "name must be valid as a DNS name component"),
        (spec(Name="a" * 64), "name must be 63 characters or fewer"),
        (spec(Name=5), "Name must be a string"),
        ("web", "service spec must be an object"),
        (spec(Labels={"a": 1}), "Labels: label 'a' must have a string value"),
        (spec(Bogus=1), "unknown field 'Bogus' in service spec"),
        (spec(TaskTemplate={}), "ContainerSpec: image reference must be provided"),
        (spec(TaskTemplate={"ContainerSpec": {"Image": " "}}), "ContainerSpec: image reference must be provided"),
        (spec(TaskTemplate={"ContainerSpec": {"Image": 5}}), "ContainerSpec: image reference must be provided"),
        (spec(TaskTemplate=task_template(Bogus=1)), "unknown field 'Bogus' in TaskTemplate"),
        (
            spec(TaskTemplate={"ContainerSpec": {"Image": "i", "Foo": 1}}),
            "unknown field 'Foo' in TaskTemplate.ContainerSpec",
        ),
        (
            spec(TaskTemplate={"ContainerSpec": {"Image": "i", "Command": "sleep 1"}}),
            "Command must be a list of strings",
        ),
        (spec(TaskTemplate={"ContainerSpec": {"Image": "i", "Args": [1]}}), "Args must be a list of strings"),
        (spec(TaskTemplate={"ContainerSpec": {"Image": "i", "Env": ["=x"]}}), "invalid environment variable '=x'"),
        (spec(TaskTemplate={"ContainerSpec": {"Image": "i", "Dir": "srv"}}), "it needs to be an absolute path"),
        (spec(TaskTemplate={"ContainerSpec": {"Image": "i", "User": 0}}), "User must be a string"),
        (spec(TaskTemplate={"ContainerSpec": {"Image": "i", "StopSignal": "SIGNOPE"}}), "invalid signal 'SIGNOPE'"),
        (spec(TaskTemplate={"ContainerSpec": {"Image": "i", "StopSignal": "999"}}), "invalid signal '999'"),
        (
            spec(TaskTemplate={"ContainerSpec": {"Image": "i", "StopGracePeriod": "soon"}}),
            "TaskTemplate.ContainerSpec.StopGracePeriod: invalid duration 'soon'",
        ),
        (
            spec(TaskTemplate={"ContainerSpec": {"Image": "i", "StopGracePeriod": -1}}),
            "stop-grace-period cannot be negative",
        ),
        (spec(TaskTemplate={"ContainerSpec": {"Image": "i", "Mounts": [{"Target": "/x"}]}}), "mount type unknown"),
        (
            spec(TaskTemplate={"ContainerSpec": {"Image": "i", "Init": "yes"}}),
            "ContainerSpec.Init: expected true or false",
        ),
        (
            spec(TaskTemplate={"ContainerSpec": {"Image": "i", "CapabilityAdd": ["CAP_FLY"]}}),
            "CapabilityAdd: unknown capability: 'CAP_FLY'",
        ),
        (spec(TaskTemplate={"ContainerSpec": {"Image": "i", "TTY": True}}), "ContainerSpec.TTY is not supported"),
        (spec(TaskTemplate=task_template(LogDriver={"Name": "syslog"})), "TaskTemplate.LogDriver is not supported"),
        (spec(TaskTemplate=task_template(ForceUpdate=-1)), "ForceUpdate must be at least 0"),
    ],
)
def test_bad_spec(s: Any, message: str) -> None:
    bad(s, message)


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"Limits": {"MemoryBytes": 1048576}}, "invalid memory value 1048576: Must be at least 4MB"),
        ({"Reservations": {"MemoryBytes": 1000}}, "invalid memory value 1000: Must be at least 4MB"),
        ({"Limits": {"NanoCPUs": 500}}, "invalid cpu value 5e-07: Must be at least 0.001"),
        ({"Limits": {"MemoryBytes": -1}}, "Limits.MemoryBytes must be at least 0, not -1"),
        ({"Limits": {"NanoCPUs": -5}}, "Limits.NanoCPUs must be at least 0, not -5"),
        ({"Limits": {"Pids": -1}}, "Limits.Pids must be at least 0"),
        ({"Reservations": {"NanoCPUs": -1}}, "Reservations.NanoCPUs must be at least 0"),
        ({"Reservations": {"Pids": 3}}, "unknown field 'Pids' in TaskTemplate.Resources.Reservations"),
        ({"Limits": {"MemoryBytes": "1g"}}, "MemoryBytes must be an integer"),
        (
            {"Limits": {"MemoryBytes": 64 << 20}, "Reservations": {"MemoryBytes": 128 << 20}},
            "MemoryBytes reservation 134217728 exceeds the limit 67108864",
        ),
        (
            {"Limits": {"NanoCPUs": S}, "Reservations": {"NanoCPUs": 2 * S}},
            "NanoCPUs reservation 2000000000 exceeds the limit 1000000000",
        ),
        ({"SwapBytes": 100}, "Resources.SwapBytes is not supported"),
        (
            {"Reservations": {"GenericResources": [{"DiscreteResourceSpec": {"Kind": "gpu", "Value": 1}}]}},
            "not supported",
        ),
    ],
)
def test_bad_resources(resources: dict[str, Any], message: str) -> None:
    bad(spec(TaskTemplate=task_template(Resources=resources)), message)


def test_reservation_without_limit_is_fine() -> None:
    res = {"Reservations": {"MemoryBytes": 1 << 30, "NanoCPUs": 4 * S}}
    out = validate_service_spec(spec(TaskTemplate=task_template(Resources=res)))
    assert out["TaskTemplate"]["Resources"]["Reservations"] == {"MemoryBytes": 1 << 30, "NanoCPUs": 4 * S}


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"Condition": "always"}, "invalid TaskTemplate.RestartPolicy.Condition: 'always'"),
        ({"Delay": -1}, "restart-delay cannot be negative"),
        ({"Delay": "-5s"}, "restart-delay cannot be negative"),
        ({"Delay": "5 parsecs"}, "TaskTemplate.RestartPolicy.Delay: invalid duration"),
        ({"Window": -1}, "restart-window cannot be negative"),
        ({"MaxAttempts": -1}, "MaxAttempts must be at least 0"),
        ({"MaxAttempts": True}, "MaxAttempts must be an integer"),
        ({"Tries": 1}, "unknown field 'Tries' in TaskTemplate.RestartPolicy"),
    ],
)
def test_bad_restart_policy(policy: dict[str, Any], message: str) -> None:
    bad(spec(TaskTemplate=task_template(RestartPolicy=policy)), message)


@pytest.mark.parametrize(
    ("placement", "mode", "message"),
    [
        ({"Constraints": ["node.colour==red"]}, None, 'invalid constraint "node.colour==red": unknown key'),
        ({"Constraints": ["node.role=worker"]}, None, "expected one operator"),
        ({"Constraints": "node.role==worker"}, None, "Constraints must be a list of strings"),
        ({"Preferences": [{"Spread": {"SpreadDescriptor": "node.id"}}]}, None, "can only spread over node.labels"),
        ({"Preferences": [{"Pack": {}}]}, None, "only Spread with a SpreadDescriptor is supported"),
        ({"Preferences": {"Spread": {}}}, None, "Preferences must be a list"),
        ({"MaxReplicas": -1}, None, "MaxReplicas must be at least 0"),
        ({"MaxReplicas": 2}, {"Global": {}}, "MaxReplicas can only be used with replicated mode"),
        ({"Platforms": ["linux"]}, None, "invalid placement platform"),
        ({"Platforms": [{"OS": "linux", "Variant": "v8"}]}, None, "unknown field 'Variant'"),
        ({"Nodes": []}, None, "unknown field 'Nodes' in TaskTemplate.Placement"),
    ],
)
def test_bad_placement(placement: dict[str, Any], mode: dict[str, Any] | None, message: str) -> None:
    s = spec(TaskTemplate=task_template(Placement=placement))
    if mode:
        s["Mode"] = mode
    bad(s, message)


@pytest.mark.parametrize(
    ("networks", "message"),
    [
        ([{"Aliases": []}], "Networks[0].Target: network name or ID must be provided"),
        ([{"Target": "a"}, {"Target": "a"}], "network 'a' is attached more than once"),
        ({"Target": "a"}, "TaskTemplate.Networks must be a list"),
        ([{"Target": "a", "Aliases": "x"}], "Aliases must be a list of strings"),
        ([{"Target": "a", "Foo": 1}], "unknown field 'Foo' in TaskTemplate.Networks[0]"),
    ],
)
def test_bad_networks(networks: Any, message: str) -> None:
    bad(spec(TaskTemplate=task_template(Networks=networks)), message)


def test_conflicting_top_level_networks() -> None:
    s = spec(Networks=[{"Target": "a"}], TaskTemplate=task_template(Networks=[{"Target": "b"}]))
    bad(s, "Networks is deprecated")


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ({"Replicated": {"Replicas": -5}}, "invalid replicas value -5: must be a non-negative integer"),
        ({"Replicated": {"Replicas": "3"}}, "invalid replicas value '3'"),
        ({"Replicated": {"Replicas": 1.5}}, "invalid replicas value 1.5"),
        ({"Replicated": {"Replicas": True}}, "invalid replicas value True"),
        ({"Replicated": {"Replicas": 1}, "Global": {}}, "must specify only one service mode"),
        ({"ReplicatedJob": {"MaxConcurrent": -1}}, "cannot unmarshal number -1 into Go struct field"),
        ({"GlobalJob": {"Max": 1}}, "unknown field 'Max' in Mode.GlobalJob"),
        ({"ReplicatedJob": {"Replicas": 1}}, "unknown field 'Replicas' in Mode.ReplicatedJob"),
        ({"Global": {"Max": 1}}, "unknown field 'Max' in Mode.Global"),
        ({"Replicated": {"Count": 1}}, "unknown field 'Count' in Mode.Replicated"),
        ({"Sharded": {}}, "unknown field 'Sharded' in Mode"),
    ],
)
def test_bad_mode(mode: dict[str, Any], message: str) -> None:
    bad(spec(Mode=mode), message)


@pytest.mark.parametrize("section", ["UpdateConfig", "RollbackConfig"])
@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"Parallelism": -1}, "Parallelism must be at least 0"),
        ({"Delay": -1}, "-delay cannot be negative"),
        ({"Monitor": "-1s"}, "-monitor cannot be negative"),
        ({"Monitor": "often"}, "Monitor: invalid duration"),
        ({"MaxFailureRatio": 1.5}, "-maxfailureratio cannot be less than 0 or bigger than 1"),
        ({"MaxFailureRatio": -0.1}, "-maxfailureratio cannot be less than 0 or bigger than 1"),
        ({"MaxFailureRatio": "half"}, "MaxFailureRatio must be a number between 0 and 1"),
        ({"FailureAction": "explode"}, "FailureAction: 'explode'"),
        ({"Order": "random"}, "Order: 'random'"),
        ({"Speed": 1}, "unknown field 'Speed'"),
    ],
)
def test_bad_update_config(section: str, config: dict[str, Any], message: str) -> None:
    bad(spec(**{section: config}), message)


def test_update_config_messages_name_the_kind() -> None:
    bad(spec(UpdateConfig={"Delay": -1}), "UpdateConfig.Delay: update-delay cannot be negative")
    bad(spec(RollbackConfig={"Delay": -1}), "RollbackConfig.Delay: rollback-delay cannot be negative")


def test_rollback_config_cannot_roll_back() -> None:
    bad(spec(RollbackConfig={"FailureAction": "rollback"}), "invalid RollbackConfig.FailureAction: 'rollback'")


def test_max_failure_ratio_bounds_and_ints() -> None:
    out = validate_service_spec(spec(UpdateConfig={"MaxFailureRatio": 1}, RollbackConfig={"MaxFailureRatio": 0.25}))
    assert out["UpdateConfig"]["MaxFailureRatio"] == 1.0
    assert out["RollbackConfig"]["MaxFailureRatio"] == 0.25


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ({"Mode": "round-robin"}, "invalid EndpointSpec.Mode: 'round-robin'"),
        ({"Ports": [{"PublishedPort": 80}]}, "EndpointSpec.Ports[0]: invalid TargetPort None"),
        ({"Ports": [{"TargetPort": 0}]}, "invalid TargetPort 0: must be between 1 and 65535"),
        ({"Ports": [{"TargetPort": 65536}]}, "invalid TargetPort 65536"),
        ({"Ports": [{"TargetPort": "80"}]}, "invalid TargetPort '80'"),
        ({"Ports": [{"TargetPort": 80, "PublishedPort": 70000}]}, "invalid PublishedPort 70000"),
        ({"Ports": [{"TargetPort": 80, "PublishedPort": -1}]}, "invalid PublishedPort -1"),
        ({"Ports": [{"TargetPort": 80, "Protocol": "icmp"}]}, "invalid EndpointSpec.Ports[0].Protocol: 'icmp'"),
        ({"Ports": [{"TargetPort": 80, "PublishMode": "mesh"}]}, "invalid EndpointSpec.Ports[0].PublishMode"),
        ({"Ports": [{"TargetPort": 80, "Bind": "0.0.0.0"}]}, "unknown field 'Bind' in EndpointSpec.Ports[0]"),
        ({"Ports": {"TargetPort": 80}}, "EndpointSpec.Ports must be a list"),
        ({"VirtualIPs": []}, "unknown field 'VirtualIPs' in EndpointSpec"),
        (
            {"Mode": "dnsrr", "Ports": [{"TargetPort": 80, "PublishedPort": 80}]},
            "EndpointSpec: port published with ingress mode can't be used with dnsrr mode",
        ),
        (
            {"Ports": [{"TargetPort": 80, "PublishedPort": 8080}, {"TargetPort": 81, "PublishedPort": 8080}]},
            "EndpointSpec: duplicate published ports provided (8080/tcp)",
        ),
        (
            {
                "Ports": [
                    {"TargetPort": 80, "PublishedPort": 8080},
                    {"TargetPort": 81, "PublishedPort": 8080, "PublishMode": "host"},
                ]
            },
            "duplicate published ports provided",
        ),
    ],
)
def test_bad_endpoint(endpoint: dict[str, Any], message: str) -> None:
    bad(spec(EndpointSpec=endpoint), message)


def test_same_port_on_other_protocols_and_auto_ports_are_fine() -> None:
    ports = [
        {"TargetPort": 53, "PublishedPort": 53, "Protocol": "tcp"},
        {"TargetPort": 53, "PublishedPort": 53, "Protocol": "udp"},
        {"TargetPort": 80},
        {"TargetPort": 81},
    ]
    out = validate_service_spec(spec(EndpointSpec={"Ports": ports}))
    assert len(out["EndpointSpec"]["Ports"]) == 4


def test_dnsrr_with_host_ports_is_fine() -> None:
    ep = {"Mode": "dnsrr", "Ports": [{"TargetPort": 80, "PublishedPort": 80, "PublishMode": "host"}]}
    assert validate_service_spec(spec(EndpointSpec=ep))["EndpointSpec"]["Mode"] == "dnsrr"


# --- updates ------------------------------------------------------------------------------------


def test_update_keeps_name_and_refuses_rename() -> None:
    current = validate_service_spec(spec())
    assert validate_service_spec({"TaskTemplate": task_template()}, current)["Name"] == "web"
    assert validate_service_spec({"Name": "", "TaskTemplate": task_template()}, current)["Name"] == "web"
    bad(spec(Name="api"), "renaming services is not supported", current)


def test_update_replaces_the_whole_spec() -> None:
    current = validate_service_spec(spec(Labels={"a": "1"}, Mode={"Replicated": {"Replicas": 5}}))
    out = validate_service_spec(spec(), current)
    assert out["Labels"] == {}
    assert out["Mode"] == {"Replicated": {"Replicas": 1}}


def test_update_cannot_change_mode_kind() -> None:
    replicated = validate_service_spec(spec())
    glob = validate_service_spec(spec(Mode={"Global": {}}))
    bad(spec(Mode={"Global": {}}), "service mode change is not allowed", replicated)
    bad(spec(), "service mode change is not allowed", glob)
    assert validate_service_spec(spec(Mode={"Global": {}}), glob)["Mode"] == {"Global": {}}
    assert validate_service_spec(spec(Mode={"Replicated": {"Replicas": 9}}), replicated)["Mode"]["Replicated"] == {
        "Replicas": 9
    }


# --- the Service object -------------------------------------------------------------------------


def test_service_object() -> None:
    s = validate_service_spec(spec(EndpointSpec={"Ports": [{"TargetPort": 80, "PublishedPort": 8080}]}))
    svc = service_object("svc1", s, NOW)
    assert svc == {
        "ID": "svc1",
        "Version": {"Index": 0},
        "CreatedAt": NOW,
        "UpdatedAt": NOW,
        "Spec": s,
        "Endpoint": {"Spec": s["EndpointSpec"], "Ports": [], "VirtualIPs": []},
    }
    svc["Spec"]["Name"] = "changed"
    svc["Endpoint"]["Spec"]["Mode"] = "dnsrr"
    assert s["Name"] == "web"  # copies, not references
    assert s["EndpointSpec"]["Mode"] == "vip"


def test_updated_service_and_rollback_swap_specs() -> None:
    v1 = validate_service_spec(spec())
    svc = service_object("svc1", v1, NOW)
    svc["Version"]["Index"] = 7
    svc["Endpoint"]["VirtualIPs"] = [{"NetworkID": "n", "Addr": "10.0.0.2/24"}]
    svc["UpdateStatus"] = {"State": "completed"}
    with pytest.raises(SpecError, match="service svc1 does not have a previous spec"):
        rollback_spec(svc)

    v2 = validate_service_spec(spec(TaskTemplate=task_template(ContainerSpec={"Image": "v2"})))
    up = updated_service(svc, v2, LATER)
    assert up["Spec"] == v2
    assert up["PreviousSpec"] == v1
    assert up["UpdatedAt"] == LATER
    assert up["CreatedAt"] == NOW
    assert up["Version"] == {"Index": 7}  # the store sets the new index
    assert "UpdateStatus" not in up
    assert up["Endpoint"]["VirtualIPs"] == [{"NetworkID": "n", "Addr": "10.0.0.2/24"}]
    assert up["Endpoint"]["Spec"] == v2["EndpointSpec"]
    assert svc["Spec"] == v1 and svc["UpdateStatus"] == {"State": "completed"}  # input untouched

    back = rollback_spec(up)
    assert back == v1
    back["Name"] = "x"
    assert up["PreviousSpec"]["Name"] == "web"
    rolled = updated_service(up, rollback_spec(up), LATER)
    assert rolled["Spec"] == v1
    assert rolled["PreviousSpec"] == v2


def test_updated_service_endpoint_spec_follows() -> None:
    v1 = validate_service_spec(spec())
    v2 = validate_service_spec(spec(EndpointSpec={"Ports": [{"TargetPort": 80}]}))
    up = updated_service(service_object("s", v1, NOW), v2, LATER)
    assert up["Endpoint"]["Spec"]["Ports"][0]["TargetPort"] == 80


# --- what needs new tasks -----------------------------------------------------------------------


def test_spec_differs_for_tasks() -> None:
    base = validate_service_spec(spec())
    scaled = validate_service_spec(spec(Mode={"Replicated": {"Replicas": 10}}, Labels={"x": "y"}))
    slower = validate_service_spec(spec(UpdateConfig={"Delay": "10s"}, RollbackConfig={"Parallelism": 3}))
    image = validate_service_spec(spec(TaskTemplate=task_template(ContainerSpec={"Image": "other"})))
    forced = validate_service_spec(spec(TaskTemplate=task_template(ForceUpdate=1)))
    ports = validate_service_spec(spec(EndpointSpec={"Ports": [{"TargetPort": 80}]}))
    assert not spec_differs_for_tasks(base, scaled)
    assert not spec_differs_for_tasks(base, slower)
    assert spec_differs_for_tasks(base, image)
    assert spec_differs_for_tasks(base, forced)
    assert spec_differs_for_tasks(base, ports)
    # an absent EndpointSpec is the default one
    bare = {k: v for k, v in base.items() if k != "EndpointSpec"}
    assert not spec_differs_for_tasks(base, bare)


def test_only_placement_differs() -> None:
    base = validate_service_spec(spec())
    constrained = validate_service_spec(
        spec(TaskTemplate=task_template(Placement={"Constraints": ["node.role==worker"]}))
    )
    both = validate_service_spec(
        spec(TaskTemplate=task_template(ContainerSpec={"Image": "x"}, Placement={"Constraints": ["node.role==worker"]}))
    )
    assert only_placement_differs(base, constrained)
    assert not only_placement_differs(base, base)
    assert not only_placement_differs(base, both)


# --- status -------------------------------------------------------------------------------------


def _t(state: str, desired: str = "running", node: str = "n1", service: str = "svc1") -> dict[str, Any]:
    return {"ServiceID": service, "NodeID": node, "DesiredState": desired, "Status": {"State": state}}


def test_service_status_replicated() -> None:
    svc = service_object("svc1", validate_service_spec(spec(Mode={"Replicated": {"Replicas": 3}})), NOW)
    tasks = [
        _t("running"),
        _t("running", node="n2"),
        _t("starting"),
        _t("failed", desired="shutdown"),
        _t("running", desired="shutdown"),  # being stopped: not counted
        _t("running", service="other"),
        _t("running", node="down1"),
    ]
    assert service_status(svc, tasks, down_nodes={"down1"}) == {
        "RunningTasks": 2,
        "DesiredTasks": 3,
        "CompletedTasks": 0,
    }
    assert service_status(svc, tasks)["RunningTasks"] == 3


def test_service_status_global_and_completed() -> None:
    svc = service_object("svc1", validate_service_spec(spec(Mode={"Global": {}})), NOW)
    tasks = [
        _t("running", node="a"),
        _t("pending", node="b"),
        _t("new", desired="ready", node="c"),  # a delayed restart is still wanted
        _t("complete", node="d"),
        _t("shutdown", desired="shutdown", node="e"),
    ]
    assert service_status(svc, tasks) == {"RunningTasks": 1, "DesiredTasks": 4, "CompletedTasks": 1}
    assert service_status(svc, []) == {"RunningTasks": 0, "DesiredTasks": 0, "CompletedTasks": 0}
