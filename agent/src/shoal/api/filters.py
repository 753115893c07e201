"""Docker's `filters` query parameter: a JSON object of lists (or of {value: true} maps)."""

from __future__ import annotations

import json

from aiohttp import web

from shoal.errors import InvalidArgument


def parse_filters(request: web.Request) -> dict[str, list[str]]:
    raw = request.query.get("filters")
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"invalid filters: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidArgument("invalid filters: expected a JSON object")
    out: dict[str, list[str]] = {}
    for key, value in data.items():
        if isinstance(value, dict):  # the docker CLI sends {"role": {"manager": true}}
            out[key] = [k for k, v in value.items() if v]
        elif isinstance(value, list):
            out[key] = [str(v) for v in value]
        else:
            raise InvalidArgument(f"invalid filter value for {key}")
    return out
