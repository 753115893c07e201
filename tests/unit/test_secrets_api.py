"""Secrets and configs over the real control calls and state machine (no Raft): Docker's shapes,
its refusals, and a secret's data never in a read."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shoal.api import secrets as secrets_api
from shoal.api import services as services_api
from shoal.api.errors import error_middleware
from shoal.api.keys import AGENT
from unit.test_api_control import FakeAgent

DATA = base64.b64encode(b"s3cr3t-payload").decode()


def calls(requests: list[tuple[str, str, Any]]) -> list[tuple[int, Any]]:
    async def run() -> list[tuple[int, Any]]:
        app = web.Application(middlewares=[error_middleware], client_max_size=secrets_api.BODY_LIMIT)
        app[AGENT] = FakeAgent()  # type: ignore[assignment]
        for method, path, handler in services_api.ROUTES + secrets_api.ROUTES:
            app.router.add_route(method, path, handler)
        out = []
        async with TestClient(TestServer(app)) as client:
            for method, path, body in requests:
                resp = await client.request(method, path, json=body)
                text = await resp.text()
                out.append((resp.status, json.loads(text) if text else None))
        return out

    return asyncio.run(run())


def service(name: str, secrets: list | None = None, configs: list | None = None) -> dict:
    container: dict[str, Any] = {"Image": "busybox"}
    if secrets is not None:
        container["Secrets"] = secrets
    if configs is not None:
        container["Configs"] = configs
    return {"Name": name, "TaskTemplate": {"ContainerSpec": container}}


def test_secret_lifecycle_never_shows_data() -> None:
    out = calls(
        [
            ("POST", "/secrets/create", {"Name": "db_pw", "Labels": {"a": "1"}, "Data": DATA}),
            ("GET", "/secrets", None),
            ("GET", "/secrets/db_pw", None),
            ("POST", "/secrets/create", {"Name": "db_pw", "Data": DATA}),
            ("POST", "/configs/create", {"Name": "db_pw", "Data": DATA}),  # another kind: no clash
            ("GET", "/configs/db_pw", None),
        ]
    )
    assert out[0][0] == 201 and len(out[0][1]["ID"]) == 25
    assert out[1][0] == 200 and [s["Spec"] for s in out[1][1]] == [{"Name": "db_pw", "Labels": {"a": "1"}}]
    assert out[2][1]["ID"] == out[0][1]["ID"] and "Data" not in out[2][1]["Spec"] and "Kind" not in out[2][1]
    assert DATA not in json.dumps(out[1:3])
    assert out[3] == (409, {"message": "secret db_pw already exists (name conflicts with an existing object)"})
    assert out[4][0] == 201
    assert out[5][1]["Spec"]["Data"] == DATA  # configs show their data, as Docker's do


def test_bad_secrets_are_refused_and_change_nothing() -> None:
    big = base64.b64encode(b"x" * (501 * 1024)).decode()
    out = calls(
        [
            ("POST", "/secrets/create", {"Name": "big", "Data": big}),
            ("POST", "/secrets/create", {"Name": "-bad", "Data": DATA}),
            ("POST", "/secrets/create", {"Name": "nodata"}),
            ("POST", "/secrets/create", {"Name": "notb64", "Data": "%%%"}),
            ("POST", "/secrets/create", {"Name": "drv", "Data": DATA, "Driver": {"Name": "vault"}}),
            ("POST", "/configs/create", {"Name": "tpl", "Data": DATA, "Templating": {"Name": "golang"}}),
            ("POST", "/configs/create", {"Name": "big", "Data": base64.b64encode(b"x" * (1000 * 1024)).decode()}),
            ("POST", "/configs/create", {"Name": "ok", "Data": base64.b64encode(b"x" * (999 * 1024)).decode()}),
            ("GET", "/secrets", None),
        ]
    )
    assert out[0] == (400, {"message": "secret data must be larger than 0 and less than 500 KB"})
    assert out[1][0] == 400 and "invalid secret name" in out[1][1]["message"]
    assert out[2][0] == 400 and out[3][0] == 400
    assert out[4][0] == 400 and "not supported" in out[4][1]["message"]
    assert out[5][0] == 400 and "not supported" in out[5][1]["message"]
    assert out[6] == (400, {"message": "config data must be larger than 0 and less than 1000 KB"})
    assert out[7][0] == 201
    assert out[8] == (200, [])


def test_update_changes_only_labels() -> None:
    out = calls(
        [
            ("POST", "/secrets/create", {"Name": "pw", "Data": DATA}),
            ("GET", "/secrets/pw", None),
        ]
    )
    version = out[1][1]["Version"]["Index"]
    out = calls(
        [
            ("POST", "/secrets/create", {"Name": "pw", "Data": DATA}),
            ("POST", f"/secrets/pw/update?version={version}", {"Name": "pw", "Labels": {"x": "y"}}),
            ("GET", "/secrets/pw", None),
            ("POST", "/secrets/pw/update?version=1", {"Name": "pw", "Labels": {}}),  # stale
            ("GET", "/secrets/pw", None),
        ]
    )
    assert out[1] == (200, None)
    assert out[2][1]["Spec"]["Labels"] == {"x": "y"}
    assert out[3][0] == 409
    new_version = out[4][1]["Version"]["Index"]
    out2 = calls(
        [
            ("POST", "/secrets/create", {"Name": "pw", "Data": DATA}),
            ("POST", f"/secrets/pw/update?version={version}", {"Name": "pw", "Data": base64.b64encode(b"o").decode()}),
            ("POST", f"/secrets/pw/update?version={version}", {"Name": "other"}),
        ]
    )
    assert new_version > version
    assert out2[1][0] == 400 and "only updates to Labels are allowed" in out2[1][1]["message"]
    assert out2[2][0] == 400 and "only updates to Labels are allowed" in out2[2][1]["message"]


def test_filters_as_docker() -> None:
    out = calls(
        [
            ("POST", "/secrets/create", {"Name": "app_key", "Labels": {"env": "prod"}, "Data": DATA}),
            ("POST", "/secrets/create", {"Name": "app_key2", "Data": DATA}),
            ("GET", '/secrets?filters={"name":["app_key"]}', None),
            ("GET", '/secrets?filters={"names":["app_key"]}', None),
            ("GET", '/secrets?filters={"label":["env=prod"]}', None),
            ("GET", '/secrets?filters={"bogus":["x"]}', None),
        ]
    )
    assert [s["Spec"]["Name"] for s in out[2][1]] == ["app_key", "app_key2"]
    assert [s["Spec"]["Name"] for s in out[3][1]] == ["app_key"]
    assert [s["Spec"]["Name"] for s in out[4][1]] == ["app_key"]
    assert out[5] == (400, {"message": "invalid filter 'bogus'"})


def test_services_use_secrets_and_configs_by_name_and_removal_is_refused() -> None:
    out = calls(
        [
            ("POST", "/secrets/create", {"Name": "pw", "Data": DATA}),
            ("POST", "/configs/create", {"Name": "conf", "Data": DATA}),
            ("POST", "/services/create", service("web", [{"SecretName": "pw"}], [{"ConfigName": "conf"}])),
            ("GET", "/services/web", None),
            ("DELETE", "/secrets/pw", None),
            ("DELETE", "/configs/conf", None),
            ("POST", "/services/create", service("api", [{"SecretName": "nope", "File": {"Name": "x"}}])),
            ("POST", "/services/create", service("api", [{"SecretName": "pw", "SecretID": "wrongid"}])),
            ("POST", "/services/create", service("api", None, [{"ConfigName": "conf", "Runtime": {"x": 1}}])),
            (
                "POST",
                "/services/create",
                service(
                    "api", [{"SecretName": "pw", "File": {"Name": "t"}}, {"SecretName": "pw", "File": {"Name": "t"}}]
                ),
            ),
            ("DELETE", "/services/web", None),
            ("DELETE", "/secrets/pw", None),
            ("GET", "/secrets", None),
        ]
    )
    assert out[2][0] == 201
    container = out[3][1]["Spec"]["TaskTemplate"]["ContainerSpec"]
    secret_ref = container["Secrets"][0]
    assert secret_ref["SecretName"] == "pw" and len(secret_ref["SecretID"]) == 25
    assert secret_ref["File"] == {"Name": "pw", "UID": "0", "GID": "0", "Mode": 0o444}
    assert container["Configs"][0]["File"]["Name"] == "conf"
    assert out[4] == (400, {"message": "secret 'pw' is in use by the following service: web"})
    assert out[5] == (400, {"message": "config 'conf' is in use by the following service: web"})
    assert out[6] == (400, {"message": "secret not found: nope"})
    assert out[7] == (400, {"message": "secret not found: pw"})
    assert out[8][0] == 400 and "Runtime is not supported" in out[8][1]["message"]
    assert out[9][0] == 400 and "conflicting target: '/run/secrets/t'" in out[9][1]["message"]
    assert out[11][0] == 204 and out[12] == (200, [])
