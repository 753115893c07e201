"""The metrics listener (`metrics_addr`, off by default, no auth, as dockerd's metrics-addr) and
the request middleware that counts every API call by route template and status."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shoal import metrics
from shoal.api.errors import Handler
from shoal.manager.metrics import ManagerCollector


def route_of(request: web.Request) -> str:
    """The path template (`/services/{id}`), never the raw path: IDs would make a series each."""
    info = request.match_info
    resource = info.route.resource if info is not None and info.route is not None else None
    canonical = getattr(resource, "canonical", None) if resource is not None else None
    if not canonical:
        return "other"
    # `/v1.41/services` and `/services` are one route (the docker CLI always sends a version)
    return canonical.removeprefix("/v{api_version}") or "/"


def request_metrics(listener: str) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        status = 500
        try:
            resp = await handler(request)
            status = resp.status
            return resp
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            route = route_of(request)
            metrics.API_REQUESTS.labels(listener, request.method, route, str(status)).inc()
            metrics.API_REQUEST_SECONDS.labels(listener, request.method, route).observe(time.perf_counter() - start)

    return middleware


async def scrape(request: web.Request) -> web.Response:
    body = generate_latest(metrics.REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


_collector: ManagerCollector | None = None


def build_app(agent: Any) -> web.Application:
    global _collector
    if _collector is None:  # one per process: the registry refuses a second with the same names
        _collector = ManagerCollector(lambda: agent.manager)
        metrics.REGISTRY.register(_collector)
    else:
        _collector.manager_of = lambda: agent.manager
    app = web.Application()
    app.router.add_get("/metrics", scrape)
    return app
