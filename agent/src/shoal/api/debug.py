"""`GET /shoal/debug/memory` on the local socket: where the agent's heap grew since the last call.

For hunting slow growth in a soak: start shoald with `PYTHONTRACEMALLOC=15` (Python's own switch;
tracing costs CPU and memory, so it is never on by default) and call this before and after a run.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from typing import Any

from aiohttp import web

from shoal.api.errors import query_int
from shoal.errors import InvalidArgument, Unavailable

_last: dict[str, Any] = {}


async def memory(request: web.Request) -> web.Response:
    if not tracemalloc.is_tracing():
        raise Unavailable("memory tracing is off: start shoald with PYTHONTRACEMALLOC=15 to use this")
    top = query_int(request, "top")
    top = 25 if top is None else top
    if not 1 <= top <= 500:
        raise InvalidArgument("top must be between 1 and 500")
    group = request.query.get("group", "lineno")
    if group not in ("lineno", "traceback"):
        raise InvalidArgument("group must be lineno or traceback")
    since = "previous call" if "snapshot" in _last else "start"
    # comparing snapshots of tens of MB takes seconds: off the event loop
    stats = await asyncio.to_thread(_growth, group, top)
    current, peak = tracemalloc.get_traced_memory()
    return web.json_response(
        {
            "TracedBytes": current,
            "PeakBytes": peak,
            "Since": since,
            "Top": [
                {"SizeDiff": diff, "Size": size, "CountDiff": count, "Traceback": [str(f) for f in tb][-6:]}
                for tb, diff, size, count in stats
            ],
        }
    )


def _growth(group: str, top: int) -> list[tuple[Any, int, int, int]]:
    gc.collect()
    snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    previous = _last.get("snapshot")
    _last["snapshot"] = snap
    if previous is None:
        return [(s.traceback, s.size, s.size, s.count) for s in snap.statistics(group)[:top]]
    return [(s.traceback, s.size_diff, s.size, s.count_diff) for s in snap.compare_to(previous, group)[:top]]


ROUTES = [("GET", "/shoal/debug/memory", memory)]
