"""`shoal ps`, `shoal exec`, `shoal kill`: the tasks of this node, as `docker ps|exec|kill` are used
in the seed tour (§3, §6, §7, §8). They talk to the local agent's shoal-only API, so they work on
workers too; a TASK is `web.1`, the full name `web.1.<task id>`, or a task ID prefix (the agent
resolves it and answers 404 `No such task: X`).

`exec` asks the agent for the argv and environment that enter the task's namespaces, then
replaces this process with it: on the same host and as root, `-i`/`-t` need nothing more than
the inherited terminal. Without either, stdin is /dev/null, as with docker.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

from shoal.cli.client import Client
from shoal.cli.errors import CLIError
from shoal.cli.output import capitalize, human_duration, render_format
from shoal.cli.service import ago, ellipsis, for_each, task_name, timestamp_ns
from shoal.model.ids import short_id

Task = Mapping[str, Any]

PS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Pid}}"
PS_HEADERS = {
    "ID": "TASK ID",
    "Name": "NAME",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "RunningFor": "CREATED",
    "Status": "STATUS",
    "Pid": "PID",
}
ACTIVE_STATES = ("assigned", "accepted", "preparing", "ready", "starting", "running")
COMMAND_WIDTH = 20  # docker ps truncates COMMAND to 20 characters


# --- pure helpers ---------------------------------------------------------------------------------


def local_name(task: Task) -> str:
    """The task's full name `<service>.<slot>.<task id>` (docker's container name). The local API
    gives `Name` (a worker cannot look services up); without it, the service name label, then
    the service ID stand in."""
    task_id = str(task.get("ID", ""))
    name = str(task.get("Name") or "")
    if not name:
        labels = task.get("Labels") or {}
        service = task.get("ServiceName") or labels.get("com.docker.swarm.service.name") or task.get("ServiceID", "")
        name = task_name(task, str(service))
    return name if not task_id or name.endswith("." + task_id) else f"{name}.{task_id}"


def command_text(task: Task, trunc: bool = True) -> str:
    """docker ps's COMMAND: the argv joined, cut to 20 characters, quoted."""
    argv = task.get("Argv")
    if not argv:
        spec = (task.get("Spec") or {}).get("ContainerSpec") or {}
        argv = [*(spec.get("Command") or []), *(spec.get("Args") or [])]
    text = " ".join(str(a) for a in argv)
    if trunc:
        text = ellipsis(text, COMMAND_WIDTH)
    return json.dumps(text, ensure_ascii=False)


def status_text(task: Task, now_ns: int) -> str:
    """docker ps's STATUS: `Up 2 minutes`, `Exited (137) 5 seconds ago`, else the state and age."""
    status = task.get("Status") or {}
    state = str(status.get("State", ""))
    since = now_ns - timestamp_ns(status.get("Timestamp"))
    health = (task.get("Health") or {}).get("Status")
    if health and state in ("running", "starting"):  # docker ps: `Up 3 seconds (health: starting)`
        return f"Up {human_duration(since)} ({'health: starting' if health == 'starting' else health})"
    if state == "running":
        return f"Up {human_duration(since)}"
    exit_code = (status.get("ContainerStatus") or {}).get("ExitCode")
    if state in ("complete", "failed", "shutdown", "rejected", "orphaned") and exit_code is not None:
        return f"Exited ({exit_code}) {human_duration(since)} ago"
    return f"{capitalize(state)} {ago(status.get('Timestamp'), now_ns)}"


def pid_of(task: Task) -> int:
    return int(task.get("Pid") or ((task.get("Status") or {}).get("ContainerStatus") or {}).get("PID") or 0)


def local_row(task: Task, now_ns: int, trunc: bool = True) -> dict[str, Any]:
    task_id = str(task.get("ID", ""))
    pid = pid_of(task)
    return {
        "ID": short_id(task_id) if trunc else task_id,
        "Name": local_name(task),
        "Image": ((task.get("Spec") or {}).get("ContainerSpec") or {}).get("Image", ""),
        "Command": command_text(task, trunc),
        "RunningFor": f"{human_duration(now_ns - timestamp_ns(task.get('CreatedAt')))} ago",
        "Status": status_text(task, now_ns),
        "Pid": str(pid) if pid else "",
    }


