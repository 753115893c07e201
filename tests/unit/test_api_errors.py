"""One error vocabulary: what the lower layers raise (runtime, model, tokens, certificates) reaches
the client with its status and message through the middleware alone, and the local task and image
handlers answer Docker's statuses without translating by hand."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shoal.api import images, localtasks
from shoal.api.errors import error_middleware
from shoal.api.keys import AGENT
from shoal.manager.tokens import TokenError, parse_join_token
from shoal.model.constraints import ConstraintError, parse_constraints
from shoal.model.task import can_move
from shoal.runtime.base import NoSuchImage, NoSuchTask, RuntimeDriverError, TaskRejected
from shoal.runtime.images import ImageStore
from shoal.runtime.images.registry import ImageFormatError, RegistryError
from shoal.tls import CertError


def _answers(app: web.Application, requests: list[tuple[str, str]]) -> list[tuple[int, Any]]:
    async def run() -> list[tuple[int, Any]]:
        out = []
        async with TestClient(TestServer(app)) as client:
            for method, path in requests:
                resp = await client.request(method, path)
                out.append((resp.status, (await resp.json())["message"] if resp.status >= 400 else None))
        return out

    return asyncio.run(run())


def _raising(exc: BaseException) -> tuple[int, str]:
    async def handler(request: web.Request) -> web.Response:
        raise exc

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/", handler)
    return _answers(app, [("GET", "/")])[0]


def _caught(call: Any) -> BaseException:
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError("expected an error")


@pytest.mark.parametrize(
    ("exc", "status", "message"),
    [
        (NoSuchImage("busybox"), 404, "No such image: busybox"),
        (NoSuchTask("t1"), 404, "No such task: t1"),
        (RuntimeDriverError("no command specified"), 500, "no command specified"),
        (TaskRejected("no usable cgroup"), 500, "no usable cgroup"),
        (
            ImageFormatError("load: invalid image archive: not a tar file"),
            400,
            "load: invalid image archive: not a tar file",
        ),
        (RegistryError("pull x: unauthorized", "unauthorized", 401), 401, "pull x: unauthorized"),
        (ConstraintError("bad constraint"), 400, "bad constraint"),
        (TokenError("invalid join token"), 400, "invalid join token"),
        (CertError("no identity"), 400, "no identity"),
        # a stray ValueError is a bug, not the caller's fault: no longer a 400 by accident
        (ValueError("oops"), 500, "internal error: oops"),
    ],
)
def test_lower_errors_map_to_their_status_by_class(exc: Exception, status: int, message: str) -> None:
    assert _raising(exc) == (status, message)


def test_errors_raised_by_the_model_and_tokens_are_400s() -> None:
    constraint = _caught(lambda: parse_constraints(["node.colour==red"]))
    token = _caught(lambda: parse_join_token("SWMTKN-1-nope"))
    state = _caught(lambda: can_move("running", "exploded"))  # a worker's report with a made-up state
    assert isinstance(constraint, ConstraintError) and isinstance(constraint, ValueError)
    assert isinstance(token, TokenError) and isinstance(token, ValueError)
    assert _raising(constraint) == (400, str(constraint))
    assert _raising(token) == (400, str(token))
    assert _raising(state) == (400, "unknown task state 'exploded'")


class FakeDriver:
    def __init__(self, images: ImageStore) -> None:
        self.images = images

    def kill(self, task_id: str, sig: int) -> None:
        raise NoSuchTask(task_id)

    def exec_command(self, task_id: str, argv: list[str], tty: bool = False) -> Any:
        if task_id == "gone":
            raise NoSuchTask(task_id)
        raise RuntimeDriverError(f"task {task_id} is not running")


class FakeExecutor:
    def resolve(self, ref: str) -> dict[str, Any]:
        if ref == "nothing":
            raise KeyError(f"No such task: {ref}")
        return {"ID": ref}


def test_local_task_and_image_handlers_answer_docker_statuses(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    app = web.Application(middlewares=[error_middleware])
    app[AGENT] = SimpleNamespace(driver=FakeDriver(store), executor=FakeExecutor(), images=store)  # type: ignore[assignment]
    for method, path, handler in localtasks.ROUTES + images.ROUTES:
        app.router.add_route(method, path, handler)
    kill, exec_gone, exec_stopped, no_task, inspect, remove = _answers(
        app,
        [
            ("POST", "/shoal/local/tasks/t1/kill"),
            ("GET", '/shoal/local/tasks/gone/exec?cmd=["sh"]'),
            ("GET", '/shoal/local/tasks/t2/exec?cmd=["sh"]'),
            ("POST", "/shoal/local/tasks/nothing/kill"),
            ("GET", "/images/nosuch/json"),
            ("DELETE", "/images/nosuch"),
        ],
    )
    assert kill == (404, "No such task: t1")
    assert exec_gone == (404, "No such task: gone")
    assert exec_stopped == (409, "task t2 is not running")
    assert no_task == (404, "No such task: nothing")
    assert inspect == (404, "No such image: nosuch")
    assert remove == (404, "No such image: nosuch")
