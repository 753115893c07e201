"""`shoal network create|ls|inspect|rm`, shaped after `docker network`.

Network references (ID, unique ID prefix or name) are resolved by the agent
(GET /networks/{ref}); removal then uses the network's full ID. Subnet, gateway and name are
checked here before any call, so that a typo is reported as the user's mistake and nothing is
half-created. Filters of `ls` are applied client-side, as `node ls` does, so that they mean the
same on every agent version.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from shoal.cli import args as argtypes
from shoal.cli.client import Client
from shoal.cli.errors import APIError, CLIError
from shoal.cli.inspect_format import inspect_format
from shoal.cli.output import go_time, inspect_json, natural_key, render_format
from shoal.errors import SpecError
from shoal.model.ids import short_id
from shoal.model.validate import parse_label

Network = Mapping[str, Any]

LS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
LS_HEADERS = {
    "ID": "NETWORK ID",
    "Name": "NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "IPv6": "IPV6",
    "Internal": "INTERNAL",
    "Labels": "LABELS",
    "CreatedAt": "CREATED AT",
}
LS_FILTERS = ("driver", "id", "label", "name", "scope", "type")
SCOPES = ("swarm", "global", "local")
DRIVER = "overlay"  # the only driver a swarm-scoped network can have in shoal
# the agent's rules (allocator): docker's name pattern, IPv4 subnets of /29 or larger
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
MAX_NAME = 63
MAX_PREFIX = 29


# --- pure helpers: create ---------------------------------------------------------------------------


def validate_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise CLIError(
            f"invalid network name {name!r}: use letters, digits, '_', '.' and '-', starting with a letter or digit"
        )
    if len(name) > MAX_NAME:
        raise CLIError(f"invalid network name {name!r}: at most {MAX_NAME} characters")
    return name


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    """`--subnet`: an IPv4 network address with its prefix (172.30.0.0/24), room for tasks."""
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise CLIError(f"invalid CIDR address: {text} (expected a subnet like 172.30.0.0/24)") from None
    if "/" not in text:
        raise CLIError(f"invalid CIDR address: {text} (the prefix length is missing, like {net.network_address}/24)")
    if not isinstance(net, ipaddress.IPv4Network):
        raise CLIError(f"invalid subnet {text}: only IPv4 overlay networks are supported")
    if str(net) != text.strip():
        raise CLIError(f"invalid subnet {text}: host bits are set (did you mean {net}?)")
    if net.prefixlen > MAX_PREFIX:
        raise CLIError(f"invalid subnet {text}: an IPv4 subnet of /{MAX_PREFIX} or larger is needed")
    return net


def parse_gateway(text: str, net: ipaddress.IPv4Network) -> str:
    try:
        gw = ipaddress.ip_address(text)
    except ValueError:
        raise CLIError(f"invalid gateway {text}: not an IP address") from None
    if gw not in net:
        raise CLIError(f"no matching subnet for gateway {text} (subnet {net})")
    if gw in (net.network_address, net.broadcast_address):
        raise CLIError(f"gateway {text} is not a usable address of subnet {net}")
    return str(gw)


def _one(values: Sequence[str] | None, flag: str) -> str | None:
    if not values:
        return None
    if len(values) > 1:
        raise CLIError(f"only one {flag} is supported per network (got {', '.join(values)})")
    return values[0]


def _string_map(items: Iterable[str], what: str) -> dict[str, str]:
    """`k=v` (or `k`, an empty value) flags as a map, later ones winning, like docker's."""
    out: dict[str, str] = {}
    for item in items:
        try:
            key, value = parse_label(item)
        except SpecError as e:
            raise CLIError(e.message.replace("label", what, 1)) from None
        out[key] = value
    return out


def create_request(
    name: str,
    *,
    driver: str = DRIVER,
    subnets: Sequence[str] | None = None,
    gateways: Sequence[str] | None = None,
    attachable: bool = False,
    internal: bool = False,
    labels: Iterable[str] = (),
    options: Iterable[str] = (),
) -> dict[str, Any]:
    """The NetworkCreateRequest (Docker Engine API) for `network create`, checked first."""
    if driver != DRIVER:
        raise CLIError(f"only overlay networks can be created in swarm scope (got driver {driver!r})")
    validate_name(name)
    subnet_text, gateway_text = _one(subnets, "--subnet"), _one(gateways, "--gateway")
    config: list[dict[str, str]] = []
    if subnet_text is not None:
        net = parse_subnet(subnet_text)
        entry = {"Subnet": str(net)}
        if gateway_text is not None:
            entry["Gateway"] = parse_gateway(gateway_text, net)
        config.append(entry)
    elif gateway_text is not None:
        raise CLIError("every ip-range or gateway must have a corresponding subnet")
    return {
        "Name": name,
        "Driver": DRIVER,
        "Internal": internal,
        "Attachable": attachable,
        "Ingress": False,
        "IPAM": {"Driver": "default", "Config": config, "Options": {}},
        "Options": _string_map(options, "option"),
        "Labels": _string_map(labels, "label"),
    }


# --- pure helpers: ls -------------------------------------------------------------------------------


def labels_text(labels: Mapping[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))


def network_row(net: Network, trunc: bool = True) -> dict[str, Any]:
    """The fields `network ls` shows and `--format` can use (docker's names; all strings)."""
    net_id = str(net.get("Id", ""))
    created = net.get("Created")
    return {
        "ID": short_id(net_id) if trunc else net_id,
        "Name": str(net.get("Name", "")),
        "Driver": str(net.get("Driver", "")),
        "Scope": str(net.get("Scope", "")),
        "IPv6": "true" if net.get("EnableIPv6") else "false",
        "Internal": "true" if net.get("Internal") else "false",
        "Labels": labels_text(net.get("Labels")),
        "CreatedAt": go_time(created) if created else "",
    }


