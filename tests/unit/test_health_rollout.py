"""What health checks mean to the manager (pure): a task whose check has not passed (STARTING) or
failed (FAILED, unhealthy) is no VIP, DNS-RR or mesh backend while the healthy one stays; a rolling
update waits for new tasks to be RUNNING (healthy), and an unhealthy new task is a failure that
`FailureAction: rollback` answers by itself."""

from __future__ import annotations

from shoal.manager.netstate import node_netstate
from shoal.model.ids import format_rfc3339
from shoal.model.task import with_status
from unit.test_netstate import NOW, build
from unit.test_orchestrator import T0, S, commit, nodes, run, service, set_state

UNHEALTHY = "task: non-zero exit (137): dockerexec: unhealthy container"


def test_starting_and_unhealthy_tasks_are_no_backends_and_the_vip_stays() -> None:
    tasks, services, networks, nodes_ = build()
    healthy_ip = tasks[0]["NetworksAttachments"][1]["Addresses"][0].split("/")[0]
    for state, err in (("starting", None), ("failed", UNHEALTHY)):
        changed = [tasks[0], with_status(tasks[1], state, "started", NOW, err=err)]
        net = node_netstate("n0", changed, services, networks, nodes_)
        [lb] = net["LB"]
        assert lb["Backends"] == [healthy_ip] and lb["VIP"], state
        assert net["DNS"][0]["TasksOf"]["web"] == [healthy_ip]
        assert len(net["Published"][0]["Backends"]) == 1
    # a dnsrr service answers with the healthy task's address only
    services[0]["Spec"]["EndpointSpec"] = {"Mode": "dnsrr"}
    services[0]["Endpoint"]["Spec"] = {"Mode": "dnsrr"}
    changed = [tasks[0], with_status(tasks[1], "starting", "starting", NOW)]
    net = node_netstate("n0", changed, services, networks, nodes_)
    assert net["DNS"][0]["Services"]["web"] == [healthy_ip]


def updated(replicas: int, failure_action: str) -> tuple[list, dict, list]:
    ns = nodes(1)
    old = service(replicas)
    tasks = commit([], run([old], [], ns))
    set_state(tasks, "running")
    new = service(replicas, version=20)
    new["PreviousSpec"] = old["Spec"]
    spec = new["Spec"]
    spec["TaskTemplate"]["ContainerSpec"]["HealthCheck"] = {"Test": ["CMD-SHELL", "exit 1"], "Retries": 1}
    spec["UpdateConfig"] = {**spec["UpdateConfig"], "FailureAction": failure_action, "Monitor": 30 * S}
    plan = run([new], tasks, ns, now_ns=T0 + S)
    assert len(plan.creates) == 1
    return commit(tasks, plan), plan.service_updates["svc1"], ns


def is_new(t: dict) -> bool:
    return "HealthCheck" in t["Spec"]["ContainerSpec"]


def test_a_starting_new_task_holds_the_next_batch() -> None:
    tasks, svc, ns = updated(2, "pause")
    set_state(tasks, "starting", is_new)  # running but its check has not passed
    assert not run([svc], tasks, ns, now_ns=T0 + 10 * S).creates
    set_state(tasks, "running", is_new)  # healthy
    assert len(run([svc], tasks, ns, now_ns=T0 + 11 * S).creates) == 1


def test_an_unhealthy_new_task_rolls_the_update_back() -> None:
    tasks, svc, ns = updated(2, "rollback")
    for t in tasks:
        if is_new(t):
            t["Status"].update(State="failed", Err=UNHEALTHY, Timestamp=format_rfc3339(T0 + 3 * S))
    plan = run([svc], tasks, ns, now_ns=T0 + 4 * S)
    status = plan.service_updates["svc1"]["UpdateStatus"]
    assert status["State"] == "rollback_started", status
    assert "HealthCheck" not in plan.service_updates["svc1"]["Spec"]["TaskTemplate"]["ContainerSpec"]


def test_an_unhealthy_new_task_pauses_the_update_by_default() -> None:
    tasks, svc, ns = updated(2, "pause")
    set_state(tasks, "failed", is_new)
    plan = run([svc], tasks, ns, now_ns=T0 + 4 * S)
    assert plan.service_updates["svc1"]["UpdateStatus"]["State"] == "paused"


def test_the_driver_plans_the_images_check_unless_the_service_overrides_or_disables_it(tmp_path) -> None:
    from shoal.runtime.images import Image, ImageStore
    from shoal.runtime.oci.driver import OCIDriver
    from unit.test_runtime_oci import V1

    driver = OCIDriver(tmp_path / "t", images=ImageStore(tmp_path / "i"), run_dir=tmp_path / "r", cgroup_layout=V1)
    image_check = {"Test": ["CMD-SHELL", "wget -q localhost:8080"], "Interval": 10 * S, "Retries": 5}
    img = Image(
        id="sha256:" + "a" * 64,
        repo_tags=["app:1"],
        created="",
        config={"Cmd": ["/app"], "Healthcheck": image_check},
        rootfs=None,
    )

    def planned(hc: dict | None) -> dict | None:
        cspec: dict = {"Image": "app:1", **({"HealthCheck": hc} if hc else {})}
        _, extra = driver.resolve(
            {"ID": "abcdefghijklmnopqrstuvwxy", "ServiceID": "s", "Slot": 1, "Spec": {"ContainerSpec": cspec}}, img
        )
        return extra["healthcheck"]

    assert planned(None) == {**image_check, "Timeout": 30 * S, "StartPeriod": 0, "StartInterval": 5 * S}
    assert planned({"Interval": S})["Interval"] == S  # type: ignore[index]
    assert planned({"Interval": S})["Test"] == image_check["Test"]  # type: ignore[index]
    assert planned({"Test": ["NONE"]}) is None
