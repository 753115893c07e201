"""swarm_secret and swarm_config against the real /secrets and /configs handlers and control calls
(state machine, no Raft) on a unix socket: create, idempotence through the digest label, labels in
place, replacement, rolling versions, check and diff mode without the data, refusals."""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

from shoal.api import networks as networks_api
from shoal.api import secrets as secrets_api
from shoal.api import services as services_api
from shoal.api.errors import error_middleware
from shoal.api.keys import AGENT
from unit.test_api_control import FakeAgent
from unit.test_module_support import run_module

from ansible_collections.shoal.swarm.plugins.module_utils._shoal_api import ShoalClient  # isort: skip
from ansible_collections.shoal.swarm.plugins.modules import swarm_config, swarm_secret, swarm_service  # isort: skip

VALUE = "s3cret-value-xyz"


@pytest.fixture
def sock() -> Iterator[str]:
    """The real handlers served on a unix socket from a thread of their own."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "shoal.sock")
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        runner_box: list[web.AppRunner] = []

        async def start() -> None:
            app = web.Application(middlewares=[error_middleware], client_max_size=secrets_api.BODY_LIMIT)
            app[AGENT] = FakeAgent()  # type: ignore[assignment]
            for method, route, handler in services_api.ROUTES + secrets_api.ROUTES + networks_api.ROUTES:
                app.router.add_route(method, route, handler)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.UnixSite(runner, path).start()
            runner_box.append(runner)
            ready.set()

        thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
        thread.start()
        assert ready.wait(10)
        try:
            yield path
        finally:
            asyncio.run_coroutine_threadsafe(runner_box[0].cleanup(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)


def runner(module: Any, sock: str) -> Callable[..., tuple[bool, dict[str, Any]]]:
    def run(check: bool = False, diff: bool = False, **args: Any) -> tuple[bool, dict[str, Any]]:
        return run_module(module, {"socket_path": sock, **args}, check=check, diff=diff)

    return run


def test_secret_check_real_idempotent_never_shows_data(sock: str) -> None:
    run = runner(swarm_secret, sock)
    args = {"name": "db_pw", "data": VALUE, "labels": {"app": "web"}}
    failed, checked = run(check=True, diff=True, **args)
    assert not failed and checked["changed"] and checked["secret_id"] == ""
    assert ShoalClient(sock).get("/secrets") == []  # check mode wrote nothing
    failed, created = run(diff=True, **args)
    assert not failed and created["changed"] and created["actions"] == ["secret created"], created
    assert created["diff"]["after"] == {
        "state": "present",
        "name": "db_pw",
        "labels": {"app": "web"},
        "data": "(data not shown)",
    }
    failed, again = run(diff=True, **args)
    assert not failed and not again["changed"] and again["secret_id"] == created["secret_id"]
    failed, again_check = run(check=True, diff=True, **args)
    assert not failed and not again_check["changed"]
    for result in (checked, created, again, again_check):
        assert VALUE not in str(result)
    labels = ShoalClient(sock).get("/secrets/db_pw")["Spec"]["Labels"]
    assert labels["app"] == "web" and len(labels["ansible_key"]) == 56


def test_labels_change_in_place_and_data_replaces(sock: str) -> None:
    run = runner(swarm_secret, sock)
    _, first = run(name="k", data=VALUE)
    failed, relabelled = run(name="k", data=VALUE, labels={"a": 1})
    assert not failed and relabelled["actions"] == ["secret labels updated"]
    assert relabelled["secret_id"] == first["secret_id"]
    assert ShoalClient(sock).get("/secrets/k")["Spec"]["Labels"]["a"] == "1"
    failed, replaced = run(name="k", data="new-value", diff=True)
    assert not failed and replaced["actions"] == ["secret replaced"] and replaced["secret_id"] != first["secret_id"]
    assert replaced["diff"]["before"]["data"] == "(data not shown) (changed)"


def test_in_use_secret_is_not_replaced_and_nothing_changes(sock: str) -> None:
    run = runner(swarm_secret, sock)
    _, first = run(name="k", data=VALUE)
    service = {"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": "x", "Secrets": [{"SecretName": "k"}]}}}
    ShoalClient(sock).post("/services/create", service)
    failed, result = run(name="k", data="other")
    assert failed and "in use by the following service: web" in result["msg"] and not result["changed"]
    assert ShoalClient(sock).get("/secrets/k")["ID"] == first["secret_id"]
    failed, result = run(name="k", state="absent")
    assert failed and "web" in result["msg"]


def test_rolling_versions_keep_the_newest(sock: str) -> None:
    run = runner(swarm_config, sock)
    names = []
    for i in range(4):
        failed, result = run(name="conf", data=f"v{i}", rolling_versions=True, versions_to_keep=2)
        assert not failed and result["changed"], result
        names.append(result["config_name"])
    assert names == ["conf_v1", "conf_v2", "conf_v3", "conf_v4"]
    failed, same = run(name="conf", data="v3", rolling_versions=True, versions_to_keep=2)
    assert not failed and not same["changed"] and same["config_name"] == "conf_v4"
    assert sorted(c["Spec"]["Name"] for c in ShoalClient(sock).get("/configs")) == ["conf_v3", "conf_v4"]
    failed, gone = run(name="conf", state="absent", rolling_versions=True)
    assert not failed and gone["changed"] and ShoalClient(sock).get("/configs") == []


def test_bad_arguments_fail_clearly(sock: str) -> None:
    run = runner(swarm_secret, sock)
    failed, result = run(name="k")
    assert failed and "data" in result["msg"]
    failed, result = run(name="k", data="%%%", data_is_b64=True)
    assert failed and "base64" in result["msg"]
    failed, result = run(name="k", data_src="/nonexistent/file")
    assert failed and "data_src" in result["msg"]
    failed, result = run(name="big", data="x" * (501 * 1024))
    assert failed and "less than 500 KB" in result["msg"] and not result["changed"]
    assert ShoalClient(sock).get("/secrets") == []


def test_swarm_service_secrets_and_configs_options(sock: str) -> None:
    runner(swarm_secret, sock)(name="pw", data=VALUE)
    runner(swarm_config, sock)(name="conf", data="x=1")
    run = runner(swarm_service, sock)
    args = {
        "name": "web",
        "image": "busybox",
        "secrets": [{"secret_name": "pw", "filename": "key", "uid": "33", "mode": 0o400}],
        "configs": [{"config_name": "conf", "filename": "/etc/app.conf"}],
    }
    failed, checked = run(check=True, **args)
    assert not failed and checked["changed"]
    failed, created = run(**args)
    assert not failed and created["changed"], created
    container = ShoalClient(sock).get("/services/web")["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert container["Secrets"][0]["File"] == {"Name": "key", "UID": "33", "GID": "0", "Mode": 0o400}
    assert len(container["Secrets"][0]["SecretID"]) == 25
    assert container["Configs"][0]["File"]["Name"] == "/etc/app.conf"
    for check in (False, True):
        failed, again = run(check=check, **args)
        assert not failed and not again["changed"], again
    failed, changed = run(diff=True, **{**args, "secrets": [{"secret_name": "pw", "filename": "other"}]})
    assert not failed and changed["changed"] and changed["changes"] == ["secrets"]
    failed, missing = run(**{**args, "secrets": [{"secret_name": "nope"}]})
    assert failed and "secret not found: nope" in missing["msg"]
