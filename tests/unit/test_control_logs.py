"""`service logs` asks the nodes of the tasks that `log_tasks` chooses: the service's own tasks that
were placed and started (a task never started has no log anywhere)."""

from __future__ import annotations

import pytest

from shoal.errors import NotFound
from shoal.manager.control import services
from shoal.store.changes import Change
from unit.test_control_race import StateStore


def task(tid: str, service_id: str, state: str, node: str | None = "n1") -> dict:
    return {
        "ID": tid,
        "ServiceID": service_id,
        "Slot": 1,
        "NodeID": node,
        "DesiredState": "running",
        "CreatedAt": "t",
        "Status": {"State": state},
    }


def test_log_tasks_are_the_services_placed_and_started_tasks() -> None:
    store = StateStore()
    for name in ("web", "db"):
        _, changes = services.create(store, {"Name": name, "TaskTemplate": {"ContainerSpec": {"Image": "shoal/host"}}})
        store.commit(changes)
    web = store.find_by_name("service", "web")["ID"]  # type: ignore[index]
    db = store.find_by_name("service", "db")["ID"]  # type: ignore[index]
    tasks = [
        task("t-run", web, "running"),
        task("t-done", web, "complete"),
        task("t-failed", web, "failed"),
        task("t-starting", web, "starting"),
        *(task(f"t-{s}", web, s) for s in ("new", "pending", "assigned", "rejected")),
        task("t-unplaced", web, "running", node=None),
        task("t-db", db, "running"),
    ]
    store.commit([Change(op="create", kind="task", obj=t) for t in tasks])
    service, chosen = services.log_tasks(store, "web")
    assert service["ID"] == web
    assert sorted(t["ID"] for t in chosen) == ["t-done", "t-failed", "t-run", "t-starting"]
    assert services.log_tasks(store, web[:6])[0]["ID"] == web  # by unique ID prefix too
    store.commit([Change(op="delete", kind="service", obj_id=web)])
    with pytest.raises(NotFound, match=f"service {web} not found"):  # a follow stops here
        services.log_tasks(store, web)