def sort_networks(networks: Iterable[Network]) -> list[Network]:
    """By name, digits compared as numbers (docker's sortorder.NaturalLess), then ID."""
    return sorted(networks, key=lambda n: (natural_key(str(n.get("Name", ""))), str(n.get("Id", ""))))


def format_networks(
    networks: Iterable[Network], fmt: str | None = None, quiet: bool = False, trunc: bool = True
) -> str:
    ordered = sort_networks(networks)
    if quiet:
        return "".join(network_row(n, trunc)["ID"] + "\n" for n in ordered)
    rows = [network_row(n, trunc) for n in ordered]
    return render_format(fmt, rows, default_table=LS_TABLE, headers=LS_HEADERS, sample=network_row({}))


# --- pure helpers: inspect --format -------------------------------------------------------------------


def format_inspect(fmt: str, networks: Sequence[Network]) -> str:
    """`network inspect --format`: 'json', or a Go template run with each network as dot, through the
    evaluator every inspect uses (cli/inspect_format.py): `{{.IPAM.Config}}`, `{{json .Options}}`,
    `{{range .IPAM.Config}}{{.Subnet}}{{end}}`, `{{index .Labels "k"}}`."""
    return inspect_format(fmt, networks)


# --- commands ---------------------------------------------------------------------------------------


def get_network(api: Client, ref: str) -> dict[str, Any]:
    try:
        return api.get(f"/networks/{ref}")
    except APIError as e:
        if e.status == 404:
            raise CLIError(f"Error: No such network: {ref}") from None
        raise


def cmd_create(api: Client, args: argparse.Namespace) -> int:
    body = create_request(
        args.name,
        driver=args.driver,
        subnets=args.subnet,
        gateways=args.gateway,
        attachable=args.attachable,
        internal=args.internal,
        labels=args.label or (),
        options=args.opt or (),
    )
    resp = api.post("/networks/create", body) or {}
    if isinstance(resp, dict) and resp.get("Warning"):
        print(f"WARNING: {resp['Warning']}", file=sys.stderr)
    print(resp.get("Id", "") if isinstance(resp, dict) else resp)
    return 0


def cmd_ls(api: Client, args: argparse.Namespace) -> int:
    filters = argtypes.parse_filters(args.filter)
    networks = api.get("/networks", filters=filters or None) or []  # filtered by the agent only
    print(format_networks(networks, args.format, args.quiet, trunc=not args.no_trunc), end="")
    return 0


def cmd_inspect(api: Client, args: argparse.Namespace) -> int:
    found, errors = [], []
    for ref in args.networks:
        try:
            found.append(get_network(api, ref))
        except CLIError as e:
            errors.append(str(e))
    print(format_inspect(args.format, found) if args.format else inspect_json(found), end="")
    if errors:  # like docker: print what was found, then fail for the rest
        raise CLIError("\n".join(errors))
    return 0


def cmd_rm(api: Client, args: argparse.Namespace) -> int:
    """docker's way: remove each one that can be, print it, then fail with the others' errors."""
    errors: list[str] = []
    for ref in args.networks:
        try:
            net = get_network(api, ref)
            api.delete(f"/networks/{net.get('Id') or ref}")
        except CLIError as e:
            errors.append(str(e))
            continue
        print(ref, flush=True)
    if errors:
        raise CLIError("\n".join(errors))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("network", help="Manage networks", description="Manage swarm overlay networks")
    group.set_defaults(func=None, group=group)
    cmds = group.add_subparsers(title="commands", metavar="COMMAND")

    p = cmds.add_parser("create", help="Create a network", usage="%(prog)s [OPTIONS] NETWORK")
    p.add_argument("-d", "--driver", default=DRIVER, help="driver to manage the network (only 'overlay')")
    p.add_argument("--subnet", action="append", metavar="CIDR", help="IPv4 subnet, e.g. 172.30.0.0/24")
    p.add_argument("--gateway", action="append", metavar="IP", help="IPv4 gateway of the subnet (default: first)")
    p.add_argument("--attachable", action="store_true", help="enable manual container attachment")
    p.add_argument("--internal", action="store_true", help="restrict external access to the network")
    p.add_argument("--label", action="append", metavar="KEY=VALUE", help="set metadata on the network")
    p.add_argument("-o", "--opt", action="append", metavar="KEY=VALUE", help="set driver specific options")
    p.add_argument("name", metavar="NETWORK")
    p.set_defaults(func=cmd_create)

    p = cmds.add_parser("ls", aliases=["list"], help="List networks")
    p.add_argument(
        "-f",
        "--filter",
        action="append",
        metavar="KEY=VALUE",
        help=f"filter: {', '.join(LS_FILTERS)} (type=builtin: ingress and the gateway bridge)",
    )
    p.add_argument("--format", help="'table' (default), 'json', or a template like '{{.ID}}\\t{{.Name}}'")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate the output")
    p.add_argument("-q", "--quiet", action="store_true", help="only display network IDs")
    p.set_defaults(func=cmd_ls)

    p = cmds.add_parser("inspect", help="Display detailed information on one or more networks")
    p.add_argument("-f", "--format", help="'json' or a template like '{{.Name}} {{json .IPAM.Config}}'")
    p.add_argument("networks", nargs="+", metavar="NETWORK")
    p.set_defaults(func=cmd_inspect)

    p = cmds.add_parser("rm", aliases=["remove"], help="Remove one or more networks")
    p.add_argument("networks", nargs="+", metavar="NETWORK")
    p.set_defaults(func=cmd_rm)
