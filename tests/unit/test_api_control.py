"""The thin HTTP shells over manager/control: /networks, /services, /tasks with `filters=` as the
docker SDK sends them, answered from the real control calls and state machine (no Raft)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shoal.api import local
from shoal.api import networks as networks_api
from shoal.api import services as services_api
from shoal.api.errors import error_middleware
from shoal.api.keys import AGENT
from shoal.manager.raftview import RaftView
from shoal.model.objects import new_node
from shoal.store.changes import Change
from unit.test_control_race import StateStore


class FakeManager:
    def __init__(self, store: StateStore) -> None:
        self.store = store


class FakeAgent:
    identity = None

    def __init__(self) -> None:
        self.manager = FakeManager(StateStore())

    def require_manager(self) -> FakeManager:
        return self.manager


def calls(requests: list[tuple[str, str, Any]]) -> list[tuple[int, Any]]:
    async def run() -> list[tuple[int, Any]]:
        app = web.Application(middlewares=[error_middleware])
        app[AGENT] = FakeAgent()  # type: ignore[assignment]
        for method, path, handler in services_api.ROUTES + networks_api.ROUTES:
            app.router.add_route(method, path, handler)
        out = []
        async with TestClient(TestServer(app)) as client:
            for method, path, body in requests:
                if callable(body):
                    body(app[AGENT].manager.store)
                    continue
                resp = await client.request(method, path, json=body)
                out.append((resp.status, await resp.json() if resp.content_length else None))
        return out

    return asyncio.run(run())


def q(filters: dict[str, list[str]]) -> str:
    return "?filters=" + json.dumps(filters)


def add_task(store: StateStore) -> None:
    web_id = store.find_by_name("service", "web")["ID"]  # type: ignore[index]
    for slot in (1, 2):
        task = {"ID": f"task{slot}", "ServiceID": web_id, "Slot": slot, "DesiredState": "running", "CreatedAt": "t"}
        store.commit([Change(op="create", kind="task", obj=task)])


def test_networks_filters_and_removal_over_http() -> None:
    web_spec = {
        "Name": "web",
        "TaskTemplate": {"ContainerSpec": {"Image": "shoal/host"}, "Networks": [{"Target": "b"}]},
    }
    created, labelled, custom, bad, svc, in_use, tasks, web1, removed_svc, removed = calls(
        [
            ("POST", "/networks/create", {"Name": "b", "Driver": "overlay", "Labels": {"env": "prod"}}),
            ("GET", "/networks" + q({"label": ["env=prod"]}), None),
            ("GET", "/networks" + q({"type": ["custom"]}), None),
            ("GET", "/networks" + q({"colour": ["red"]}), None),
            ("POST", "/services/create", web_spec),
            ("DELETE", "/networks/b", None),
            ("", "", add_task),  # tasks as the orchestrator would write them
            ("GET", "/tasks" + q({"service": ["web"]}), None),
            ("GET", "/tasks" + q({"service": ["web"], "name": ["web.1"]}), None),
            ("DELETE", "/services/web", None),
            ("DELETE", "/networks/b", None),
        ]
    )
    assert created[0] == 201
    assert labelled == (200, [labelled[1][0]]) and labelled[1][0]["Name"] == "b"  # label was ignored before
    assert [n["Name"] for n in custom[1]] == ["b"]  # type was ignored before
    assert bad == (400, {"message": "invalid filter 'colour'"})
    assert svc[0] == 201
    assert in_use == (409, {"message": "network b is in use by service web"})
    assert [t["ID"] for t in tasks[1]] == ["task1", "task2"]
    assert [t["ID"] for t in web1[1]] == ["task1"]  # service= and name= together
    assert removed_svc[0] == 200 and removed[0] == 204


def test_node_update_and_remove_over_http() -> None:
    store = StateStore()
    worker = new_node("w1id", "w1", "worker", "10.0.0.9", "2026-01-01T00:00:00Z", state="down")
    store.commit([Change(op="create", kind="node", obj=worker)])
    version = store.get("node", "w1id")["Version"]["Index"]  # type: ignore[index]

    def back_up() -> None:  # a heartbeat after `node rm` found the node down: the retry sees it
        n = store.get("node", "w1id")
        n["Status"]["State"] = "ready"  # type: ignore[index]
        store.commit([Change(op="update", kind="node", obj=n, obj_id="w1id")])

    async def run() -> list[tuple[int, Any]]:
        manager = FakeManager(store)
        manager.raft_view = lambda: RaftView(self_addr="", leader="", connected={})  # type: ignore[attr-defined]
        app = web.Application(middlewares=[error_middleware])
        app[AGENT] = type("A", (), {"require_manager": lambda self: manager})()  # type: ignore[assignment]
        app.router.add_post("/nodes/{id}/update", local.node_update)
        app.router.add_delete("/nodes/{id}", local.node_delete)
        out = []
        async with TestClient(TestServer(app)) as client:
            for method, path, body in [
                ("POST", f"/nodes/w1/update?version={version}", {"Role": "worker", "Availability": "drain"}),
                ("POST", f"/nodes/w1/update?version={version}", {"Role": "worker"}),
                ("DELETE", "/nodes/nobody?force=maybe", None),  # the unknown node is the answer
                ("DELETE", "/nodes/w1?force=maybe", None),
                ("", "", None),
                ("DELETE", "/nodes/w1", None),
                ("DELETE", "/nodes/w1?force=true", None),
            ]:
                if not method:
                    store.meanwhile = back_up
                    continue
                resp = await client.request(method, path, json=body)
                out.append((resp.status, await resp.json() if resp.status >= 400 else None))
        return out

    updated, stale, unknown, bad_flag, ready, removed = asyncio.run(run())
    assert updated == (200, None)
    assert stale[0] == 409 and "update out of sequence" in stale[1]["message"]
    assert unknown == (404, {"message": "node nobody not found"})
    assert bad_flag == (400, {"message": "invalid force 'maybe': expected true or false"})
    assert ready == (
        400,  # re-planned after the VersionConflict, not a bare 409
        {"message": "node w1 is not down and can't be removed (use force to remove it anyway)"},
    )
    assert removed == (200, None) and store.list("node") == []
