"""`shoal swarm init|join|join-token|leave|inspect|update|unlock|unlock-key`, shaped after `docker swarm`."""

from __future__ import annotations

import argparse
import copy
import getpass
import sys
from collections.abc import Mapping
from typing import Any

from shoal.cli import args as argtypes
from shoal.cli import swarm_ca
from shoal.cli.client import Client
from shoal.cli.errors import APIError, CLIError
from shoal.cli.output import inspect_json

MANAGER_PORT = 2377
DEFAULT_LISTEN_ADDR = f"0.0.0.0:{MANAGER_PORT}"  # docker's default for init and join
ROLES = ("worker", "manager")


# --- pure helpers ---------------------------------------------------------------------------------


def join_command_text(role: str, token: str, addr: str) -> str:
    """docker's printJoinCommand block, with `shoal` for `docker` (ends with a blank line)."""
    return (
        f"To add a {role} to this swarm, run the following command:\n\n    shoal swarm join --token {token} {addr}\n\n"
    )


def init_text(node_id: str, worker_token: str, addr: str) -> str:
    return (
        f"Swarm initialized: current node ({node_id}) is now a manager.\n\n"
        + join_command_text("worker", worker_token, addr)
        + "To add a manager to this swarm, run 'shoal swarm join-token manager' and follow the instructions.\n\n"
    )


def unlock_command_text(key: str) -> str:
    """docker's printUnlockCommand block, with `shoal` for `docker`."""
    return (
        "To unlock a swarm manager after it restarts, run the `shoal swarm unlock`\n"
        f"command and provide the following key:\n\n    {key}\n\n"
        "Remember to store this key in a password manager, since without it you\n"
        "will not be able to restart the manager.\n"
    )


def manager_addr_from_info(info: Mapping[str, Any]) -> str:
    """The local manager's `ip:2377` from GET /info: its own RemoteManagers entry ("" if none)."""
    swarm = info.get("Swarm") or {}
    for peer in swarm.get("RemoteManagers") or ():
        if peer.get("NodeID") == swarm.get("NodeID") and peer.get("Addr"):
            return str(peer["Addr"])
    return ""


def fallback_addr(info: Mapping[str, Any]) -> str:
    """Last resort when the agent names no manager address: the node address and port 2377."""
    swarm = info.get("Swarm") or {}
    for peer in swarm.get("RemoteManagers") or ():
        if peer.get("Addr"):
            return str(peer["Addr"])
    return f"{swarm.get('NodeAddr') or '<manager-ip>'}:{MANAGER_PORT}"


def init_request(args: argparse.Namespace) -> dict[str, Any]:
    """The SwarmInitRequest body. Spec carries only the flags given: the agent fills defaults,
    as docker's swarmOptions.ToSpec does for flags that were not changed."""
    body: dict[str, Any] = {
        "ListenAddr": args.listen_addr,
        "AdvertiseAddr": args.advertise_addr or "",
        "Spec": spec_changes({}, args),
    }
    if args.autolock:
        body["AutoLockManagers"] = True
    if args.data_path_addr:
        body["DataPathAddr"] = args.data_path_addr
    if args.data_path_port is not None:
        body["DataPathPort"] = args.data_path_port
    if args.default_addr_pool:
        body["DefaultAddrPool"] = [cidr for group in args.default_addr_pool for cidr in group]
    if args.default_addr_pool_mask_length is not None:
        body["SubnetSize"] = args.default_addr_pool_mask_length
    return body


