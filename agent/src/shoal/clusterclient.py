"""Client side of the cluster API (port 2377, TLS): node-to-manager calls."""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp

from shoal.errors import ShoalError, Unavailable


class ClusterClient:
    """Calls managers' cluster API with this node's certificate (or none, for join)."""

    def __init__(self, ssl_context: ssl.SSLContext, timeout: float = 5.0) -> None:
        self.ssl_context = ssl_context
        self.timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 2.0))

    async def call(self, addr: str, method: str, path: str, body: Any = None, *, timeout: float | None = None) -> Any:
        url = f"https://{addr}{path}"
        to = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 2.0)) if timeout else self.timeout
        try:
            async with (
                aiohttp.ClientSession(timeout=to) as session,
                session.request(method, url, json=body, ssl=self.ssl_context) as resp,
            ):
                data = await resp.json(content_type=None) if resp.content_length != 0 else None
                if resp.status >= 400:
                    message = data.get("message") if isinstance(data, dict) else None
                    raise ShoalError(message or f"{addr}: HTTP {resp.status}", resp.status)
                return data
        except (TimeoutError, aiohttp.ClientError, OSError, ssl.SSLError) as exc:
            raise Unavailable(f"cannot reach manager {addr}: {exc.__class__.__name__}: {exc}") from exc

    async def call_any(
        self, addrs: list[str], method: str, path: str, body: Any = None, *, timeout: float | None = None
    ) -> tuple[str, Any]:
        """First manager that answers (an API error is an answer; unreachable ones are skipped)."""
        last: ShoalError | None = None
        for addr in addrs:
            try:
                return addr, await self.call(addr, method, path, body, timeout=timeout)
            except Unavailable as exc:
                last = exc
        raise last or Unavailable("no manager address known")
