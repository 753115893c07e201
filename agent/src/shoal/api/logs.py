"""`service logs`: the manager gathers each task's log from the node that runs it.

Every node serves its own task logs on the cluster port, to managers only. The local API answers in
Docker's multiplexed stream format (8-byte frame headers), one line per frame. With `details=true`
(the docker CLI always asks for it) each line starts with the task's context as Docker writes log
details: `key=value,key=value ` with keys sorted and both sides URL-query-escaped; the client turns
it into the `name.slot.id@node    | ` prefix. Without details a line is sent as the task wrote it.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote_plus

import aiohttp
from aiohttp import web

from shoal import tls
from shoal.api.errors import query_bool, query_int
from shoal.api.keys import AGENT
from shoal.errors import InvalidArgument, NotFound, PermissionDenied
from shoal.manager.control.services import resolve_service
from shoal.runtime.base import NoSuchTask

STDOUT = 1


def frame(data: bytes, stream: int = STDOUT) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


def details_prefix(attrs: dict[str, str]) -> bytes:
    """Docker's log details (httputils' attrsByteSlice): `k=v,k=v ` sorted by key, query-escaped."""
    pairs = ",".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in sorted(attrs.items()))
    return pairs.encode() + b" "


def task_context(task: dict[str, Any]) -> dict[str, str]:
    """The swarm context Docker attaches to every service log line."""
    return {
        "com.docker.swarm.node.id": task["NodeID"],
        "com.docker.swarm.service.id": task["ServiceID"],
        "com.docker.swarm.task.id": task["ID"],
    }


# ---- node side (cluster port): this node's own task log, raw bytes
async def node_task_log(request: web.Request) -> web.StreamResponse:
    ssl_obj = request.transport.get_extra_info("ssl_object") if request.transport else None
    peer = tls.peer_identity(ssl_obj) if ssl_obj is not None else None
    agent = request.app[AGENT]
    if peer is None or peer.role != "manager" or agent.identity is None or peer.cluster_id != agent.identity.cluster_id:
        raise PermissionDenied("task logs are served to this cluster's managers only")
    tail = query_int(request, "tail")
    follow = query_bool(request, "follow")
    try:
        lines = agent.driver.logs(request.match_info["id"], tail=tail, follow=follow)
    except NoSuchTask as exc:
        raise NotFound(exc.message) from exc
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    await resp.prepare(request)
    iterator = iter(lines)
    while True:
        line = await asyncio.to_thread(next, iterator, None)
        if line is None:
            break
        await resp.write(line)
    await resp.write_eof()
    return resp


# ---- manager side (local API)
async def _remote_lines(agent: Any, addr: str, task_id: str, tail: int | None, follow: bool) -> AsyncIterator[bytes]:
    query = {"follow": "true" if follow else "false"}
    if tail is not None:
        query["tail"] = str(tail)
    timeout = aiohttp.ClientTimeout(total=None if follow else 30, connect=3)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"https://{addr}/shoal/node/tasks/{task_id}/logs", params=query, ssl=agent.client_ctx) as resp,
    ):
        if resp.status != 200:
            return
        buf = b""
        async for chunk in resp.content.iter_any():
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                yield line + b"\n"
        if buf:
            yield buf + b"\n"


async def service_logs(request: web.Request) -> web.StreamResponse:
    agent = request.app[AGENT]
    manager = agent.require_manager()
    service = resolve_service(manager.store.list("service"), request.match_info["id"])
    if not (query_bool(request, "stdout") or query_bool(request, "stderr")):
        raise InvalidArgument("you must choose at least one stream (stdout or stderr)")
    tail = query_int(request, "tail") if request.query.get("tail") not in (None, "all") else None
    follow = query_bool(request, "follow")
    details = query_bool(request, "details")
    nodes = {n["ID"]: n for n in manager.store.list("node")}
    tasks = [
        t
        for t in manager.store.list("task")
        if t["ServiceID"] == service["ID"]
        and t.get("NodeID")
        and t["Status"]["State"] not in ("new", "pending", "assigned", "rejected")
    ]
    resp = web.StreamResponse(headers={"Content-Type": "application/vnd.docker.multiplexed-stream"})
    await resp.prepare(request)
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1000)

    async def pump(task: dict[str, Any]) -> None:
        node = nodes.get(task["NodeID"])
        if node is None:
            return
        prefix = details_prefix(task_context(task)) if details else b""
        addr = f"{node['Status']['Addr']}:{agent.cfg.cluster_port}"
        try:
            async for line in _remote_lines(agent, addr, task["ID"], tail, follow):
                await queue.put(frame(prefix + line))
        except (TimeoutError, aiohttp.ClientError, OSError):
            pass  # a node that cannot be reached has no logs to give now

    pumps = [asyncio.create_task(pump(t)) for t in tasks]

    async def closer() -> None:
        await asyncio.gather(*pumps, return_exceptions=True)
        await queue.put(None)

    done = asyncio.create_task(closer())
    try:
        while (item := await queue.get()) is not None:
            await resp.write(item)
    finally:
        for p in pumps:
            p.cancel()
        done.cancel()
    await resp.write_eof()
    return resp