def join_request(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {
        "RemoteAddrs": [args.remote],
        "JoinToken": args.token,
        "ListenAddr": args.listen_addr,
        "AdvertiseAddr": args.advertise_addr or "",
    }
    if args.data_path_addr:
        body["DataPathAddr"] = args.data_path_addr
    return body


def spec_changes(spec: Mapping[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """`spec` with the swarm flags that were given applied (the others untouched)."""
    new = copy.deepcopy(dict(spec))
    if args.dispatcher_heartbeat is not None:
        new.setdefault("Dispatcher", {})["HeartbeatPeriod"] = args.dispatcher_heartbeat
    if args.task_history_limit is not None:
        new.setdefault("Orchestration", {})["TaskHistoryRetentionLimit"] = args.task_history_limit
    if args.cert_expiry is not None:
        new.setdefault("CAConfig", {})["NodeCertExpiry"] = args.cert_expiry
    if getattr(args, "autolock", None) is not None:
        new.setdefault("EncryptionConfig", {})["AutoLockManagers"] = args.autolock
    return new


# --- commands ---------------------------------------------------------------------------------------


def _manager_addr(api: Client, info: Mapping[str, Any]) -> str:
    addr = manager_addr_from_info(info)
    node_id = (info.get("Swarm") or {}).get("NodeID")
    if not addr and node_id:
        try:  # docker reads the node's ManagerStatus.Addr; /info usually has it already
            addr = ((api.get(f"/nodes/{node_id}") or {}).get("ManagerStatus") or {}).get("Addr", "")
        except APIError:
            addr = ""
    return addr or fallback_addr(info)


def cmd_init(api: Client, args: argparse.Namespace) -> int:
    node_id = api.post("/swarm/init", init_request(args))
    info = api.get("/info")
    if not isinstance(node_id, str) or not node_id:
        node_id = (info.get("Swarm") or {}).get("NodeID", "")
    tokens = api.get("/swarm").get("JoinTokens") or {}
    print(init_text(node_id, tokens.get("Worker", ""), _manager_addr(api, info)), end="")
    if args.autolock:
        key = str(api.get("/swarm/unlockkey").get("UnlockKey") or "")
        if key:
            print(unlock_command_text(key), end="")
    return 0


def cmd_join(api: Client, args: argparse.Namespace) -> int:
    api.post("/swarm/join", join_request(args))
    info = api.get("/info")
    role = "manager" if (info.get("Swarm") or {}).get("ControlAvailable") else "worker"
    print(f"This node joined a swarm as a {role}.")
    return 0


def cmd_join_token(api: Client, args: argparse.Namespace) -> int:
    key = args.role.capitalize()  # JoinTokens.Worker / JoinTokens.Manager
    if args.rotate:
        sw = api.get("/swarm")
        flag = "rotateWorkerToken" if args.role == "worker" else "rotateManagerToken"
        api.post("/swarm/update", sw.get("Spec") or {}, version=sw.get("Version", {}).get("Index", 0), **{flag: True})
        if not args.quiet:
            print(f"Successfully rotated {args.role} join token.\n")
    token = (api.get("/swarm").get("JoinTokens") or {}).get(key, "")
    if args.quiet:
        print(token)
        return 0
    print(join_command_text(args.role, token, _manager_addr(api, api.get("/info"))), end="")
    return 0


def cmd_leave(api: Client, args: argparse.Namespace) -> int:
    api.post("/swarm/leave", force=bool(args.force))
    print("Node left the swarm.")
    return 0


def cmd_inspect(api: Client, args: argparse.Namespace) -> int:
    print(inspect_json([api.get("/swarm")]), end="")
    return 0


def _autolock(spec: Mapping[str, Any]) -> bool:
    return bool((spec.get("EncryptionConfig") or {}).get("AutoLockManagers"))


def cmd_update(api: Client, args: argparse.Namespace) -> int:
    sw = api.get("/swarm")
    before = _autolock(sw.get("Spec") or {})
    spec = spec_changes(sw.get("Spec") or {}, args)
    api.post("/swarm/update", spec, version=sw.get("Version", {}).get("Index", 0))
    print("Swarm updated.")
    if _autolock(spec) and not before:  # docker prints the new key when autolock was turned on
        print(unlock_command_text(str(api.get("/swarm/unlockkey").get("UnlockKey") or "")), end="")
    return 0


def read_unlock_key(prompt: str = "Enter unlock key: ") -> str:
    """docker's readKey: a hidden prompt on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.readline().strip()


def cmd_unlock(api: Client, args: argparse.Namespace) -> int:
    # docker asks /info first, and asks for no key unless the node is locked
    state = (api.get("/info").get("Swarm") or {}).get("LocalNodeState")
    if state == "inactive":
        raise CLIError("Error: This node is not part of a swarm")
    if state != "locked":
        raise CLIError("Error: swarm is not locked")
    api.post("/swarm/unlock", {"UnlockKey": read_unlock_key()})
    return 0


def cmd_unlock_key(api: Client, args: argparse.Namespace) -> int:
    if args.rotate:
        sw = api.get("/swarm")
        if not _autolock(sw.get("Spec") or {}):
            raise CLIError("cannot rotate because autolock is not turned on")
        api.post(
            "/swarm/update",
            sw.get("Spec") or {},
            version=sw.get("Version", {}).get("Index", 0),
            rotateManagerUnlockKey=True,
        )
        if not args.quiet:
            print("Successfully rotated manager unlock key.\n")
    try:
        key = str(api.get("/swarm/unlockkey").get("UnlockKey") or "")
    except APIError as exc:
        raise CLIError(f"could not fetch unlock key: {exc}") from None
    if not key:
        raise CLIError("no unlock key is set")
    print(key if args.quiet else unlock_command_text(key), end="\n" if args.quiet else "")
    return 0


def _spec_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dispatcher-heartbeat", type=argtypes.duration, metavar="DURATION", help="dispatcher heartbeat period (5s)"
    )
    p.add_argument(
        "--task-history-limit", type=argtypes.non_negative_int, metavar="N", help="task history retention limit (5)"
    )
    p.add_argument(
        "--cert-expiry", type=argtypes.duration, metavar="DURATION", help="validity period for node certificates"
    )


def _addr_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--advertise-addr", metavar="ADDR", help="advertised address (<ip|interface>[:port])")
    p.add_argument("--listen-addr", default=DEFAULT_LISTEN_ADDR, metavar="ADDR", help="listen address (%(default)s)")
    p.add_argument("--data-path-addr", metavar="ADDR", help="address or interface for data path traffic")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("swarm", help="Manage the swarm", description="Manage the swarm")
    group.set_defaults(func=None, group=group)
    cmds = group.add_subparsers(title="commands", metavar="COMMAND")

    p = cmds.add_parser("init", help="Initialize a swarm")
    _addr_flags(p)
    p.add_argument(
        "--default-addr-pool", type=argtypes.cidr_list, action="append", metavar="CIDR", help="default address pool"
    )
    p.add_argument(
        "--default-addr-pool-mask-length", type=argtypes.non_negative_int, metavar="N", help="subnet size (24)"
    )
    p.add_argument("--data-path-port", type=argtypes.non_negative_int, metavar="PORT", help="VXLAN port (4789)")
    p.add_argument(
        "--autolock",
        action="store_true",
        default=None,
        help="enable manager autolocking (requiring an unlock key to start a stopped manager)",
    )
    _spec_flags(p)
    p.set_defaults(func=cmd_init)

    p = cmds.add_parser("join", help="Join a swarm as a node and/or manager")
    p.add_argument("--token", required=True, help="token for entry into the swarm")
    _addr_flags(p)
    p.add_argument("remote", metavar="HOST:PORT", help="address of a manager")
    p.set_defaults(func=cmd_join)

    p = cmds.add_parser("join-token", help="Manage join tokens")
    p.add_argument("-q", "--quiet", action="store_true", help="only display token")
    p.add_argument("--rotate", action="store_true", help="rotate join token")
    p.add_argument("role", choices=ROLES)
    p.set_defaults(func=cmd_join_token)

    p = cmds.add_parser("leave", help="Leave the swarm")
    p.add_argument("-f", "--force", action="store_true", help="force this node to leave the swarm, ignoring warnings")
    p.set_defaults(func=cmd_leave)

    p = cmds.add_parser("inspect", help="Display the swarm object (GET /swarm) as JSON")
    p.set_defaults(func=cmd_inspect)

    swarm_ca.register(cmds)

    p = cmds.add_parser("update", help="Update the swarm")
    _spec_flags(p)
    p.add_argument(
        "--autolock",
        type=argtypes.boolean,
        nargs="?",
        const=True,
        metavar="true|false",
        help="change manager autolocking setting (true|false)",
    )
    p.set_defaults(func=cmd_update)

    p = cmds.add_parser("unlock", help="Unlock swarm (reads the key from a prompt, or from stdin)")
    p.set_defaults(func=cmd_unlock)

    p = cmds.add_parser("unlock-key", help="Manage the unlock key")
    p.add_argument("-q", "--quiet", action="store_true", help="only display token")
    p.add_argument("--rotate", action="store_true", help="rotate unlock key")
    p.set_defaults(func=cmd_unlock_key)
