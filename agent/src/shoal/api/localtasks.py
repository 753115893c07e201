"""This node's own tasks and images (shoal-only: `shoal ps`, `exec`, `kill`, `image ls|import`)."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

from aiohttp import web

from shoal.api.errors import json_body, query_bool
from shoal.api.keys import AGENT
from shoal.errors import Conflict, InvalidArgument, NotFound
from shoal.model.pulloptions import public_task
from shoal.runtime.base import NoSuchTask, RuntimeDriverError


def _local(request: web.Request, ref: str) -> dict[str, Any]:
    try:
        return request.app[AGENT].executor.resolve(ref)
    except KeyError as exc:
        raise NotFound(str(exc.args[0])) from exc


async def list_local(request: web.Request) -> web.Response:
    executor = request.app[AGENT].executor
    out = []
    running = {h.task_id: h for h in await asyncio.to_thread(executor.driver.list_running)}
    for task_id, state in executor.state.items():
        task = executor.assigned.get(task_id)
        if task is None or state not in ("running", "starting"):
            continue
        handle = running.get(task_id)
        row = {**public_task(task), "Name": executor.task_name(task, full=True), "Pid": handle.pid if handle else None}
        health = executor.health.health(task_id)
        if health is not None:
            row["Health"] = health  # Docker's State.Health of the container (shoal ps shows its Status)
        out.append(row)
    return web.json_response(out)


async def kill(request: web.Request) -> web.Response:
    task = _local(request, request.match_info["ref"])
    name = request.query.get("signal", "KILL").upper().removeprefix("SIG")
    try:
        sig = int(name) if name.isdigit() else int(signal.Signals[f"SIG{name}"])
    except KeyError as exc:
        raise InvalidArgument(f"invalid signal {name}") from exc
    request.app[AGENT].driver.kill(task["ID"], sig)  # NoSuchTask: a 404
    return web.Response(status=204)


async def exec_info(request: web.Request) -> web.Response:
    task = _local(request, request.match_info["ref"])
    try:
        cmd = json.loads(request.query.get("cmd", "[]"))
    except ValueError as exc:
        raise InvalidArgument(f"cmd must be a JSON list of strings: {exc}") from exc
    if not isinstance(cmd, list) or not cmd or not all(isinstance(c, str) for c in cmd):
        raise InvalidArgument("cmd must be a non-empty JSON list of strings")
    driver = request.app[AGENT].driver
    try:
        # `runc exec --tty` makes the terminal of `shoal exec -t`
        argv, env = driver.exec_command(task["ID"], cmd, tty=query_bool(request, "tty"))
    except NoSuchTask:
        raise  # a 404 as it is
    except RuntimeDriverError as exc:  # not running: Docker's exec answers 409, not the driver's 500
        raise Conflict(exc.message) from exc
    return web.json_response({"Argv": argv, "Env": env})


def image_rows(image: Any) -> list[dict[str, Any]]:
    """One row per name:tag, the shape `shoal image ls` prints."""
    rows = []
    for ref in image.repo_tags or ["<none>:<none>"]:
        name, _, tag = ref.rpartition(":")
        rows.append(
            {
                "Name": name,
                "Tag": tag,
                "ID": image.id,
                "Created": image.created,
                "Size": image.size,
                "Entrypoint": image.config.get("Entrypoint"),
                "Cmd": image.config.get("Cmd"),
            }
        )
    return rows


async def list_images(request: web.Request) -> web.Response:
    images = request.app[AGENT].images.list()
    return web.json_response([row for image in images for row in image_rows(image)])


async def import_image(request: web.Request) -> web.Response:
    body = await json_body(request)
    name = body.get("Name")
    if not isinstance(name, str) or not name:
        raise InvalidArgument("Name is required")
    ref = f"{name}:{body['Tag']}" if body.get("Tag") else name
    changes = body.get("Changes") or []
    if not isinstance(changes, list) or not all(isinstance(c, str) for c in changes):
        raise InvalidArgument("Changes must be a list of strings")
    image = request.app[AGENT].images.import_dir(body.get("Source"), ref, changes)  # NoSuchImage: a 404
    return web.json_response(image_rows(image)[0], status=201)


ROUTES = [
    ("GET", "/shoal/local/tasks", list_local),
    ("POST", "/shoal/local/tasks/{ref}/kill", kill),
    ("GET", "/shoal/local/tasks/{ref}/exec", exec_info),
    ("GET", "/shoal/images", list_images),
    ("POST", "/shoal/images/import", import_image),
]
