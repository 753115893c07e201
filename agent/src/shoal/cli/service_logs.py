"""`shoal service logs`: the agent's multiplexed log stream, demultiplexed and prefixed like docker.

The agent answers GET /services/{id}/logs with Docker's stdcopy framing (an 8-byte header: stream
1 = stdout, 2 = stderr, 3 zero bytes, a big-endian uint32 length; then the payload). With
`details=1` every line starts with `com.docker.swarm.node.id=…,com.docker.swarm.service.id=…,
com.docker.swarm.task.id=…` (after the timestamp when timestamps are asked for), from which the
`web.1.<task id>@<node>    | ` prefix is made. A line without those details is printed as sent.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import unquote_plus, urlencode

from shoal.cli.client import Client, UnixHTTPConnection, _error_message, socket_path
from shoal.cli.errors import AgentUnreachable, APIError, CLIError
from shoal.model.ids import short_id

STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3
CONTEXT_KEYS = ("com.docker.swarm.node.id", "com.docker.swarm.service.id", "com.docker.swarm.task.id")


class Demuxer:
    """Incremental stdcopy reader: feed bytes, get (stream, payload) frames. A stream that does not
    start with a valid header is passed through as stdout (an agent or proxy that sends raw text)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.raw = False

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buf += data
        frames: list[tuple[int, bytes]] = []
        while self.buf:
            if self.raw:
                frames.append((STDOUT, bytes(self.buf)))
                self.buf.clear()
                break
            if len(self.buf) < 8:
                break
            if self.buf[0] > SYSTEMERR or self.buf[1:4] != b"\0\0\0":
                self.raw = True
                continue
            size = int.from_bytes(self.buf[4:8], "big")
            if len(self.buf) < 8 + size:
                break
            frames.append((self.buf[0], bytes(self.buf[8 : 8 + size])))
            del self.buf[: 8 + size]
        return frames

    def close(self) -> list[tuple[int, bytes]]:
        """What is left at the end of the stream (a truncated frame is shown, not dropped)."""
        rest = bytes(self.buf[8:] if not self.raw and len(self.buf) >= 8 else self.buf)
        self.buf.clear()
        return [(STDOUT, rest)] if rest else []


class Lines:
    """Bytes in, complete lines out (with their newline); the tail is kept for the next feed."""

    def __init__(self) -> None:
        self.tail = b""

    def feed(self, data: bytes) -> list[bytes]:
        parts = (self.tail + data).split(b"\n")
        self.tail = parts.pop()
        return [p + b"\n" for p in parts]

    def flush(self) -> list[bytes]:
        rest, self.tail = self.tail, b""
        return [rest] if rest else []


def parse_details(text: str) -> dict[str, str] | None:
    """`k=v,k=v` (values URL-encoded, as Docker writes them) or None if `text` is not that."""
    out: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key:
            return None
        out[key] = unquote_plus(value)
    return out


def max_length(n: int) -> int:
    return len(str(n))


class LogFormatter:
    """docker's logWriter: `[timestamp ]<svc>.<slot>.<task id>@<node><pad>    | [details ]message`."""

    def __init__(
        self,
        task: Callable[[str], Mapping[str, Any] | None],
        service_name: Callable[[str], str],
        node_name: Callable[[str], str],
        *,
        padding: int = 1,
        timestamps: bool = False,
        details: bool = False,
        no_trunc: bool = False,
        no_task_ids: bool = False,
    ) -> None:
        self.task, self.service_name, self.node_name = task, service_name, node_name
        self.padding = padding
        self.timestamps, self.details = timestamps, details
        self.no_trunc, self.no_task_ids = no_trunc, no_task_ids
        self.cache: dict[tuple[str, str, str], str] = {}

    def context(self, node_id: str, service_id: str, task_id: str) -> str:
        key = (node_id, service_id, task_id)
        if key not in self.cache:
            task = self.task(task_id) or {}
            slot = int(task.get("Slot") or 0)
            name = f"{self.service_name(service_id)}.{slot}"
            if not self.no_task_ids:
                name += "." + (task_id if self.no_trunc else short_id(task_id))
            self.cache[key] = f"{name}@{self.node_name(node_id)}" + " " * max(0, self.padding - max_length(slot))
        return self.cache[key]

    def format(self, line: str) -> str:
        parts = line.split(" ", 2 if self.timestamps else 1)
        index = 1 if self.timestamps else 0
        if len(parts) != index + 2:
            return line
        details = parse_details(parts[index])
        if details is None or any(k not in details for k in CONTEXT_KEYS):
            return line
        ctx = self.context(*(details.pop(k) for k in CONTEXT_KEYS))
        out = (parts[0] + " " if self.timestamps else "") + ctx + "    | "
        if self.details and details:
            out += ",".join(sorted(f"{k}={v}" for k, v in details.items())) + " "
        return out + parts[index + 1]


def stream(api: Client, path: str, query: Mapping[str, Any], *, timeout: float | None) -> Iterator[bytes]:
    """GET `path` and yield the body as it arrives (the JSON client reads whole bodies)."""
    target = path + "?" + urlencode({k: v for k, v in query.items() if v is not None})
    conn = UnixHTTPConnection(socket_path(api.host), timeout=timeout)
    try:
        try:
            conn.request("GET", target, headers={"Accept": "application/vnd.docker.multiplexed-stream"})
            resp = conn.getresponse()
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as e:
            raise AgentUnreachable(f"Cannot connect to the shoal agent at {api.host}. Is shoald running?") from e
        except PermissionError as e:
            raise AgentUnreachable(f"Permission denied while trying to connect to the shoal agent at {api.host}") from e
        if resp.status >= 400:
            raise APIError(resp.status, _error_message(resp.status, resp.reason, resp.read()))
        while True:
            try:
                chunk = resp.read1(65536)
            except (OSError, http.client.HTTPException) as e:
                raise CLIError(f"error reading logs from {api.host}: {e or type(e).__name__}") from e
            if not chunk:
                return
            yield chunk
    finally:
        conn.close()
