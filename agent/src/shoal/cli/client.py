"""A small client of the agent's control API (Docker Engine API shapes) over a unix socket.

Only the standard library, so that the CLI works before (or without) the agent's dependencies,
and one connection per call: the CLI makes a handful of calls and a stale keep-alive connection
to a restarted agent would only add failure modes.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from shoal.cli.errors import AgentUnreachable, APIError, CLIError

DEFAULT_HOST = "unix:///run/shoal/shoal.sock"
HOST_ENV = "SHOAL_HOST"
# init and join wait for the cluster (certificate, Raft membership); give them time, but never
# hang forever on a wedged agent.
DEFAULT_TIMEOUT = 300.0


def resolve_host(host: str | None) -> str:
    """`--host`, else $SHOAL_HOST, else the default socket."""
    return host or os.environ.get(HOST_ENV) or DEFAULT_HOST


def socket_path(host: str) -> str:
    """The filesystem path of a `unix://` host (a bare absolute path is accepted too)."""
    if host.startswith("unix://"):
        path = host[len("unix://") :]
    elif host.startswith("/"):
        path = host
    else:
        raise CLIError(f"unsupported host {host!r}: use unix:///path/to/shoal.sock")
    if not path:
        raise CLIError(f"invalid host {host!r}: no socket path")
    return path


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over an AF_UNIX stream socket; the Host header is a placeholder."""

    def __init__(self, path: str, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _error_message(status: int, reason: str, raw: bytes) -> str:
    """The agent's `message`; tolerate non-JSON bodies (a proxy, a crash page)."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        return text or f"{status} {reason}"
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        return doc["message"]
    return text or f"{status} {reason}"


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # Go's strconv.ParseBool spelling, as the docker SDK sends
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


class Client:
    """JSON in, JSON out. Errors: `APIError(status, message)`, `AgentUnreachable`."""

    def __init__(self, host: str | None = None, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        self.host = resolve_host(host)
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        target = quote(path, safe="/:@!$&'()*+,;=-._~")
        params = {k: _query_value(v) for k, v in (query or {}).items() if v is not None}
        if params:
            target += "?" + urlencode(params)
        headers = {"Accept": "application/json", **(headers or {})}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = UnixHTTPConnection(socket_path(self.host), timeout=self.timeout)
        try:
            conn.request(method, target, body=payload, headers=headers)  # connects first
            resp = conn.getresponse()
            raw = resp.read()
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as e:
            raise AgentUnreachable(f"Cannot connect to the shoal agent at {self.host}. Is shoald running?") from e
        except PermissionError as e:
            raise AgentUnreachable(
                f"Permission denied while trying to connect to the shoal agent at {self.host}: run as root"
            ) from e
        except TimeoutError as e:
            raise CLIError(f"timed out after {self.timeout:g}s waiting for the shoal agent at {self.host}") from e
        except (OSError, http.client.HTTPException) as e:
            # e.g. the agent restarted mid-call: the outcome of a write is unknown, so say what happened
            raise CLIError(f"error during connect to {self.host}: {e or type(e).__name__}") from e
        finally:
            conn.close()
        if resp.status >= 400:
            raise APIError(resp.status, _error_message(resp.status, resp.reason, raw))
        if not raw:
            return None
        try:  # JSON whatever the Content-Type: Docker answers /swarm/init's node ID as text/plain
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def stream(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> Iterator[dict[str, Any]]:
        """A streamed answer (pull progress, load output): one JSON object per line as it comes.
        `body` may be bytes or a binary file (sent as is, application/x-tar)."""
        target = quote(path, safe="/:@!$&'()*+,;=-._~")
        params = {k: _query_value(v) for k, v in (query or {}).items() if v is not None}
        if params:
            target += "?" + urlencode(params)
        hdrs = {"Accept": "application/json", **(headers or {})}
        if body is not None:
            hdrs["Content-Type"] = "application/x-tar"
        conn = UnixHTTPConnection(socket_path(self.host), timeout=self.timeout)
        try:
            try:
                conn.request(method, target, body=body, headers=hdrs)
                resp = conn.getresponse()
            except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as e:
                raise AgentUnreachable(f"Cannot connect to the shoal agent at {self.host}. Is shoald running?") from e
            except (OSError, http.client.HTTPException) as e:
                raise CLIError(f"error during connect to {self.host}: {e or type(e).__name__}") from e
            if resp.status >= 400:
                raise APIError(resp.status, _error_message(resp.status, resp.reason, resp.read()))
            for line in resp:
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError:
                        yield {"stream": line.decode("utf-8", "replace")}
        finally:
            conn.close()

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query)

    def post(self, path: str, body: Any = None, **query: Any) -> Any:
        return self.request("POST", path, query=query, body=body)

    def delete(self, path: str, **query: Any) -> Any:
        return self.request("DELETE", path, query=query)
