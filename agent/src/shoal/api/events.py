"""GET /events: Docker's event stream (JSON messages, one per line) with since/until/filters.

Past events at or after `since` come first, then live ones until `until` (or forever). A client
that stops reading is cut off once its queue is full: its stream ends with an error message. A
client that goes away is noticed within a second even when no event flows, and leaves nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from shoal import metrics
from shoal.agent.events import EventHub
from shoal.api.filters import parse_filters
from shoal.api.keys import AGENT
from shoal.model import events

IDLE_CHECK = 1.0  # seconds between checks that an idle client is still there
WRITE_TIMEOUT = 5.0  # a write that waits longer than this means the client stopped reading


def parse_request(request: web.Request) -> tuple[int | None, int | None, dict[str, list[str]]]:
    since = events.parse_time(request.query.get("since"))
    until = events.parse_time(request.query.get("until"))
    events.validate_window(since, until)
    return since, until, events.validate_filters(parse_filters(request))


def _line(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg, separators=(",", ":")).encode() + b"\n"


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def stream(
    request: web.Request,
    hub: EventHub,
    encode: Callable[[dict[str, Any]], bytes] = _line,
    prepare: Callable[[web.StreamResponse], Awaitable[None]] | None = None,
    content_type: str = "application/json",
) -> web.StreamResponse:
    """The event stream of `hub` for this request (also the visualizer's SSE feed, by `encode`)."""
    since, until, filters = parse_request(request)
    resp = web.StreamResponse(headers={"Content-Type": content_type, "Cache-Control": "no-cache"})
    # as dockerd: a window (since and/or until) replays the kept events inside it first
    past, sub = hub.subscribe(filters, since if since is not None or until is None else 0)
    metrics.EVENT_SUBSCRIBERS.inc()
    try:
        await resp.prepare(request)
        if prepare is not None:
            await prepare(resp)
        for msg in past:
            if until is not None and msg["timeNano"] > until:
                return resp
            await asyncio.wait_for(resp.write(encode(msg)), WRITE_TIMEOUT)
        while not _gone(request):
            if until is not None and time.time_ns() > until:
                break
            msg = await sub.next(IDLE_CHECK)
            if msg is None:
                if sub.overflowed:
                    metrics.EVENT_OVERFLOWS.inc()
                    text = "event stream stopped: this client read too slowly and fell too far behind"
                    error = {"error": text, "errorDetail": {"message": text}}
                    await asyncio.wait_for(resp.write(encode(error)), WRITE_TIMEOUT)
                    break
                continue
            if until is not None and msg["timeNano"] > until:
                break
            await asyncio.wait_for(resp.write(encode(msg)), WRITE_TIMEOUT)
        return resp
    except (ConnectionError, TimeoutError):
        if request.transport is not None:
            request.transport.close()
        return resp
    finally:
        sub.close()
        metrics.EVENT_SUBSCRIBERS.dec()


async def get_events(request: web.Request) -> web.StreamResponse:
    return await stream(request, request.app[AGENT].events)


ROUTES = [("GET", "/events", get_events)]
