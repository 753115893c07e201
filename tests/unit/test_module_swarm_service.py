"""swarm_service against a fake agent (shoal's own spec validation): create, in-place updates with the
version, what is compared (only what the user set), check and diff mode, bad arguments, waiting."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from unit.test_module_support import FakeAgent, module_runner, serve_fake_agent

from ansible_collections.shoal.swarm.plugins.modules import swarm_service  # isort: skip

NODEJS: dict[str, Any] = {
    "name": "nodejs",
    "image": "shoal/hello",
    "replicas": 2,
    "publish": [{"published_port": 80, "target_port": 8080}],
    "constraints": ["node.role==worker"],
}


@pytest.fixture
def agent() -> Iterator[FakeAgent]:
    with serve_fake_agent() as fake:
        yield fake.enable_workloads()


@pytest.fixture
def run(agent: FakeAgent):
    return module_runner(swarm_service, agent)


def service_writes(agent: FakeAgent) -> list[tuple[str, str, dict[str, str], Any]]:
    return [w for w in agent.writes() if w[1].startswith("/services")]


def spec_of(agent: FakeAgent, name: str = "nodejs") -> dict[str, Any]:
    return agent.find_service(name)["Spec"]


# ---- create, then idempotent
def test_create_sends_only_what_was_given_and_a_second_run_changes_nothing(agent: FakeAgent, run) -> None:
    failed, result = run(**NODEJS)
    assert not failed and result["changed"], result
    assert result["actions"] == ["service created"] and result["changes"] == ["state"]
    ((method, path, _query, body),) = service_writes(agent)
    assert (method, path) == ("POST", "/services/create")
    assert body == {
        "Name": "nodejs",
        "TaskTemplate": {
            "ContainerSpec": {"Image": "shoal/hello"},
            "Placement": {"Constraints": ["node.role==worker"]},
        },
        "Mode": {"Replicated": {"Replicas": 2}},
        "EndpointSpec": {
            "Ports": [{"Protocol": "tcp", "TargetPort": 8080, "PublishedPort": 80, "PublishMode": "ingress"}]
        },
    }
    assert result["service_id"] == agent.find_service("nodejs")["ID"]
    assert result["service"]["Spec"]["TaskTemplate"]["RestartPolicy"]["Condition"] == "any"  # the agent's default
    failed, again = run(**NODEJS)
    assert not failed and not again["changed"] and again["changes"] == [], again
    assert len(service_writes(agent)) == 1


def test_a_full_spec_round_trips_without_changes(agent: FakeAgent, run) -> None:
    from ansible_collections.shoal.swarm.plugins.module_utils._shoal_api import ShoalClient

    ShoalClient(agent.sock).post("/networks/create", {"Name": "backend", "Driver": "overlay"})
    full = {
        "name": "api",
        "image": "shoal/host",
        "command": "sleep 3600",
        "args": ["--verbose"],
        "env": {"B": 2, "A": "one", "FLAG": True},
        "mode": "replicated",
        "replicas": 3,
        "constraints": ["node.role==worker", "node.labels.zone!=c"],
        "placement_preferences": [{"spread": "node.labels.zone"}],
        "max_replicas": 2,
        "resources": {"limits": {"cpus": 0.5, "memory": "64M", "pids": 100}, "reservations": {"memory": "32M"}},
        "restart_policy": {"condition": "on-failure", "delay": "2s", "max_attempts": 3, "window": "1m"},
        "update_config": {
            "parallelism": 2,
            "delay": "5s",
            "failure_action": "rollback",
            "monitor": "10s",
            "max_failure_ratio": 0.25,
            "order": "start-first",
        },
        "rollback_config": {"parallelism": 0, "failure_action": "continue"},
        "networks": ["backend"],
        "publish": [{"published_port": 8443, "target_port": 443, "protocol": "tcp", "mode": "host"}],
        "endpoint_mode": "vip",
        "labels": {"tier": "api", "version": 2},
        "container_labels": {"role": "server"},
        "hostname": "api-host",
        "user": "nobody",
        "workdir": "/srv",
        "stop_signal": "SIGINT",
        "stop_grace_period": "30s",
    }
    failed, result = run(**full)
    assert not failed and result["changed"], result
    spec = spec_of(agent, "api")
    template = spec["TaskTemplate"]
    assert template["ContainerSpec"]["Command"] == ["sleep", "3600"]
    assert sorted(template["ContainerSpec"]["Env"]) == ["A=one", "B=2", "FLAG=true"]
    assert template["Resources"]["Limits"] == {"NanoCPUs": 500_000_000, "MemoryBytes": 64 * 1024**2, "Pids": 100}
    assert template["Resources"]["Reservations"]["MemoryBytes"] == 32 * 1024**2
    assert template["RestartPolicy"] == {
        "Condition": "on-failure",
        "Delay": 2 * 10**9,
        "MaxAttempts": 3,
        "Window": 60 * 10**9,
    }
    assert template["Placement"]["Preferences"] == [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}]
    assert template["Networks"][0]["Target"] == agent.find_network("backend")["ID"]  # stored by ID
    assert spec["UpdateConfig"]["Order"] == "start-first" and spec["UpdateConfig"]["Monitor"] == 10 * 10**9
    assert spec["Labels"] == {"tier": "api", "version": "2"}
    assert template["ContainerSpec"]["StopGracePeriod"] == 30 * 10**9
    full["env"] = {"FLAG": True, "A": "one", "B": "2"}  # another order, same environment
    full["stop_grace_period"] = "30000ms"  # another spelling, same duration
    full["resources"]["limits"]["memory"] = "65536k"
    failed, again = run(**full)
    assert not failed and not again["changed"], again["changes"]


# ---- updates: in place, with the version, only what was set
def test_scale_only_changes_replicas_in_place_with_the_version(agent: FakeAgent, run) -> None:
    run(**NODEJS)
    before = agent.find_service("nodejs")
    failed, result = run(name="nodejs", replicas=3, diff=True)
    assert not failed and result["changed"] and result["changes"] == ["replicas"], result
    (update,) = [w for w in service_writes(agent) if w[1].endswith("/update")]
    assert update[1] == f"/services/{before['ID']}/update"
    assert update[2]["version"] == str(before["Version"]["Index"])
    assert update[3]["TaskTemplate"] == before["Spec"]["TaskTemplate"]  # everything else as it was
    assert update[3]["Mode"] == {"Replicated": {"Replicas": 3}}
    assert agent.find_service("nodejs")["ID"] == before["ID"]  # never recreated
    assert result["diff"]["before"]["replicas"] == 2 and result["diff"]["after"]["replicas"] == 3
    assert result["diff"]["before"]["image"] == result["diff"]["after"]["image"] == "shoal/hello"


def test_unset_options_are_left_as_they_are(agent: FakeAgent, run) -> None:
    run(**NODEJS, env=["A=1"], labels={"x": "y"})
    failed, result = run(name="nodejs", image="shoal/hello")
    assert not failed and not result["changed"], result
    spec = spec_of(agent)
    assert spec["Mode"]["Replicated"]["Replicas"] == 2 and spec["Labels"] == {"x": "y"}
    assert spec["TaskTemplate"]["ContainerSpec"]["Env"] == ["A=1"]


def test_empty_values_clear(agent: FakeAgent, run) -> None:
    run(**NODEJS, labels={"x": "y"})
    failed, result = run(name="nodejs", constraints=[], labels={}, publish=[])
    assert not failed and sorted(result["changes"]) == ["constraints", "labels", "publish"], result
    spec = spec_of(agent)
    assert spec["TaskTemplate"]["Placement"]["Constraints"] == [] and spec["Labels"] == {}
    assert spec["EndpointSpec"]["Ports"] == []


def test_sections_compare_only_the_sub_options_given(agent: FakeAgent, run) -> None:
    run(**NODEJS, restart_policy={"condition": "on-failure", "max_attempts": 5})
    failed, result = run(name="nodejs", restart_policy={"condition": "on-failure"})
    assert not failed and not result["changed"], result
    failed, result = run(name="nodejs", restart_policy={"delay": "1s"}, diff=True)
    assert not failed and result["changes"] == ["restart_policy"], result
    policy = spec_of(agent)["TaskTemplate"]["RestartPolicy"]
    assert policy == {"Condition": "on-failure", "Delay": 10**9, "MaxAttempts": 5, "Window": 0}
    assert result["diff"]["after"]["restart_policy"] == {
        "condition": "on-failure",
        "delay": "1s",
        "max_attempts": 5,
        "window": "0s",
    }
    failed, result = run(name="nodejs", resources={"limits": {"memory": "128M"}})
    assert not failed and result["changes"] == ["resources"]
    failed, result = run(name="nodejs", resources={"limits": {"memory": "128M"}, "reservations": {"cpus": 0}})
    assert not failed and not result["changed"], result


def test_force_update_bumps_force_update_every_run(agent: FakeAgent, run) -> None:
    run(**NODEJS)
    for expected in (1, 2):
        failed, result = run(name="nodejs", force_update=True)
        assert not failed and result["changed"] and result["changes"] == ["force_update"], result
        assert spec_of(agent)["TaskTemplate"]["ForceUpdate"] == expected


def test_a_version_raced_by_the_orchestrator_is_read_again(agent: FakeAgent, run) -> None:
    run(**NODEJS)
    agent.conflicts = 1
    failed, result = run(name="nodejs", replicas=1)
    assert not failed and result["changed"], result
    updates = [w for w in service_writes(agent) if w[1].endswith("/update")]
    assert len(updates) == 2 and spec_of(agent)["Mode"]["Replicated"]["Replicas"] == 1


def test_networks_by_name_are_stored_by_id_and_compared_by_name(agent: FakeAgent, run) -> None:
    from ansible_collections.shoal.swarm.plugins.module_utils._shoal_api import ShoalClient

    api = ShoalClient(agent.sock)
    api.post("/networks/create", {"Name": "front", "Driver": "overlay"})
    api.post("/networks/create", {"Name": "back", "Driver": "overlay"})
    failed, result = run(**NODEJS, networks=["front", "back"])
    assert not failed, result
    failed, result = run(name="nodejs", networks=["back", "front"])
    assert not failed and not result["changed"], result  # the order does not matter
    failed, result = run(name="nodejs", networks=["back"], diff=True)
    assert not failed and result["changes"] == ["networks"]
    assert result["diff"]["before"]["networks"] == ["front", "back"] and result["diff"]["after"]["networks"] == ["back"]
    assert [n["Target"] for n in spec_of(agent)["TaskTemplate"]["Networks"]] == [agent.find_network("back")["ID"]]


def test_network_aliases_as_community_docker_takes_them(agent: FakeAgent, run) -> None:
    from ansible_collections.shoal.swarm.plugins.module_utils._shoal_api import ShoalClient

    api = ShoalClient(agent.sock)
    api.post("/networks/create", {"Name": "front", "Driver": "overlay"})
    api.post("/networks/create", {"Name": "back", "Driver": "overlay"})
    # attachment options: shoal's overlay driver takes none, so the agent refuses them and nothing is written
    refused = ["front", {"name": "back", "aliases": ["api"], "options": {"mtu": 1400}}]
    failed, result = run(**NODEJS, networks=refused)
    assert failed and "DriverOpts" in result["msg"] and "not supported" in result["msg"], result
    assert not agent.services
    networks = ["front", {"name": "back", "aliases": ["api", "db"]}]
    failed, result = run(**NODEJS, networks=networks)
    assert not failed and result["changed"], result
    stored = spec_of(agent)["TaskTemplate"]["Networks"]
    back = next(n for n in stored if n["Target"] == agent.find_network("back")["ID"])
    assert back["Aliases"] == ["api", "db"] and "DriverOpts" not in back
    front = next(n for n in stored if n["Target"] == agent.find_network("front")["ID"])
    assert front.get("Aliases") in (None, []) and "DriverOpts" not in front
    # the same aliases in another order, and the network by name again: nothing to do
    again = [{"name": "back", "aliases": ["db", "api"]}, {"name": "front"}]
    failed, result = run(name="nodejs", networks=again)
    assert not failed and not result["changed"], result
    # check mode shows the alias change and writes nothing
    version = agent.find_service("nodejs")["Version"]["Index"]
    changed = ["front", {"name": "back", "aliases": ["api"]}]
    failed, result = run(check=True, diff=True, name="nodejs", networks=changed)
    assert not failed and result["changed"] and result["changes"] == ["networks"], result
    before = next(n for n in result["diff"]["before"]["networks"] if isinstance(n, dict))
    after = next(n for n in result["diff"]["after"]["networks"] if isinstance(n, dict))
    assert before["aliases"] == ["api", "db"] and after["aliases"] == ["api"]
    assert agent.find_service("nodejs")["Version"]["Index"] == version
    failed, result = run(name="nodejs", networks=changed)
    assert not failed and result["changed"], result
    back_id = agent.find_network("back")["ID"]
    back = next(n for n in spec_of(agent)["TaskTemplate"]["Networks"] if n["Target"] == back_id)
    assert back["Aliases"] == ["api"]
    # listed without aliases: the aliases in place go
    failed, result = run(name="nodejs", networks=["front", "back"])
    assert not failed and result["changed"], result
    assert all(not n.get("Aliases") for n in spec_of(agent)["TaskTemplate"]["Networks"])
    failed, result = run(name="nodejs", networks=["front", "back"])
    assert not failed and not result["changed"], result


@pytest.mark.parametrize(
    ("networks", "message"),
    [
        ([{"aliases": ["api"]}], "networks[0]: name is required"),
        ([{"name": "front", "alias": ["api"]}], "networks[0]: unsupported key(s) alias"),
        ([{"name": "front", "aliases": "api"}], "networks[0].aliases: a list of names is expected"),
        ([{"name": "front", "options": ["mtu"]}], "networks[0].options: a dictionary is expected"),
        ([3], "networks[0]: a network name or a dictionary is expected, not int"),
        (["front", {"name": "front", "aliases": ["x"]}], "networks: a network is listed more than once"),
    ],
)
def test_bad_network_items_fail_before_anything_is_written(agent: FakeAgent, run, networks, message) -> None:
    failed, result = run(**NODEJS, networks=networks)
    assert failed and message in result["msg"], result
    assert service_writes(agent) == []


def test_an_invalid_alias_is_the_agents_400(agent: FakeAgent, run) -> None:
    from ansible_collections.shoal.swarm.plugins.module_utils._shoal_api import ShoalClient

    ShoalClient(agent.sock).post("/networks/create", {"Name": "front", "Driver": "overlay"})
    failed, result = run(**NODEJS, networks=[{"name": "front", "aliases": ["no spaces"]}])
    assert failed and "invalid network alias 'no spaces'" in result["msg"], result
    assert [w[:2] for w in service_writes(agent)] == [("POST", "/services/create")]  # refused by the agent
    assert not agent.services


def test_unknown_network_fails_clearly_and_creates_nothing(agent: FakeAgent, run) -> None:
    failed, result = run(**NODEJS, networks=["nosuch"])
    assert failed and "network nosuch not found: create it first" in result["msg"], result
    assert service_writes(agent) == []


def test_ingress_network_is_refused(agent: FakeAgent, run) -> None:
    failed, result = run(**NODEJS, networks=["ingress"])
    assert failed and "routing mesh" in result["msg"], result
    assert service_writes(agent) == []


# ---- check mode and diff mode
def test_check_mode_predicts_create_and_update_and_writes_nothing(agent: FakeAgent, run) -> None:
    failed, result = run(check=True, diff=True, **NODEJS)
    assert not failed and result["changed"] and result["service_id"] == "", result
    assert result["diff"]["before"] == {"state": "absent"}
    assert result["diff"]["after"]["replicas"] == 2 and result["diff"]["after"]["state"] == "present"
    assert agent.writes() == []
    run(**NODEJS)
    version = agent.find_service("nodejs")["Version"]["Index"]
    failed, result = run(check=True, diff=True, name="nodejs", image="shoal/host", replicas=2)
    assert not failed and result["changed"] and result["changes"] == ["image"], result
    assert result["diff"]["before"]["image"] == "shoal/hello" and result["diff"]["after"]["image"] == "shoal/host"
    assert agent.find_service("nodejs")["Version"]["Index"] == version
    failed, result = run(check=True, name="nodejs", replicas=2)
    assert not failed and not result["changed"]
    failed, result = run(check=True, name="nodejs", state="absent")
    assert not failed and result["changed"] and agent.find_service("nodejs")


def test_check_mode_with_a_network_an_earlier_task_would_create_warns(agent: FakeAgent, run) -> None:
    failed, result = run(check=True, **NODEJS, networks=["later"])
    assert not failed and result["changed"], result
    assert "network later not found" in str(result["warnings"])


# ---- removal
def test_absent_removes_then_changes_nothing(agent: FakeAgent, run) -> None:
    run(**NODEJS)
    failed, result = run(name="nodejs", state="absent", wait=True, diff=True)
    assert not failed and result["changed"] and result["diff"]["after"] == {"state": "absent"}, result
    assert agent.services == []
    failed, result = run(name="nodejs", state="absent")
    assert not failed and not result["changed"]


# ---- bad arguments fail before anything is touched
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"replicas": -5}, "replicas must be 0 or more, not -5"),
        ({"publish": [{"target_port": 80, "mode": "sideways"}]}, "value of mode must be one of: ingress, host"),
        ({"mode": "global", "replicas": 2}, "replicas applies to replicated services and jobs only"),
        (
            {"state": "absent"},
            "state=absent: these options apply to state=present only: image, replicas, constraints, publish",
        ),
        ({"endpoint_mode": "dnsrr"}, "endpoint_mode=dnsrr gives the service no virtual IP"),
        ({"publish": [{"target_port": 70000}]}, "target_port must be between 1 and 65535"),
        (
            {"publish": [{"target_port": 80, "published_port": 8080}, {"target_port": 81, "published_port": 8080}]},
            "port 8080/tcp is published more than once",
        ),
        ({"resources": {"limits": {"memory": "lots"}}}, "is not a size"),
        ({"resources": {"limits": {"memory": "1M"}}}, "must be at least 4M"),
        ({"resources": {"limits": {"cpus": 0.5}, "reservations": {"cpus": 1}}}, "cpus reservation (1.0) exceeds"),
        ({"restart_policy": {"delay": "soon"}}, "restart_policy.delay: 'soon' is not a duration"),
        ({"update_config": {"max_failure_ratio": 2}}, "max_failure_ratio must be between 0 and 1"),
        (
            {"rollback_config": {"failure_action": "rollback"}},
            "value of failure_action must be one of: continue, pause",
        ),
        ({"workdir": "srv"}, "workdir must be an absolute path"),
        ({"env": ["=x"]}, "invalid environment variable"),
        ({"name": "web.app"}, "invalid service name 'web.app'"),
        ({"wait_timeout": 0}, "wait_timeout must be at least 1, not 0"),
    ],
)
def test_bad_arguments_fail_clearly_and_write_nothing(agent: FakeAgent, run, args: dict[str, Any], message) -> None:
    failed, result = run(**{**NODEJS, **args})
    assert failed and message in result["msg"], result
    assert agent.writes() == []


def test_the_agents_refusal_is_surfaced(agent: FakeAgent, run) -> None:
    failed, result = run(**{**NODEJS, "stop_signal": "SIGNOPE"})
    assert failed and "invalid signal 'SIGNOPE'" in result["msg"] and result["status"] == 400, result
    assert agent.services == []


def test_dnsrr_conflicts_with_the_ports_the_service_keeps(agent: FakeAgent, run) -> None:
    run(**NODEJS)
    failed, result = run(name="nodejs", endpoint_mode="dnsrr")
    assert failed and "service nodejs publishes 80:8080 in ingress mode: publish with mode=host" in result["msg"]
    failed, result = run(name="nodejs", endpoint_mode="dnsrr", publish=[{"target_port": 8080, "mode": "host"}])
    assert not failed and result["changed"], result
    assert len([w for w in service_writes(agent) if w[1].endswith("/update")]) == 1  # the refused one wrote nothing


def test_create_without_image_fails(agent: FakeAgent, run) -> None:
    failed, result = run(name="nodejs", replicas=2)
    assert failed and "image is needed to create it" in result["msg"]


def test_mode_cannot_change_in_place(agent: FakeAgent, run) -> None:
    run(**NODEJS)
    failed, result = run(name="nodejs", mode="global", replicas=None)
    assert failed and "is replicated and cannot become global in place: remove it first" in result["msg"], result
    run(name="everywhere", image="shoal/host", mode="global")
    failed, result = run(name="everywhere", replicas=3)
    assert failed and "service everywhere: replicas applies to replicated services and jobs only" in result["msg"]
    assert not [w for w in service_writes(agent) if w[1].endswith("/update")]


# ---- waiting
def test_wait_returns_once_every_task_runs_the_current_spec(agent: FakeAgent, run) -> None:
    agent.task_reads_to_run = 3
    failed, result = run(**NODEJS, wait=True)
    assert not failed, result
    assert len(result["tasks"]) == 2 and all(t["Status"]["State"] == "running" for t in result["tasks"])
    failed, result = run(name="nodejs", image="shoal/host", wait=True)
    assert not failed and result["changed"], result
    assert all(t["Spec"]["ContainerSpec"]["Image"] == "shoal/host" for t in result["tasks"])
    assert len(result["tasks"]) == 2


def test_wait_times_out_with_the_tasks_error(agent: FakeAgent, run) -> None:
    agent.task_error = "image nosuch/image not found"
    failed, result = run(**{**NODEJS, "image": "nosuch/image"}, wait=True, wait_timeout=1)
    assert failed and result["changed"], result  # the service was created
    assert "timed out after 1 s waiting for service nodejs to converge: 0 of 2 task(s)" in result["msg"]
    assert "last task error: image nosuch/image not found" in result["msg"]


def test_wait_fails_when_the_update_was_rolled_back_but_not_for_an_old_rollback(agent: FakeAgent, run) -> None:
    run(**NODEJS)
    agent.update_status = {"State": "rollback_completed", "Message": "update rolled back due to failure"}
    failed, result = run(name="nodejs", image="shoal/host", wait=True)
    assert failed and result["changed"], result
    assert "did not converge: its update was rolled back: update rolled back due to failure" in result["msg"]
    failed, result = run(name="nodejs", wait=True)  # nothing to change: the old rollback is history
    assert not failed and not result["changed"], result


def test_wait_asks_the_api_for_its_up_to_date_view(agent: FakeAgent, run) -> None:
    failed, result = run(**NODEJS, wait=True)
    assert not failed, result
    service_id = result["service_id"]
    reads = [r for r in agent.requests if r[0] == "GET" and r[1] in ("/services", "/tasks")]
    assert ("/services", {"id": [service_id]}) in [(p, json.loads(q["filters"])) for _, p, q, _ in reads if q]
    assert all(q.get("status") == "true" for _, p, q, _ in reads if p == "/services")
    task_filters = [json.loads(q["filters"]) for _, p, q, _ in reads if p == "/tasks"]
    assert task_filters and all(
        f == {"service": [service_id], "_up-to-date": ["true"], "desired-state": ["running"]} for f in task_filters
    )


def _task(task_id: str, state: str) -> dict[str, Any]:
    return {"ID": task_id, "DesiredState": "running", "Status": {"State": state}}


@pytest.mark.parametrize(
    ("service", "current", "expected"),
    [
        # every desired task runs the current spec and nothing else runs
        (
            {"ServiceStatus": {"RunningTasks": 2, "DesiredTasks": 2}},
            [_task("a", "running"), _task("b", "running")],
            True,
        ),
        # an old task still runs next to the new ones (RunningTasks counts it)
        (
            {"ServiceStatus": {"RunningTasks": 3, "DesiredTasks": 2}},
            [_task("a", "running"), _task("b", "running")],
            False,
        ),
        # one new task is still starting
        (
            {"ServiceStatus": {"RunningTasks": 2, "DesiredTasks": 2}},
            [_task("a", "running"), _task("b", "starting")],
            False,
        ),
        # a rolling update is under way
        (
            {"ServiceStatus": {"RunningTasks": 1, "DesiredTasks": 1}, "UpdateStatus": {"State": "updating"}},
            [_task("a", "running")],
            False,
        ),
        # a global service with no task yet has not converged; a replicated one scaled to 0 has
        ({"Spec": {"Mode": {"Global": {}}}, "ServiceStatus": {"RunningTasks": 0, "DesiredTasks": 0}}, [], False),
        ({"Spec": {"Mode": {"Replicated": {"Replicas": 0}}}, "ServiceStatus": {"DesiredTasks": 0}}, [], True),
    ],
)
def test_convergence_reads_the_apis_service_status(service: dict[str, Any], current, expected: bool) -> None:
    assert swarm_service.converged(service, current)[0] is expected


# ---- pure helpers
@pytest.mark.parametrize(
    ("text", "size"),
    [("64M", 64 * 1024**2), ("64m", 64 * 1024**2), ("512MiB", 512 * 1024**2), ("1.5g", 1536 * 1024**2), ("100", 100)],
)
def test_memory_sizes(text: str, size: int) -> None:
    assert swarm_service.parse_memory(text, "memory") == size


def test_env_as_dict_or_list() -> None:
    assert swarm_service.env_list({"A": 1, "B": None, "C": False}) == ["A=1", "B=", "C=false"]
    assert swarm_service.env_list(["A=1", "UNSET"]) == ["A=1", "UNSET"]
    with pytest.raises(swarm_service.ParamError):
        swarm_service.env_list("A=1")


# ---- registry: resolve_image, with_registry_auth (the docker CLI's way)
REGISTRY = "10.213.0.1:5000"
PRIVATE = f"{REGISTRY}/testbed/hello:1"
DIGEST_1, DIGEST_2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def answer_distribution(agent: FakeAgent, digests: dict[str, str]) -> list[str]:
    """The fake manager answers `/distribution/{name}/json` from `digests` (the registry's view);
    returns the list of names it was asked about."""
    asked: list[str] = []
    handle = agent.handle

    def with_distribution(method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if method == "GET" and path.startswith("/distribution/") and path.endswith("/json"):
            name = path[len("/distribution/") : -len("/json")]
            asked.append(name)
            if name not in digests:
                return 401, {"message": f"pull {name}: unauthorized: authentication required"}
            return 200, {"Descriptor": {"digest": digests[name], "size": 1, "mediaType": "x"}, "Platforms": []}
        return handle(method, path, query, body)

    agent.handle = with_distribution  # type: ignore[method-assign]
    return asked


def sent_auth(agent: FakeAgent, method: str, prefix: str) -> list[dict[str, Any] | None]:
    import base64

    out: list[dict[str, Any] | None] = []
    for m, path, headers in agent.headers:
        if m == method and path.startswith(prefix):
            raw = headers.get("X-Registry-Auth")
            out.append(None if raw is None else json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))))
    return out


def test_resolve_image_pins_the_digest_and_a_second_run_is_not_a_change(agent: FakeAgent, run) -> None:
    registry = {PRIVATE: DIGEST_1}
    asked = answer_distribution(agent, registry)
    args = {"name": "web", "image": PRIVATE, "resolve_image": "always"}
    failed, result = run(**args)
    assert not failed and result["changed"], result
    assert spec_of(agent, "web")["TaskTemplate"]["ContainerSpec"]["Image"] == f"{PRIVATE}@{DIGEST_1}"
    failed, again = run(diff=True, **args)
    assert not failed and not again["changed"], again
    # "changed" does not even ask when the tag is the same; "never" compares without the digest
    for mode in ("changed", "never"):
        failed, again = run(name="web", image=PRIVATE, resolve_image=mode)
        assert not failed and not again["changed"], again
    assert asked == [PRIVATE, PRIVATE]
    # the tag now names other bits: always sees it (check mode predicts it, diff shows the new pin)
    registry[PRIVATE] = DIGEST_2
    failed, check = run(check=True, diff=True, **args)
    assert not failed and check["changed"] and check["changes"] == ["image"], check
    assert check["diff"]["after"]["image"] == f"{PRIVATE}@{DIGEST_2}"
    assert spec_of(agent, "web")["TaskTemplate"]["ContainerSpec"]["Image"] == f"{PRIVATE}@{DIGEST_1}"
    failed, result = run(**args)
    assert not failed and result["changed"]
    assert spec_of(agent, "web")["TaskTemplate"]["ContainerSpec"]["Image"] == f"{PRIVATE}@{DIGEST_2}"


def test_a_registry_that_cannot_tell_fails_with_its_reason_and_writes_nothing(agent: FakeAgent, run) -> None:
    answer_distribution(agent, {})
    failed, result = run(name="web", image=PRIVATE, resolve_image="changed")
    assert failed and "unauthorized" in result["msg"], result
    assert service_writes(agent) == []


def test_with_registry_auth_sends_the_credentials_and_never_returns_them(agent: FakeAgent, run) -> None:
    answer_distribution(agent, {PRIVATE: DIGEST_1})
    secret = "no-one-may-see-this"
    creds = {"with_registry_auth": True, "registry_username": "shoal", "registry_password": secret}
    failed, result = run(diff=True, name="web", image=PRIVATE, resolve_image="always", **creds)
    assert not failed and result["changed"], result
    auth = {"username": "shoal", "password": secret, "serveraddress": REGISTRY}
    assert sent_auth(agent, "GET", "/distribution/") == [auth]
    assert sent_auth(agent, "POST", "/services/create") == [auth]
    assert secret not in json.dumps(result)
    # credentials alone are no change; an update sends them; without the option none are sent
    failed, again = run(name="web", image=PRIVATE, **creds)
    assert not failed and not again["changed"], again
    failed, result = run(name="web", replicas=2, **creds)
    assert not failed and result["changed"] and secret not in json.dumps(result)
    failed, result = run(name="web", replicas=3)
    assert not failed and result["changed"]
    assert sent_auth(agent, "POST", "/services/") == [auth, auth, None]


def test_with_registry_auth_reads_the_docker_config(agent: FakeAgent, run, tmp_path, monkeypatch) -> None:
    import base64

    token = base64.b64encode(b"shoal:from-config").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {REGISTRY: {"auth": token}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    failed, result = run(name="web", image=PRIVATE, with_registry_auth=True)
    assert not failed, result
    assert sent_auth(agent, "POST", "/services/create") == [
        {"username": "shoal", "password": "from-config", "serveraddress": REGISTRY}
    ]
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "none"))
    failed, result = run(name="web", image=PRIVATE, replicas=2, with_registry_auth=True)
    assert not failed, result
    assert sent_auth(agent, "POST", "/services/")[-1] == {}  # an empty AuthConfig: no credentials


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"registry_username": "u", "registry_password": "p"}, "only used with with_registry_auth=true"),
        ({"registry_username": "u", "with_registry_auth": True}, "parameters are required together"),
        ({"resolve_image": "sometimes"}, "value of resolve_image must be one of"),
    ],
)
def test_bad_registry_arguments_fail_and_write_nothing(agent: FakeAgent, run, args, message) -> None:
    failed, result = run(name="web", image=PRIVATE, **args)
    assert failed and message in result["msg"], result
    assert service_writes(agent) == []
