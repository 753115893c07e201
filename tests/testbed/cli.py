"""`python -m testbed up|down|status|exec|ssh|inventory|start-agent|stop-agent|kill-agent|cut|heal`."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from testbed.bed import Testbed, TestbedError
from testbed.layout import CONTROLLER_NS


def _split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m testbed", description="shoal's test hosts on one machine")
    sub = p.add_subparsers(dest="verb", required=True)
    up = sub.add_parser("up", help="make the hosts (harmless when already up)")
    up.add_argument("--hosts", type=int, default=3)
    up.add_argument(
        "--managers", type=int, default=1, help="how many of the first hosts the inventory lists as managers"
    )
    sub.add_parser("down", help="remove every namespace, process, mount and file the testbed made")
    sub.add_parser("status")
    sub.add_parser("inventory", help="print the path of the Ansible inventory")
    sub.add_parser("ansible-cfg", help="print the path of the ansible.cfg to export as ANSIBLE_CONFIG")
    for verb in ("exec", "ssh", "start-agent"):
        s = sub.add_parser(verb)
        s.add_argument("host")
    for verb in ("stop-agent", "kill-agent", "cut", "heal"):
        sub.add_parser(verb).add_argument("host")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    own, command = _split_command(argv)
    args = build_parser().parse_args(own)
    bed = Testbed()
    try:
        return _dispatch(bed, args, command)
    except TestbedError as exc:
        print(f"testbed: {exc}", file=sys.stderr)
        return 1


def _dispatch(bed: Testbed, args: argparse.Namespace, command: list[str]) -> int:
    verb = args.verb
    if os.geteuid() != 0 and verb not in ("inventory", "ansible-cfg"):
        raise TestbedError("must run as root (it creates namespaces and mounts)")
    if verb == "up":
        started = time.monotonic()
        bed.up(args.hosts, args.managers)
        print(f"testbed up: {args.hosts} hosts in {time.monotonic() - started:.2f} s")
        _print_hosts(bed)
        return 0
    if verb == "down":
        started = time.monotonic()
        bed.down()
        print(f"testbed down in {time.monotonic() - started:.2f} s")
        return 0
    if verb == "status":
        if not bed.state():
            print("testbed is down")
            return 1
        _print_hosts(bed)
        return 0 if bed.healthy() else 1
    if verb == "inventory":
        print(bed.inventory_path)
        return 0
    if verb == "ansible-cfg":
        print(bed.ansible_cfg_path)
        return 0
    if verb == "exec":
        if not command:
            raise TestbedError("usage: python -m testbed exec HOST -- CMD [ARG...]")
        return subprocess.call(bed.exec_argv(args.host, command))
    if verb == "ssh":
        return subprocess.call(bed.ssh_argv(args.host, command))
    if verb == "start-agent":
        pid = bed.start_agent(args.host, command)
        print(f"shoald started on {args.host} (pid {pid}), log {bed.host(args.host).agent_log}")
        return 0
    if verb in ("stop-agent", "kill-agent"):
        if not bed.stop_agent(args.host, kill=verb == "kill-agent"):
            print(f"no shoald runs on {args.host}")
        return 0
    if verb in ("cut", "heal"):
        bed.set_link(args.host, up=verb == "heal")
        print(f"{args.host}: underlay link {'up' if verb == 'heal' else 'down'}")
        return 0
    raise TestbedError(f"unknown verb {verb}")


def _print_hosts(bed: Testbed) -> None:
    print(f"{'HOST':<9} {'ADDRESS':<13} {'ROLE':<8} {'SSHD':<5} {'AGENT':<8} LINK")
    for row in bed.status():
        agent = str(row["agent"]) if row["agent"] else "-"
        link = {True: "up", False: "CUT", None: "-"}[row["link"]]  # type: ignore[index]
        print(
            f"{row['name']:<9} {row['address']:<13} {row['role']:<8} {'yes' if row['sshd'] else 'NO':<5} "
            f"{agent:<8} {link}"
        )
    print(f"\nssh:       .venv/bin/python -m testbed ssh HOST   (or ssh through `ip netns exec {CONTROLLER_NS} nc`)")
    print("run:       .venv/bin/python -m testbed exec HOST -- CMD...")
    print(f"ansible:   ANSIBLE_CONFIG={bed.ansible_cfg_path} ansible all -m ping")
    print("tear down: make demo-down")
