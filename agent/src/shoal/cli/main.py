"""`shoal`: the docker-like command line of shoal."""

from __future__ import annotations

import argparse
import sys

from shoal import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shoal", description="Manage a shoal swarm (docker swarm-like).")
    parser.add_argument("--version", action="version", version=f"shoal {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
