"""Route registration with Docker's optional `/v1.NN` prefix on every path."""

from __future__ import annotations

from aiohttp import web

from shoal.api.errors import Handler

API_VERSION = "1.47"
MIN_API_VERSION = "1.24"


def add(app: web.Application, method: str, path: str, handler: Handler) -> None:
    app.router.add_route(method, path, handler)
    app.router.add_route(method, r"/v{api_version:[0-9]+\.[0-9]+}" + path, handler)
