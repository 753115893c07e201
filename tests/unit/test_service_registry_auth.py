"""`--with-registry-auth` on the API: X-Registry-Auth kept with the tasks' PullOptions on
create and update (registryAuthFrom spec|previous-spec), never read back, and a task not
replaced only because its credentials changed (SwarmKit's IsTaskDirty exception)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shoal.api import services as services_api
from shoal.api.errors import error_middleware
from shoal.api.keys import AGENT
from shoal.model.pulloptions import public_service, public_task
from shoal.model.service import validate_service_spec
from shoal.model.task import task_dirty
from shoal.store.changes import Change
from unit.test_api_control import FakeAgent

PASSWORD = "s3cret-pässword"


def header(password: str = PASSWORD, user: str = "shoal") -> str:
    doc = {"username": user, "password": password, "serveraddress": "10.213.0.1:5000"}
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")


SPEC = {"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": "10.213.0.1:5000/testbed/hello:1"}}}

Call = tuple[str, str, Any, dict[str, str]]


def run(requests: list[Any]) -> tuple[list[tuple[int, Any]], Any]:
    """Each request is (method, path, body, headers), or a callable given the store."""

    async def go() -> tuple[list[tuple[int, Any]], Any]:
        app = web.Application(middlewares=[error_middleware])
        app[AGENT] = FakeAgent()  # type: ignore[assignment]
        for method, path, handler in services_api.ROUTES:
            app.router.add_route(method, path, handler)
        out = []
        store = app[AGENT].manager.store
        async with TestClient(TestServer(app)) as client:
            for req in requests:
                if callable(req):
                    req(store)
                    continue
                method, path, body, headers = req
                if callable(path):
                    path = path(store)
                resp = await client.request(method, path, json=body, headers=headers)
                text = await resp.text()
                out.append((resp.status, json.loads(text) if text else None))
        return out, store

    return asyncio.run(go())


def stored(store: Any) -> dict[str, Any]:
    return store.find_by_name("service", "web")


def pull_auth(store: Any) -> str | None:
    options = stored(store)["Spec"]["TaskTemplate"]["ContainerSpec"].get("PullOptions")
    return options["RegistryAuth"] if options else None


def update_path(query: str = "") -> Any:
    return lambda store: f"/services/web/update?version={stored(store)['Version']['Index']}{query}"


def add_task(store: Any) -> None:
    service = stored(store)
    task = {
        "ID": "task1",
        "ServiceID": service["ID"],
        "Slot": 1,
        "DesiredState": "running",
        "CreatedAt": "t",
        "Spec": service["Spec"]["TaskTemplate"],
        "Status": {"State": "running"},
    }
    store.commit([Change(op="create", kind="task", obj=task)])


def test_create_keeps_the_header_with_the_pull_options_and_never_shows_it() -> None:
    answers, store = run(
        [
            ("POST", "/services/create", SPEC, {"X-Registry-Auth": header()}),
            add_task,
            ("GET", "/services/web", None, {}),
            ("GET", "/services", None, {}),
            ("GET", "/services?status=true", None, {}),
            ("GET", "/tasks", None, {}),
            ("GET", "/tasks/task1", None, {}),
        ]
    )
    assert answers[0][0] == 201
    assert pull_auth(store) == header()  # the workers get it with the task
    assert store.get("task", "task1")["Spec"]["ContainerSpec"]["PullOptions"] == {"RegistryAuth": header()}
    shown = json.dumps(answers[1:])
    assert "PullOptions" not in shown and header() not in shown
    assert (
        answers[1][1]["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        == SPEC["TaskTemplate"]["ContainerSpec"]["Image"]
    )
    assert [t["ID"] for t in answers[4][1]] == ["task1"]


def test_update_replaces_keeps_or_takes_the_previous_credentials() -> None:
    spec2 = {**SPEC, "Labels": {"v": "2"}}
    spec3 = {**SPEC, "Labels": {"v": "3"}}
    seen: list[str | None] = []
    answers, _store = run(
        [
            ("POST", "/services/create", SPEC, {"X-Registry-Auth": header("one")}),
            # no header: registryAuthFrom=spec (the default) keeps what the service has
            ("POST", update_path(), spec2, {}),
            lambda s: seen.append(pull_auth(s)),
            ("POST", update_path("&registryAuthFrom=spec"), spec2, {}),
            lambda s: seen.append(pull_auth(s)),
            # a header replaces them
            ("POST", update_path(), spec3, {"X-Registry-Auth": header("two")}),
            lambda s: seen.append(pull_auth(s)),
            # previous-spec: those of the spec before (client-side rollback)
            ("POST", update_path("&registryAuthFrom=previous-spec"), spec2, {}),
            lambda s: seen.append(pull_auth(s)),
            # the server-side rollback returns to the previous spec with its credentials
            ("POST", update_path("&rollback=previous"), None, {}),
            lambda s: seen.append(pull_auth(s)),
            # an empty AuthConfig (what the docker CLI sends without credentials) clears them
            ("POST", update_path(), spec2, {"X-Registry-Auth": base64.urlsafe_b64encode(b"{}").decode()}),
            lambda s: seen.append(pull_auth(s)),
        ]
    )
    assert [a[0] for a in answers] == [201, 200, 200, 200, 200, 200, 200]
    assert seen == [header("one"), header("one"), header("two"), header("one"), header("two"), None]


def test_bad_credentials_input_is_refused_without_echo_and_changes_nothing() -> None:
    with_pull_options = {
        "Name": "web",
        "TaskTemplate": {"ContainerSpec": {"Image": "busybox", "PullOptions": {"RegistryAuth": header()}}},
    }
    not_json = base64.urlsafe_b64encode(f"user:{PASSWORD}".encode()).decode()
    answers, store = run(
        [
            ("POST", "/services/create", with_pull_options, {}),
            ("POST", "/services/create", SPEC, {"X-Registry-Auth": not_json}),
            ("POST", "/services/create", SPEC, {"X-Registry-Auth": header()}),
            ("POST", update_path("&registryAuthFrom=elsewhere"), SPEC, {}),
            ("POST", update_path("&registryAuthFrom=previous-spec"), SPEC, {}),  # no previous spec yet
            ("POST", update_path("&rollback=previous"), None, {"X-Registry-Auth": header("other")}),
            ("POST", update_path(), SPEC, {"X-Registry-Auth": "%%%"}),
        ]
    )
    statuses = [a[0] for a in answers]
    assert statuses == [400, 400, 201, 400, 400, 400, 400]
    messages = [a[1]["message"] for a in answers if a[0] == 400]
    assert "PullOptions cannot be set in the spec" in messages[0] and "X-Registry-Auth" in messages[0]
    assert messages[1] == "X-Registry-Auth: not base64url-encoded JSON"
    assert "unsupported registryAuthFrom value 'elsewhere'" in messages[2]
    assert "does not have a previous spec" in messages[3]
    assert "rollback" in messages[4]
    assert PASSWORD not in json.dumps(messages) and header() not in json.dumps(messages)
    assert pull_auth(store) == header() and "PreviousSpec" not in stored(store)


def test_only_new_credentials_do_not_make_a_pulled_task_dirty() -> None:
    old = validate_service_spec(SPEC)
    new = json.loads(json.dumps(old))
    new["TaskTemplate"]["ContainerSpec"]["PullOptions"] = {"RegistryAuth": header()}
    service = {"ID": "s", "Spec": new}

    def task(state: str, desired: str = "running", template: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"ID": "t", "Spec": template or old["TaskTemplate"], "DesiredState": desired, "Status": {"State": state}}

    assert not task_dirty(service, task("running"))
    assert not task_dirty(service, task("starting"))
    # not pulled yet, or to be stopped: the new credentials count (SwarmKit's rule)
    assert task_dirty(service, task("assigned"))
    assert task_dirty(service, task("running", desired="shutdown"))
    # anything else that changed still does
    other = json.loads(json.dumps(old["TaskTemplate"]))
    other["ContainerSpec"]["Env"] = ["A=1"]
    assert task_dirty(service, task("running", template=other))
    assert (
        public_task(task("running", template=new["TaskTemplate"]))["Spec"]["ContainerSpec"].get("PullOptions") is None
    )


def test_public_views_leave_the_stored_object_as_it_is() -> None:
    template = {"ContainerSpec": {"Image": "i", "PullOptions": {"RegistryAuth": "secret"}}}
    service = {"ID": "s", "Spec": {"TaskTemplate": template}, "PreviousSpec": {"TaskTemplate": template}}
    before = json.dumps(service, sort_keys=True)
    view = public_service(service)
    assert "secret" not in json.dumps(view)
    assert view["Spec"]["TaskTemplate"]["ContainerSpec"] == {"Image": "i"}
    task = {"ID": "t", "Spec": template}
    assert public_task(task)["Spec"]["ContainerSpec"] == {"Image": "i"}
    assert json.dumps(service, sort_keys=True) == before and task["Spec"] is template
    assert template["ContainerSpec"]["PullOptions"] == {"RegistryAuth": "secret"}
