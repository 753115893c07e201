"""Errors at the HTTP edge: every failure is JSON `{"message": ...}` with its status (DESIGN §7).

The errors themselves are `shoal.errors` (the runtime's, the CA's and the tokens' derive from
them); this module only maps them (and request parsing failures) to responses. Anything else is
a bug: a 500 `internal error: ...`, logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from shoal.errors import InvalidArgument, ShoalError

log = logging.getLogger("shoal.api")


def error_response(status: int, message: str) -> web.Response:
    # exactly "application/json", no charset: the docker client reads the message only then
    # (client/request.go checkResponseErr), else it prints the raw body
    body = json.dumps({"message": message}).encode()
    return web.Response(body=body, status=status, content_type="application/json")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ShoalError as exc:
        return error_response(exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error_response(exc.status, exc.reason or "error")
        raise
    except Exception as exc:  # not a shoal error: a bug, whatever its class (a stray ValueError too)
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, f"internal error: {exc}")


async def json_body(request: web.Request, *, required: bool = True, limit: int = 1 << 20) -> dict:
    """The request's JSON object; malformed or oversize bodies are 400s, not 500s."""
    if request.content_length is not None and request.content_length > limit:
        raise InvalidArgument(f"request body too large ({request.content_length} bytes, limit {limit})")
    raw = await request.read()
    if len(raw) > limit:
        raise InvalidArgument(f"request body too large (limit {limit} bytes)")
    if not raw.strip():
        if required:
            raise InvalidArgument("request body is empty; expected a JSON object")
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"malformed JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidArgument("expected a JSON object")
    return body


def query_int(request: web.Request, name: str, *, required: bool = False) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        if required:
            raise InvalidArgument(f"missing query parameter {name}")
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise InvalidArgument(f"invalid {name} {raw!r}: expected an integer") from exc


def query_bool(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "").lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise InvalidArgument(f"invalid {name} {raw!r}: expected true or false")