def format_local_tasks(
    tasks: Iterable[Task], now_ns: int, *, show_all: bool = False, trunc: bool = True, quiet: bool = False,
    fmt: str | None = None,
) -> str:  # fmt: skip
    """Newest first, like docker ps; only active tasks unless `show_all`."""
    shown = [t for t in tasks if show_all or (t.get("Status") or {}).get("State") in ACTIVE_STATES]
    shown.sort(key=lambda t: timestamp_ns(t.get("CreatedAt")), reverse=True)
    if quiet:
        return "".join(f"{short_id(str(t.get('ID', ''))) if trunc else t.get('ID', '')}\n" for t in shown)
    rows = [local_row(t, now_ns, trunc) for t in shown]
    return render_format(fmt, rows, default_table=PS_TABLE, headers=PS_HEADERS, sample=local_row({}, now_ns))


def signal_name(text: str) -> str:
    """`KILL`, `SIGKILL`, `kill` or `9` → the name the agent takes (`KILL`); unknown: an error."""
    value = text.strip().upper()
    if value.isdigit():
        try:
            return signal.Signals(int(value)).name.removeprefix("SIG")
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid signal: {text}") from None
    name = value if value.startswith("SIG") else "SIG" + value
    if name not in signal.Signals.__members__:
        raise argparse.ArgumentTypeError(f"invalid signal: {text}")
    return name.removeprefix("SIG")


def exec_env(env: Any) -> dict[str, str]:
    """The agent's Env as a mapping (a `K=V` list is accepted too)."""
    if isinstance(env, Mapping):
        return {str(k): str(v) for k, v in env.items()}
    out: dict[str, str] = {}
    for item in env or ():
        key, _, value = str(item).partition("=")
        out[key] = value
    return out


# --- commands ---------------------------------------------------------------------------------------


def cmd_ps(api: Client, args: argparse.Namespace) -> int:
    tasks = api.get("/shoal/local/tasks") or []
    out = format_local_tasks(
        tasks, time.time_ns(), show_all=args.all, trunc=not args.no_trunc, quiet=args.quiet, fmt=args.format
    )
    print(out, end="")
    return 0


def cmd_exec(api: Client, args: argparse.Namespace) -> int:
    if not args.cmd:
        raise CLIError('"shoal exec" requires at least 2 arguments: TASK COMMAND [ARG...]')
    if args.interactive and args.tty and not os.isatty(0):
        raise CLIError("the input device is not a TTY")
    resp = api.get(f"/shoal/local/tasks/{args.task}/exec", cmd=list(args.cmd), tty=int(bool(args.tty)))
    argv = [str(a) for a in (resp or {}).get("Argv") or ()]
    if not argv:
        raise CLIError(f"the agent gave no command to enter task {args.task}")
    env = exec_env(resp.get("Env"))
    if not (args.interactive or args.tty):
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as e:
        raise CLIError(f"exec {argv[0]}: {e.strerror or e}") from e
    return 0  # not reached


def cmd_kill(api: Client, args: argparse.Namespace) -> int:
    return for_each(args.tasks, lambda ref: api.post(f"/shoal/local/tasks/{ref}/kill", signal=args.signal))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ps", help="List the tasks running on this node")
    p.add_argument("-a", "--all", action="store_true", help="show all tasks the node knows (default: active ones)")
    p.add_argument("--format", help="'table' (default), 'json', or a template like '{{.ID}}\\t{{.Name}}'")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="only display task IDs")
    p.set_defaults(func=cmd_ps)

    p = sub.add_parser(
        "exec", help="Run a command in a running task on this node", usage="%(prog)s [-i] [-t] TASK COMMAND [ARG...]"
    )
    p.add_argument("-i", "--interactive", action="store_true", help="keep STDIN open")
    p.add_argument("-t", "--tty", action="store_true", help="use the terminal")
    p.add_argument("task", metavar="TASK", help="web.1, the full task name, or a task ID prefix")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")
    p.set_defaults(func=cmd_exec)

    p = sub.add_parser("kill", help="Kill one or more tasks running on this node")
    p.add_argument("-s", "--signal", type=signal_name, default="KILL", help="signal to send (KILL)")
    p.add_argument("tasks", nargs="+", metavar="TASK")
    p.set_defaults(func=cmd_kill)
