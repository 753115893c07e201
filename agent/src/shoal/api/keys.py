"""aiohttp application keys shared by the API modules."""

from aiohttp import web

from shoal.agent import Agent

AGENT = web.AppKey("agent", Agent)
