"""shoald: the shoal agent daemon."""

from __future__ import annotations

import argparse
import sys

from shoal import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shoald", description="The shoal agent (manager and worker).")
    parser.add_argument("--version", action="version", version=f"shoald {__version__}")
    parser.add_argument("--config", default="/etc/shoal/shoald.yml", help="configuration file")
    return parser


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print("shoald: the agent is not implemented yet", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
