"""`POST /shoal/services/validate` (shoal-only): a service spec checked as create/update would
check it, nothing written — what `stack deploy` asks for every service before its first write.

Parse, call `manager/control/service_validate.py`, serialize.
"""

from __future__ import annotations

from aiohttp import web

from shoal.api.errors import json_body
from shoal.api.keys import AGENT
from shoal.manager.control import service_validate as control


async def validate(request: web.Request) -> web.Response:
    manager = request.app[AGENT].require_manager()
    return web.json_response(control.validate(manager.store, await json_body(request)))


ROUTES = [("POST", "/shoal/services/validate", validate)]
