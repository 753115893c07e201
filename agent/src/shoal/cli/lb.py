"""`shoal lb haproxy`: an HAProxy configuration for an external load balancer (seed tour §9).

The routing mesh opens a service's published port on every node, so an external balancer only
needs every node's underlay address (`Status.Addr`) and that port: round robin with health
checks, and nothing to change when tasks move. The configuration is rendered with jinja2 from
`templates/haproxy.cfg.j2` (package data); jinja2 is imported only by this command, so the rest
of the CLI keeps working with the standard library alone.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

from shoal.cli import args as argtypes
from shoal.cli.client import Client
from shoal.cli.errors import APIError, CLIError
from shoal.cli.node import hostname
from shoal.cli.output import natural_key
from shoal.files import write_atomic

TEMPLATE = "haproxy.cfg.j2"
DEFAULT_PORT = 80
SECOND = 1_000_000_000
DEFAULT_CHECK_INTERVAL = 2 * SECOND
FALL, RISE = 2, 1  # two failed checks mark a node down, one good check brings it back
TIMEOUTS = {"timeout_connect": "5s", "timeout_client": "30s", "timeout_server": "30s"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")  # HAProxy server names: no spaces, no comment signs


# --- pure helpers ---------------------------------------------------------------------------------


def port_number(text: str) -> int:
    """argparse type of `--port`: 1-65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: a number from 1 to 65535") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: a number from 1 to 65535")
    return value


def check_interval(text: str) -> int:
    """argparse type of `--check-interval`: a positive Go duration, at least a millisecond."""
    ns = argtypes.duration(text)
    if ns < 1_000_000:
        raise argparse.ArgumentTypeError(f"invalid --check-interval {text!r}: at least 1ms")
    return ns


def haproxy_time(ns: int) -> str:
    """Nanoseconds in HAProxy's time format: whole seconds as `2s`, else milliseconds (`500ms`)."""
    if ns % SECOND == 0:
        return f"{ns // SECOND}s"
    return f"{-(-ns // 1_000_000)}ms"


def published_port(service: Mapping[str, Any]) -> Mapping[str, Any]:
    """The service's first TCP port published through the routing mesh (Endpoint.Ports), or a
    clear error saying why there is none to balance to."""
    name = str((service.get("Spec") or {}).get("Name") or service.get("ID", ""))
    ports = [p for p in (service.get("Endpoint") or {}).get("Ports") or () if p.get("PublishedPort")]
    if not ports:
        raise CLIError(
            f"service {name} has no published port: publish one first, "
            f"e.g. `shoal service update --publish-add 80:8080 {name}`"
        )
    ingress = [p for p in ports if (p.get("PublishMode") or "ingress") == "ingress"]
    tcp = [p for p in ingress if (p.get("Protocol") or "tcp") == "tcp"]
    if tcp:
        return tcp[0]
    if ingress:
        listed = ", ".join(f"{p['PublishedPort']}/{p.get('Protocol')}" for p in ingress)
        raise CLIError(f"service {name} publishes no TCP port ({listed}): HAProxy balances TCP")
    listed = ", ".join(str(p["PublishedPort"]) for p in ports)
    raise CLIError(
        f"service {name} publishes port {listed} in host mode: only nodes running its tasks listen there; "
        "publish it in ingress mode (the routing mesh) to balance over every node"
    )


