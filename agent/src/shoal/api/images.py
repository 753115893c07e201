"""Images of this node (Docker Engine API): list, pull (`/images/create`, streamed progress),
load, inspect, remove, prune; `/distribution/{name}/json` on managers. Handlers parse, call the
store (`runtime/images`) in a worker thread and serialise."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from shoal.api.errors import query_bool
from shoal.api.filters import parse_filters
from shoal.api.keys import AGENT
from shoal.errors import InvalidArgument as BadRequest
from shoal.manager.control.distribution import inspect_distribution
from shoal.manager.control.filters import filter_images, prune_dangling_only
from shoal.runtime.base import NoSuchImage
from shoal.runtime.images import ImageStore, RegistryError, parse, progress
from shoal.runtime.images.registry import ImageFormatError

SUPPORTED_PLATFORMS = ("", "linux", "linux/amd64")


def _store(request: web.Request) -> ImageStore:
    return request.app[AGENT].images


def registry_auth(request: web.Request) -> dict[str, Any] | None:
    """Docker's X-Registry-Auth: base64url of a JSON AuthConfig (padding optional)."""
    raw = request.headers.get("X-Registry-Auth", "").strip()
    if not raw:
        return None
    try:
        doc = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("X-Registry-Auth: not base64url-encoded JSON") from None
    if not isinstance(doc, dict):
        raise BadRequest("X-Registry-Auth: expected a JSON object")
    return doc or None


async def list_images(request: web.Request) -> web.Response:
    filters = parse_filters(request)
    images = await asyncio.to_thread(_store(request).list)
    return web.json_response([image.summary() for image in filter_images(images, filters)])


async def inspect_image(request: web.Request) -> web.Response:
    image = await asyncio.to_thread(_store(request).get, request.match_info["name"])  # NoSuchImage: a 404
    return web.json_response(image.inspect())


async def remove_image(request: web.Request) -> web.Response:
    store = _store(request)
    force = query_bool(request, "force")
    query_bool(request, "noprune")  # blobs of a removed image go unless another image uses them
    out = await asyncio.to_thread(store.remove, request.match_info["name"], force, store.in_use)  # NoSuchImage: 404
    return web.json_response(out)


async def prune_images(request: web.Request) -> web.Response:
    dangling = prune_dangling_only(parse_filters(request))
    store = _store(request)
    deleted, reclaimed = await asyncio.to_thread(
        store.prune, None, all_unused=not dangling, in_use=store.in_use, dangling_only=dangling
    )
    return web.json_response({"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed})


async def _stream(request: web.Request, work: Callable[[Callable[[dict[str, Any]], None]], Any]) -> web.StreamResponse:
    """Run `work(emit)` in a thread; its messages stream out as JSON lines. An error before the
    first message is an HTTP error; after it, Docker's `errorDetail` line."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def emit(msg: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, msg)

    job = asyncio.ensure_future(asyncio.to_thread(work, emit))
    job.add_done_callback(lambda _: loop.call_soon_threadsafe(queue.put_nowait, None))
    first = await queue.get()
    if first is None:
        await job  # raises the error: mapped to its status by the middleware
        return web.json_response([])
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    msg: dict[str, Any] | None = first
    while msg is not None:
        await resp.write(json.dumps(msg).encode() + b"\r\n")
        msg = await queue.get()
    try:
        await job
    except (RegistryError, ImageFormatError, NoSuchImage) as exc:
        await resp.write(json.dumps(progress.error(exc.message)).encode() + b"\r\n")
    except Exception as exc:  # the status line is gone: the error can only travel in the stream
        await resp.write(json.dumps(progress.error(str(exc))).encode() + b"\r\n")
    await resp.write_eof()
    return resp


async def create_image(request: web.Request) -> web.StreamResponse:
    if request.query.get("fromSrc"):
        raise BadRequest("fromSrc (import from a URL or the body) is not supported: use `shoal image import`")
    for key in ("repo", "message", "changes"):
        if request.query.get(key):
            raise BadRequest(f"query parameter {key} is only for imports, which are not supported here")
    if request.query.get("platform", "") not in SUPPORTED_PLATFORMS:
        raise BadRequest(f"platform {request.query['platform']!r} is not supported on this node (linux/amd64)")
    name = request.query.get("fromImage", "")
    if not name:
        raise BadRequest("fromImage is required")
    tag = request.query.get("tag", "")
    ref = name
    if tag:
        ref = f"{name}@{tag}" if tag.startswith("sha256:") else f"{name}:{tag}"
    parse(ref)  # SpecError -> 400 before anything starts
    auth = registry_auth(request)
    store = _store(request)
    return await _stream(request, lambda emit: store.pull(ref, auth, emit))


async def load_image(request: web.Request) -> web.StreamResponse:
    store = _store(request)
    quiet = query_bool(request, "quiet")
    await asyncio.to_thread(store.prepare)
    with tempfile.NamedTemporaryFile(dir=store.root / "tmp", prefix="upload-", suffix=".tar") as upload:
        size = 0
        async for chunk in request.content.iter_chunked(1 << 20):
            size += len(chunk)
            await asyncio.to_thread(upload.write, chunk)
        upload.flush()
        if size == 0:
            raise BadRequest("load: empty request body: expected a docker-archive or oci-archive tar")
        path = Path(upload.name)
        lines: list[dict[str, Any]] = []
        await asyncio.to_thread(store.load, path, lines.append)
    if quiet:
        return web.json_response(None, status=200)
    body = b"".join(json.dumps(line).encode() + b"\r\n" for line in lines)
    return web.Response(body=body, content_type="application/json")


async def distribution(request: web.Request) -> web.Response:
    agent = request.app[AGENT]
    agent.require_manager()
    store = _store(request)
    out = await asyncio.to_thread(
        inspect_distribution, request.match_info["name"], registry_auth(request), store.registry, store.policy_file
    )
    return web.json_response(out)


ROUTES = [
    ("GET", "/images/json", list_images),
    ("POST", "/images/create", create_image),
    ("POST", "/images/load", load_image),
    ("POST", "/images/prune", prune_images),
    ("GET", "/images/{name:.+}/json", inspect_image),
    ("DELETE", "/images/{name:.+}", remove_image),
    ("GET", "/distribution/{name:.+}/json", distribution),
]
