"""`service logs`: the manager gathers each task's log from the node that runs it.

Every node serves its own task logs on the cluster port, to managers only, as conmon's k8s-file
records (`<timestamp> <stdout|stderr> <P|F> <line>`). The local API answers in Docker's
multiplexed stream format (8-byte frame headers, stream 1 stdout, 2 stderr), one line per frame:
`[<timestamp> ][<details> ]<line>`. With `details=true` (the docker CLI always asks for it) the
details are the task's context as Docker writes log details: `key=value,key=value ` with keys
sorted and both sides URL-query-escaped; the client turns it into the `name.slot.id@node    | `
prefix. With follow, tasks that start later join the stream from their first line.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote_plus

import aiohttp
from aiohttp import web

from shoal import tls
from shoal.api.errors import query_bool, query_int
from shoal.api.keys import AGENT
from shoal.errors import InvalidArgument, NotFound, PermissionDenied
from shoal.manager.control.services import log_tasks
from shoal.runtime.base import Driver
from shoal.runtime.oci.k8slog import Record, parse_line

STDOUT, STDERR = 1, 2
NEW_TASKS_PERIOD = 1.0  # seconds between looks for tasks that started since (follow mode)


def frame(data: bytes, stream: int = STDOUT) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


def query_since(request: web.Request) -> float | None:
    """Docker's `since`: a Unix time, maybe with a fraction (`1700000000.123456789`)."""
    raw = request.query.get("since")
    if raw in (None, "", "0"):
        return None
    try:
        return float(raw)
    except ValueError as exc:
        raise InvalidArgument(f"invalid since {raw!r}: expected a Unix timestamp") from exc


def task_records(driver: Driver, task_id: str, tail: int | None, follow: bool, since: float | None) -> Iterator[Record]:
    """The task's log records; a driver without timestamps (only `Driver.logs`) gives bare lines."""
    if hasattr(driver, "log_records"):
        return driver.log_records(task_id, tail=tail, follow=follow, since=since)
    return (Record("", STDOUT, line) for line in driver.logs(task_id, tail=tail, follow=follow))


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


def format_line(stamp: str, data: bytes, *, timestamps: bool, details: bytes) -> bytes:
    """Docker's log line: `[timestamp ][details ]message`."""
    return ((stamp + " ").encode() if timestamps and stamp else b"") + details + data


# ---- node side (cluster port): this node's own task log, raw bytes
async def node_task_log(request: web.Request) -> web.StreamResponse:
    ssl_obj = request.transport.get_extra_info("ssl_object") if request.transport else None
    peer = tls.peer_identity(ssl_obj) if ssl_obj is not None else None
    agent = request.app[AGENT]
    if peer is None or peer.role != "manager" or agent.identity is None or peer.cluster_id != agent.identity.cluster_id:
        raise PermissionDenied("task logs are served to this cluster's managers only")
    tail = query_int(request, "tail")
    follow = query_bool(request, "follow")
    since = query_since(request)
    records = task_records(agent.driver, request.match_info["id"], tail, follow, since)  # NoSuchTask: a 404
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    await resp.prepare(request)
    iterator = iter(records)
    while True:
        rec = await asyncio.to_thread(next, iterator, None)
        if rec is None:
            break
        await resp.write(rec.to_line())
    await resp.write_eof()
    return resp


# ---- manager side (local API)
async def _remote_lines(
    agent: Any, addr: str, task_id: str, tail: int | None, follow: bool, since: float | None
) -> AsyncIterator[bytes]:
    query = {"follow": "true" if follow else "false"}
    if tail is not None:
        query["tail"] = str(tail)
    if since is not None:
        query["since"] = repr(since)
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
                yield line
        if buf:
            yield buf


async def service_logs(request: web.Request) -> web.StreamResponse:
    agent = request.app[AGENT]
    manager = agent.require_manager()
    service, tasks = log_tasks(manager.store, request.match_info["id"])
    want = {STDOUT: query_bool(request, "stdout"), STDERR: query_bool(request, "stderr")}
    if not any(want.values()):
        raise InvalidArgument("you must choose at least one stream (stdout or stderr)")
    tail = query_int(request, "tail") if request.query.get("tail") not in (None, "all") else None
    follow = query_bool(request, "follow")
    timestamps = query_bool(request, "timestamps")
    details = query_bool(request, "details")
    since = query_since(request)
    resp = web.StreamResponse(headers={"Content-Type": "application/vnd.docker.multiplexed-stream"})
    await resp.prepare(request)
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1000)

    async def pump(task: dict[str, Any], tail: int | None) -> None:
        node = manager.store.get("node", task["NodeID"])
        if node is None:
            return
        prefix = details_prefix(task_context(task)) if details else b""
        addr = f"{node['Status']['Addr']}:{agent.cfg.cluster_port}"
        try:
            async for line in _remote_lines(agent, addr, task["ID"], tail, follow, since):
                parsed = parse_line(line)
                if parsed is None:
                    continue
                stamp, stream, partial, data = parsed
                if want[stream]:
                    body = data if partial else data + b"\n"
                    out = format_line(stamp, body, timestamps=timestamps, details=prefix)
                    await queue.put(frame(out, stream))
        except (TimeoutError, aiohttp.ClientError, OSError):
            pass  # a node that cannot be reached has no logs to give now

    pumps: dict[str, asyncio.Task[None]] = {t["ID"]: asyncio.create_task(pump(t, tail)) for t in tasks}

    async def closer() -> None:
        while follow:  # docker's -f also shows tasks that start later, from their first line
            await asyncio.sleep(NEW_TASKS_PERIOD)
            try:
                _, now = log_tasks(manager.store, service["ID"])
            except NotFound:  # the service was removed: no more tasks will come
                break
            for t in now:
                if t["ID"] not in pumps:
                    pumps[t["ID"]] = asyncio.create_task(pump(t, None))
        await asyncio.gather(*pumps.values(), return_exceptions=True)
        await queue.put(None)

    done = asyncio.create_task(closer())
    try:
        while (item := await queue.get()) is not None:
            await resp.write(item)
    finally:
        for p in pumps.values():
            p.cancel()
        done.cancel()
    await resp.write_eof()
    return resp
