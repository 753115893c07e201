"""Memory hunting on the local socket.

`GET /shoal/debug/memory`: where the agent's heap grew since the last call. For slow growth in a
soak: start shoald with `PYTHONTRACEMALLOC=15` (Python's own switch; tracing costs CPU and memory,
so it is never on by default) and call this before and after a run.

`GET /shoal/debug/garbage`: what the cyclic garbage collector would free now, by type. Reference
counting frees everything else at once; objects in reference cycles wait for a collection, and on
a large manager the full ones are minutes apart (`gcpauses.py`), so cycles made per request are
what its memory grows by between them. This runs a full collection (seconds at 1,000 nodes).
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections import Counter
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


def describe(obj: Any) -> str:
    """A few words on where a garbage object comes from (its type says little for a dict)."""
    try:
        return _describe(obj)
    except Exception:  # e.g. a weak proxy whose object is gone: any attribute raises ReferenceError
        return type(obj).__name__


def _describe(obj: Any) -> str:
    kind = type(obj).__name__
    if isinstance(obj, dict):
        return f"dict keys {sorted(map(str, obj))[:6]}"
    for attr in ("__qualname__", "cr_code", "gi_code", "f_code"):
        named = getattr(obj, attr, None)
        if named is not None:
            return f"{kind} {getattr(named, 'co_qualname', named)}"
    if hasattr(obj, "get_coro"):  # an asyncio task
        coro = obj.get_coro()
        return f"{kind} {getattr(getattr(coro, 'cr_code', None), 'co_qualname', coro)}"
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _garbage(top: int) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """(objects, most frequent types, most frequent descriptions) of the cyclic garbage now."""
    flags = gc.get_debug()
    frozen = gc.get_freeze_count() > 0
    gc.unfreeze()  # the garbage among long-lived objects too (gcpauses freezes them)
    gc.set_debug(flags | gc.DEBUG_SAVEALL)  # the collected objects land in gc.garbage instead
    try:
        gc.collect()
        found = list(gc.garbage)
        gc.garbage.clear()
    finally:
        gc.set_debug(flags)
    types = Counter(type(o).__name__ for o in found)
    where = Counter(describe(o) for o in found)
    count = len(found)
    del found
    gc.collect()  # now freed for real
    if frozen:
        gc.freeze()
    return count, types.most_common(top), where.most_common(top)


async def garbage(request: web.Request) -> web.Response:
    top = query_int(request, "top")
    top = 25 if top is None else top
    if not 1 <= top <= 500:
        raise InvalidArgument("top must be between 1 and 500")
    # on the loop on purpose: a full collection holds the GIL anyway, and no object changes meanwhile
    count, types, where = _garbage(top)
    return web.json_response(
        {
            "Objects": count,
            "Types": [{"Type": t, "Count": n} for t, n in types],
            "Origins": [{"Origin": w, "Count": n} for w, n in where],
        }
    )


ROUTES = [("GET", "/shoal/debug/memory", memory), ("GET", "/shoal/debug/garbage", garbage)]
