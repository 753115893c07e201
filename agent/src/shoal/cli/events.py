"""`shoal events`: the agent's event stream as `docker events` prints it.

Default line (docker's cli/command/system/events.go): RFC 3339 time with nanoseconds, type,
action, actor ID, then the attributes sorted by key in parentheses. `--format json` or
`{{json .}}` prints each message; `{{.Type}} {{.Actor.ID}} {{.Actor.Attributes.name}}` picks fields.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import urlencode

from shoal.cli.args import parse_filters
from shoal.cli.client import Client, UnixHTTPConnection, _error_message, socket_path
from shoal.cli.errors import AgentUnreachable, APIError, CLIError
from shoal.cli.output import compact_json

_ACTION = re.compile(r"\{\{(.*?)\}\}", re.S)
_PATH = re.compile(r"^\s*(json\s+)?\.((?:[A-Za-z_][A-Za-z0-9_.\-]*)?)\s*$")


def default_line(msg: dict[str, Any]) -> str:
    ns = int(msg.get("timeNano") or int(msg.get("time", 0)) * 1_000_000_000)
    stamp = datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    line = f"{stamp}.{ns % 1_000_000_000:09d}Z {msg.get('Type', '')} {msg.get('Action', '')} {msg['Actor']['ID']}"
    attrs = msg["Actor"].get("Attributes") or {}
    if attrs:
        line += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return line


def _lookup(msg: dict[str, Any], path: str) -> Any:
    value: Any = msg
    if not path:
        return value
    parts = path.split(".")
    for i, part in enumerate(parts):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, dict) and i > 0 and parts[i - 1] == "Attributes":
            # attribute keys contain dots (com.docker.swarm.service.name): take the rest as one key
            return value.get(".".join(parts[i:]), "")
        else:
            raise CLIError(f"template: can't evaluate field {part} in {path!r}")
    return value


def render(fmt: str | None, msg: dict[str, Any]) -> str:
    if not fmt:
        return default_line(msg)
    if fmt == "json":
        return compact_json(msg)

    def action(m: re.Match[str]) -> str:
        f = _PATH.match(m.group(1))
        if not f:
            raise CLIError(f"unsupported format {m.group(0)!r}: use 'json', {{{{json .}}}} or {{{{.Field.Sub}}}}")
        value = _lookup(msg, f.group(2))
        if f.group(1) or isinstance(value, (dict, list)):
            return compact_json(value)
        return "" if value is None else str(value)

    return _ACTION.sub(action, fmt.replace("\\t", "\t").replace("\\n", "\n"))


def cmd_events(client: Client, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    query = {"since": args.since, "until": args.until}
    filters = parse_filters(args.filter)
    params = {k: v for k, v in query.items() if v}
    if filters:
        params["filters"] = json.dumps(filters, separators=(",", ":"))
    if args.format and args.format != "json":
        render(args.format, {"Type": "", "Action": "", "Actor": {"ID": "", "Attributes": {}}, "time": 0, "timeNano": 0})
    target = "/events" + ("?" + urlencode(params) if params else "")
    conn = UnixHTTPConnection(socket_path(client.host), timeout=None)
    try:
        try:
            conn.request("GET", target, headers={"Accept": "application/json"})
            resp = conn.getresponse()
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise AgentUnreachable(f"Cannot connect to the shoal agent at {client.host}. Is shoald running?") from e
        if resp.status >= 400:
            raise APIError(resp.status, _error_message(resp.status, resp.reason, resp.read()))
        while True:
            try:
                raw = resp.readline()
            except (OSError, http.client.HTTPException) as e:
                raise CLIError(f"event stream interrupted: {e}") from e
            if not raw:
                return 0
            msg = json.loads(raw)
            if "error" in msg and "Type" not in msg:
                raise CLIError(msg["error"])
            print(render(args.format, msg), file=out, flush=True)
    finally:
        conn.close()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("events", help="Get real time events from the agent (and the swarm, on a manager)")
    p.add_argument("--since", help="show events since this time (Unix seconds, RFC 3339, or a duration like 10m)")
    p.add_argument("--until", help="stream events until this time")
    p.add_argument(
        "-f", "--filter", action="append", help="filter output (type=, event=, service=, node=, label=, ...)"
    )
    p.add_argument("--format", help="'json', or a template such as '{{.Type}} {{.Action}} {{.Actor.ID}}'")
    p.set_defaults(func=cmd_events)
