# Copyright: shoal developers
# Apache License 2.0 (see galaxy.yml)
"""The one (private) client of the shoal agent API used by every module of shoal.swarm.

It talks HTTP over the agent's unix socket (``/run/shoal/shoal.sock``) with the standard
library only, so that the modules run with any Python 3 on a managed host. The API has the
Docker Engine API's paths and JSON shapes; every error is ``{"message": ...}`` with a status.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

DEFAULT_SOCKET = "/run/shoal/shoal.sock"
DEFAULT_TIMEOUT = 60

T = TypeVar("T")


def common_argument_spec() -> dict[str, Any]:
    """The options every module takes (documented by the ``shoal.swarm.shoal`` doc fragment)."""
    return {
        "socket_path": {"type": "path", "default": DEFAULT_SOCKET},
        "timeout": {"type": "int", "default": DEFAULT_TIMEOUT},
    }


class ShoalAPIError(Exception):
    """A failed API call: ``status`` is the HTTP status (0 when the agent could not be reached)."""

    def __init__(self, status: int, message: str, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.method = method
        self.path = path

    @property
    def is_version_conflict(self) -> bool:
        return self.status == 409 and "out of sequence" in self.message.lower()


class AgentUnreachable(ShoalAPIError):
    """The socket is missing or nobody answers on it."""


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def build_path(path: str, query: Mapping[str, Any] | None = None) -> str:
    """``path`` plus the query string (booleans as true/false, filters as JSON); None values are left out."""
    if not query:
        return path
    items = [(k, _query_value(v)) for k, v in query.items() if v is not None]
    return f"{path}?{urlencode(items)}" if items else path


def node_path(ref: str, suffix: str = "") -> str:
    return f"/nodes/{quote(ref, safe='')}{suffix}"


def service_path(ref: str, suffix: str = "") -> str:
    return f"/services/{quote(ref, safe='')}{suffix}"


def network_path(ref: str) -> str:
    return f"/networks/{quote(ref, safe='')}"


class ShoalClient:
    """Calls to the agent's local control API. Every failure raises ``ShoalAPIError``."""

    def __init__(self, socket_path: str = DEFAULT_SOCKET, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        timeout: float | None = None,
    ) -> Any:
        full = build_path(path, query)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Host": "localhost", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        conn = _UnixHTTPConnection(self.socket_path, timeout or self.timeout)
        try:
            try:
                conn.request(method, full, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                raise AgentUnreachable(
                    0, f"cannot talk to the shoal agent on {self.socket_path}: {exc}", method, path
                ) from None
        finally:
            conn.close()
        payload = _decode(raw, resp.getheader("Content-Type") or "")
        if resp.status >= 400:
            if isinstance(payload, dict) and isinstance(payload.get("message"), str):
                message = payload["message"]
            else:
                message = (raw.decode("utf-8", "replace").strip() or resp.reason or "error")[:2000]
            raise ShoalAPIError(resp.status, message, method, path)
        return payload

    def get(self, path: str, **query: Any) -> Any:
        return self.call("GET", path, query=query)

    def post(self, path: str, body: Any = None, **query: Any) -> Any:
        return self.call("POST", path, query=query, body=body)

    def delete(self, path: str, **query: Any) -> Any:
        return self.call("DELETE", path, query=query)

    # ---- reads
    def ping(self) -> bool:
        try:
            return self.call("GET", "/_ping", timeout=min(self.timeout, 10)) == "OK"
        except ShoalAPIError:
            return False

    def info(self) -> dict[str, Any]:
        return self.get("/info")

    def swarm(self) -> dict[str, Any]:
        return self.get("/swarm")

    def nodes(self, filters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.get("/nodes", filters=dict(filters) if filters else None) or []

    def lookup(self, path: str) -> dict[str, Any] | None:
        """The object at ``path``; None when the API has no such object (an ambiguous reference is an error)."""
        try:
            return self.get(path)
        except ShoalAPIError as exc:
            if exc.status == 404 and "ambiguous" not in exc.message:
                return None
            raise

    def node(self, ref: str) -> dict[str, Any] | None:
        """A node by ID, hostname or unique ID prefix; None when the cluster has no such node."""
        return self.lookup(node_path(ref))

    def named(self, path: str) -> dict[str, Any] | None:
        """The object at ``path`` when ``path`` ends in a name. The API answers a reference by ID,
        then exact name, then unique ID prefix; names of services and networks are unique, so
        "ambiguous" can only mean that no object has the name and it merely prefixes several IDs."""
        try:
            return self.lookup(path)
        except ShoalAPIError as exc:
            if exc.status in (400, 404) and "is ambiguous" in exc.message:  # Docker: 400 for networks
                return None
            raise

    def service(self, name: str) -> dict[str, Any] | None:
        """The service named ``name``; None when there is none (an ID prefix that happens to match
        another service's ID is not that service)."""
        service = self.named(service_path(name))
        if service and name not in ((service.get("Spec") or {}).get("Name"), service.get("ID")):
            return None
        return service

    def network(self, name: str) -> dict[str, Any] | None:
        """The network named (or with the ID) ``name``, in Docker's Network shape; None when there is none."""
        network = self.named(network_path(name))
        if network and name not in (network.get("Name"), network.get("Id")):
            return None
        return network

    def tasks(self, filters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.get("/tasks", filters=dict(filters) if filters else None) or []

    def services(self, filters: Mapping[str, Any] | None = None, status: bool = False) -> list[dict[str, Any]]:
        """The services; with ``status``, each with its ``ServiceStatus`` (running, desired and completed tasks)."""
        return self.get("/services", filters=dict(filters) if filters else None, status=status or None) or []

    def networks(self, filters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.get("/networks", filters=dict(filters) if filters else None) or []


def _decode(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    if "json" in content_type or text[:1] in '{["' or text in ("null", "true", "false"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def retry_on_conflict(attempt: Callable[[], T], attempts: int = 5, delay: float = 0.2) -> T:
    """Run ``attempt`` (which reads, decides and writes with the version it read) again when the
    write lost a race (409 "update out of sequence"); other errors pass through."""
    for n in range(attempts):
        try:
            return attempt()
        except ShoalAPIError as exc:
            if not exc.is_version_conflict or n == attempts - 1:
                raise
            time.sleep(delay * (n + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def wait_until(
    probe: Callable[[], T], timeout: float, interval: float = 0.5, clock: Callable[[], float] | None = None
) -> tuple[bool, T | None]:
    """Call ``probe`` until it returns something true or ``timeout`` seconds passed.

    Returns (done, last value). An agent that does not answer, or answers 5xx, counts as "not yet"
    (an election or a restart may be under way) until the deadline, then the error is raised; a 4xx
    answer (a refusal that waiting does not change) is raised at once.
    """
    clock = clock or time.monotonic
    deadline = clock() + timeout
    while True:
        try:
            value = probe()
            if value:
                return True, value
            last_error: ShoalAPIError | None = None
        except ShoalAPIError as exc:
            if 400 <= exc.status < 500:
                raise
            value, last_error = None, exc
        if clock() >= deadline:
            if last_error is not None:
                raise last_error
            return False, value
        time.sleep(interval)


# ---- join tokens and the CA digest they pin (same algorithm as shoal.manager.tokens)
TOKEN_PREFIX = "SWMTKN"
DIGEST_LENGTH = 50
SECRET_LENGTH = 25
_BASE36 = re.compile(r"[0-9a-z]+")
_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)


def parse_join_token(token: str) -> tuple[str, str]:
    """(CA digest, secret) of ``SWMTKN-1-<digest>-<secret>``; ValueError says what is wrong."""
    parts = token.strip().split("-") if isinstance(token, str) else []
    if len(parts) < 2 or parts[0] != TOKEN_PREFIX:
        raise ValueError("invalid join token: it must start with SWMTKN-1-")
    if parts[1] != "1":
        raise ValueError(f"invalid join token: unsupported version {parts[1]!r} (shoal reads SWMTKN-1 tokens)")
    if len(parts) != 4:
        raise ValueError("invalid join token: expected SWMTKN-1-<CA digest>-<secret>")
    digest, secret = parts[2], parts[3]
    if len(digest) != DIGEST_LENGTH or not _BASE36.fullmatch(digest):
        raise ValueError(f"invalid join token: the CA digest must be {DIGEST_LENGTH} base-36 characters")
    if len(secret) != SECRET_LENGTH or not _BASE36.fullmatch(secret):
        raise ValueError(f"invalid join token: the secret must be {SECRET_LENGTH} base-36 characters")
    return digest, secret


def to_base36(value: int, width: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while value:
        value, rem = divmod(value, 36)
        out = digits[rem] + out
    return out.rjust(width, "0")


def ca_digest(ca_pem: str) -> str:
    """sha256 over the DER bytes of every certificate in ``ca_pem``, in base 36 (50 characters)."""
    blocks = _PEM_CERT.findall(ca_pem or "")
    if not blocks:
        raise ValueError("no certificate in the CA PEM")
    der = b"".join(base64.b64decode("".join(block.split())) for block in blocks)
    return to_base36(int.from_bytes(hashlib.sha256(der).digest(), "big"), DIGEST_LENGTH)


# ---- Go durations (the API's nanoseconds <-> "5s", "1m30s")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def parse_duration(value: Any, name: str = "duration") -> int:
    """Nanoseconds from a Go duration string ("5s", "1m30s", "250ms") or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{name}: expected a duration such as 5s, not {value!r}")
    if isinstance(value, (int, float)):
        return round(value * 10**9)
    text = str(value).strip()
    try:
        return round(float(text) * 10**9)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_NS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"{name}: {value!r} is not a duration (examples: 5s, 500ms, 1m30s, 2h)")
    return round(total)


def _fraction(value: int, digits: int) -> str:
    whole, frac = divmod(value, 10**digits)
    tail = f"{frac:0{digits}d}".rstrip("0")
    return f"{whole}.{tail}" if tail else str(whole)


def format_duration(ns: Any) -> Any:
    """Nanoseconds as Go prints a duration ("5s", "1m30s", "250ms", "2160h0m0s"); other values unchanged."""
    if isinstance(ns, bool) or not isinstance(ns, int):
        return ns
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_fraction(ns, 3)}\u00b5s"
    if ns < 10**9:
        return f"{sign}{_fraction(ns, 6)}ms"
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = f"{_fraction(rest, 9)}s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def label_map(labels: Mapping[str, Any] | None) -> dict[str, str]:
    """Labels as strings (YAML may give ints and booleans; the API takes strings only)."""
    out: dict[str, str] = {}
    for key, value in (labels or {}).items():
        if isinstance(value, bool):
            out[str(key)] = "true" if value else "false"
        else:
            out[str(key)] = "" if value is None else str(value)
    return out