def lb_servers(nodes: Iterable[Mapping[str, Any]], port: int) -> tuple[list[dict[str, Any]], list[str]]:
    """One backend server per node with a usable underlay address, sorted by hostname; and a
    warning for each node left out. Names are the hostnames (made unique, HAProxy-safe)."""
    servers: list[dict[str, Any]] = []
    warnings: list[str] = []
    ordered = sorted(nodes, key=lambda n: (natural_key(hostname(n)), hostname(n), str(n.get("ID", ""))))
    seen: set[str] = set()
    for n in ordered:
        node_id = str(n.get("ID", ""))
        name = _UNSAFE.sub("_", hostname(n)) or node_id[:12] or "node"
        addr = str((n.get("Status") or {}).get("Addr") or "")
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            warnings.append(f"WARNING: node {hostname(n) or node_id} left out: no underlay address ({addr!r})")
            continue
        if ip.is_unspecified:
            warnings.append(f"WARNING: node {hostname(n) or node_id} left out: no underlay address ({addr!r})")
            continue
        if name in seen:
            name = f"{name}-{node_id[:12]}"
        seen.add(name)
        servers.append({"name": name, "address": str(ip), "port": port})
    return servers, warnings


def render_haproxy(
    servers: Iterable[Mapping[str, Any]],
    *,
    port: int = DEFAULT_PORT,
    check_interval_ns: int = DEFAULT_CHECK_INTERVAL,
    service: str = "",
    published: int | None = None,
    target: int | None = None,
) -> str:
    """The haproxy.cfg text: a frontend on `port`, round robin over `servers` with health checks."""
    try:
        import jinja2
    except ImportError:  # pragma: no cover - jinja2 is a dependency of the package
        raise CLIError("shoal lb needs jinja2: pip install jinja2") from None
    env = jinja2.Environment(
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    text = resources.files("shoal.cli").joinpath("templates", TEMPLATE).read_text(encoding="utf-8")
    return env.from_string(text).render(
        servers=list(servers),
        port=port,
        check_interval=haproxy_time(check_interval_ns),
        fall=FALL,
        rise=RISE,
        service=_UNSAFE.sub("_", service),
        published=port if published is None else published,
        target=target,
        **TIMEOUTS,
    )


# --- commands ---------------------------------------------------------------------------------------


def _service(api: Client, ref: str) -> dict[str, Any]:
    try:
        return api.get(f"/services/{ref}")
    except APIError as e:
        if e.status == 404:
            raise CLIError(f"Error: no such service: {ref}") from None
        raise


def cmd_haproxy(api: Client, args: argparse.Namespace) -> int:
    published, target, name = args.port, None, ""
    if args.service:
        service = _service(api, args.service)
        port = published_port(service)
        published, target = int(port["PublishedPort"]), port.get("TargetPort")
        name = str((service.get("Spec") or {}).get("Name") or args.service)
    servers, warnings = lb_servers(api.get("/nodes") or [], published)
    for warning in warnings:
        print(warning, file=sys.stderr)
    if not servers:
        raise CLIError("no node of the swarm has an underlay address to balance to")
    text = render_haproxy(
        servers,
        port=args.port,
        check_interval_ns=args.check_interval,
        service=name,
        published=published,
        target=target,
    )
    if args.output and args.output != "-":
        try:
            write_atomic(args.output, text, 0o644)  # in one step: a reloading HAProxy never reads half a file
        except OSError as e:
            raise CLIError(f"cannot write {args.output}: {e.strerror or e}") from None
    else:
        print(text, end="")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser(
        "lb", help="Configure an external load balancer", description="Configure an external load balancer"
    )
    group.set_defaults(func=None, group=group)
    cmds = group.add_subparsers(title="commands", metavar="COMMAND")

    p = cmds.add_parser(
        "haproxy",
        help="Print an HAProxy configuration balancing over every node",
        description="Render an HAProxy configuration: a frontend on --port, round robin with health checks "
        "over every node's underlay address on the service's published port (or --port).",
    )
    p.add_argument("--port", type=port_number, default=DEFAULT_PORT, help="port HAProxy listens on (80)")
    p.add_argument("--service", metavar="SERVICE", help="balance to this service's published port (default: --port)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the configuration to FILE (default: stdout)")
    p.add_argument(
        "--check-interval",
        type=check_interval,
        default=DEFAULT_CHECK_INTERVAL,
        metavar="DURATION",
        help="interval between health checks of each node (2s)",
    )
    p.set_defaults(func=cmd_haproxy)
