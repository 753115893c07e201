"""The visualizer's listener (`ui_addr`): the page, its state and its live feed, behind a token.

A loopback port is open to every local user (unlike the root-only socket), so everything but the
static assets needs the token kept in a root-only file (`Config.ui_token_file`); `GET
/shoal/visualizer` on the socket tells root the page's URL. The live feed is Server-Sent Events:
a message per change of the cluster (nodes, services, tasks, networks), after which the page
fetches the state again.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from aiohttp import web

from shoal import ui
from shoal.api.errors import error_middleware, error_response
from shoal.api.keys import AGENT
from shoal.api.metrics import request_metrics
from shoal.errors import PermissionDenied
from shoal.manager.control import nodes as node_ops
from shoal.manager.visualizer import board

TOKEN = web.AppKey("ui_token", str)
WATCHED = ("node", "service", "task", "network")
WRITE_TIMEOUT = 5.0
KEEPALIVE = 15.0


def load_token(path: Path) -> str:
    """The page's token: made once, 0600 in the node's data dir, kept across restarts."""
    try:
        token = path.read_text().strip()
        if token:
            return token
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def page_url(addr: str, token: str) -> str:
    return f"http://{addr}/?token={token}"


@web.middleware
async def require_token(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path.startswith("/static/"):
        return await handler(request)  # code and style only: no cluster data
    if request.path == "/favicon.ico":
        return web.Response(status=204)  # browsers ask for it without the token
    given = request.query.get("token") or request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not given or not hmac.compare_digest(given.encode(), request.app[TOKEN].encode()):
        return error_response(401, "this page needs its token: run `shoal visualizer --print-url` on the manager")
    return await handler(request)


async def index(request: web.Request) -> web.Response:
    return web.Response(
        body=ui.asset("index.html"),
        content_type="text/html",
        headers={"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'"},
    )


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    try:
        body = ui.asset(name)
    except KeyError:
        return error_response(404, f"no such asset: {name}")
    return web.Response(body=body, content_type=ui.ASSETS[name])


def _manager(request: web.Request) -> Any:
    manager = request.app[AGENT].manager
    if manager is None:
        raise PermissionDenied("this node is not a manager any more: open the page of a manager")
    return manager


async def state(request: web.Request) -> web.Response:
    manager = _manager(request)
    store = manager.store
    nodes = node_ops.list_nodes(store, {}, manager.raft_view())
    data = board(nodes, store.list("service"), store.list("task"), store.list("network"))
    return web.json_response(data, headers={"Cache-Control": "no-store"})


async def feed(request: web.Request) -> web.StreamResponse:
    """SSE: one `data:` line per change batch (at most every 100 ms) and a comment every 15 s."""
    manager = _manager(request)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    sub = manager.store.subscribe(loop=asyncio.get_running_loop())
    try:
        await resp.prepare(request)
        await resp.write(b": connected\n\n")
        while request.transport is not None and not request.transport.is_closing():
            try:
                ev = await asyncio.wait_for(sub.aget(), KEEPALIVE)
            except TimeoutError:
                await asyncio.wait_for(resp.write(b": keepalive\n\n"), WRITE_TIMEOUT)
                continue
            if ev is None:
                break
            if ev.kind not in WATCHED:
                continue
            await asyncio.sleep(0.1)  # gather the rest of this batch into one message
            while sub.get_nowait() is not None:
                pass
            line = json.dumps({"Type": ev.kind, "Action": ev.action, "ID": ev.obj.get("ID", "")})
            await asyncio.wait_for(resp.write(f"data: {line}\n\n".encode()), WRITE_TIMEOUT)
    except (ConnectionError, TimeoutError):
        pass
    except Exception as exc:  # WatchLost: the page reconnects and reloads the state
        if getattr(exc, "status", None) is None:
            raise
    finally:
        sub.close()
    return resp


def build_app(agent: Any, token: str) -> web.Application:
    app = web.Application(middlewares=[request_metrics("ui"), error_middleware, require_token])
    app[AGENT] = agent
    app[TOKEN] = token
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/state", state)
    app.router.add_get("/api/events", feed)
    return app
