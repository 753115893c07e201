"""`shoal`: the docker-like command line of shoal.

Each command group is one module with `register(subparsers)`; its commands are functions
`(client, args) -> exit code`. Expected failures are `CLIError`s: printed without a traceback
(unless --debug) and exit 1. Usage errors are argparse's: exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from shoal import __version__
from shoal.cli import (
    events,
    image,
    lb,
    network,
    node,
    node_ps,
    secret,
    service,
    stack,
    swarm,
    system,
    tasks,
    visualizer,
    volume,
)
from shoal.cli.client import DEFAULT_HOST, HOST_ENV, Client
from shoal.cli.errors import CLIError

GROUPS = (
    swarm,
    node,
    service,
    node_ps,  # `node ps`: into the node group, after service (whose task table it prints)
    stack,
    tasks,
    network,
    secret,
    image,
    volume,
    lb,
    system,
    events,
    visualizer,
)  # a new command group = a new module listed here


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shoal",
        description="Manage a shoal swarm (docker swarm-like) through the local agent.",
    )
    parser.add_argument("--version", action="version", version=f"shoal version {__version__}")
    parser.add_argument(
        "-H",
        "--host",
        help=f"agent socket (default ${HOST_ENV} or {DEFAULT_HOST})",
    )
    parser.add_argument("-D", "--debug", action="store_true", help="print tracebacks of errors")
    parser.set_defaults(func=None, group=parser)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.func is None:  # `shoal` or `shoal node` alone: help, like docker
        args.group.print_help()
        return 0
    try:
        return int(args.func(Client(args.host), args) or 0)
    except CLIError as e:
        if args.debug:
            traceback.print_exc()
        sys.stdout.flush()  # what was printed before the error comes first, as in docker
        print(str(e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `shoal node ls | head`: the reader left; stop quietly (and keep Python from
        # complaining again while flushing stdout at exit)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
