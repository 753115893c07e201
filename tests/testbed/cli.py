"""`python -m testbed up|down|status|exec|ssh|inventory|start-agent|stop-agent|kill-agent|cut|heal|reboot`.

`--backend ns` (default; or $SHOAL_TESTBED_BACKEND) are namespaced hosts, `--backend vm` Debian 12 VMs
under QEMU (testbed.vm). Both can be up at once; each verb acts on the backend it is given.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from testbed.bed import Testbed, TestbedError
from testbed.layout import CONTROLLER_NS

BACKENDS = ("ns", "vm")


def _split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def build_parser() -> argparse.ArgumentParser:
    default_backend = os.environ.get("SHOAL_TESTBED_BACKEND", "ns")
    # --backend before or after the verb
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--backend", choices=BACKENDS, default=argparse.SUPPRESS, help="ns (default) or vm")
    p = argparse.ArgumentParser(prog="python -m testbed", description="shoal's test hosts on one machine")
    p.add_argument("--backend", choices=BACKENDS, default=default_backend, help="ns (namespaces, default) or vm")
    sub = p.add_subparsers(dest="verb", required=True)
    up = sub.add_parser("up", parents=[common], help="make the hosts (harmless when already up)")
    up.add_argument("--hosts", type=int, default=3)
    up.add_argument(
        "--managers", type=int, default=1, help="how many of the first hosts the inventory lists as managers"
    )
    up.add_argument(
        "--clock-offset",
        action="append",
        default=[],
        metavar="HOST=SECONDS",
        help="vm backend: start HOST with its clock SECONDS ahead (negative: behind), e.g. swarm02=300",
    )
    sub.add_parser("down", parents=[common], help="remove every namespace, process, mount and file the testbed made")
    sub.add_parser("status", parents=[common])
    sub.add_parser("inventory", parents=[common], help="print the path of the Ansible inventory")
    sub.add_parser(
        "ansible-cfg", parents=[common], help="print the path of the ansible.cfg to export as ANSIBLE_CONFIG"
    )
    for verb in ("exec", "ssh", "start-agent"):
        s = sub.add_parser(verb, parents=[common])
        s.add_argument("host")
    for verb in ("stop-agent", "kill-agent", "cut", "heal"):
        sub.add_parser(verb, parents=[common]).add_argument("host")
    sub.add_parser("reboot", parents=[common], help="reboot a VM (vm backend)").add_argument("host")
    return p


def parse_clock_offsets(items: list[str]) -> dict[int, int]:
    """["swarm02=300"] -> {2: 300}"""
    out: dict[int, int] = {}
    for item in items:
        host, sep, seconds = item.partition("=")
        if not sep or not host.startswith("swarm") or not host[5:].isdigit():
            raise TestbedError(f"--clock-offset wants HOST=SECONDS (e.g. swarm02=300), not {item!r}")
        try:
            out[int(host[5:])] = int(seconds)
        except ValueError:
            raise TestbedError(f"--clock-offset: {seconds!r} is not a number of seconds") from None
    return out


def make_bed(backend: str) -> Testbed:
    if backend == "vm":
        from testbed.vm.bed import VmTestbed

        return VmTestbed()  # type: ignore[return-value]
    return Testbed()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    own, command = _split_command(argv)
    args = build_parser().parse_args(own)
    bed = make_bed(args.backend)
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
        if args.clock_offset:
            if args.backend != "vm":
                raise TestbedError("--clock-offset needs --backend vm (namespaced hosts share the machine's clock)")
            bed.up(args.hosts, args.managers, clock_offsets=parse_clock_offsets(args.clock_offset))  # type: ignore[call-arg]
        else:
            bed.up(args.hosts, args.managers)
        print(f"testbed up: {args.hosts} hosts in {time.monotonic() - started:.2f} s")
        _print_hosts(bed, args.backend)
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
        _print_hosts(bed, args.backend)
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
        log = bed.agent_log_hint(args.host) if args.backend == "vm" else bed.host(args.host).agent_log  # type: ignore[attr-defined]
        print(f"shoald started on {args.host} (pid {pid}), log {log}")
        return 0
    if verb == "reboot":
        if args.backend != "vm":
            raise TestbedError("reboot needs --backend vm (namespaced hosts share the machine's kernel)")
        took = bed.reboot(args.host)  # type: ignore[attr-defined]
        print(f"{args.host} rebooted, ssh answers again after {took:.0f} s")
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


def _print_hosts(bed: Testbed, backend: str = "ns") -> None:
    print(f"{'HOST':<9} {'ADDRESS':<13} {'ROLE':<8} {'SSHD':<5} {'AGENT':<8} LINK")
    for row in bed.status():
        agent = str(row["agent"]) if row["agent"] else "-"
        link = {True: "up", False: "CUT", None: "-"}[row["link"]]  # type: ignore[index]
        print(
            f"{row['name']:<9} {row['address']:<13} {row['role']:<8} {'yes' if row['sshd'] else 'NO':<5} "
            f"{agent:<8} {link}"
        )
    flag = " --backend vm" if backend == "vm" else ""
    ctl = getattr(bed, "controller_ns", CONTROLLER_NS)
    print(f"\nssh:       .venv/bin/python -m testbed{flag} ssh HOST   (or ssh through `ip netns exec {ctl} nc`)")
    print(f"run:       .venv/bin/python -m testbed{flag} exec HOST -- CMD...")
    print(f"ansible:   ANSIBLE_CONFIG={bed.ansible_cfg_path} ansible all -m ping")
    print("tear down: " + ("make vm-down" if backend == "vm" else "make demo-down"))
