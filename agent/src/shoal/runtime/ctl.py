"""`python -m shoal.runtime VERB`: drive a task driver by hand (like `ctr` for containerd).

For debugging a node and for the integration tests, which run it inside testbed hosts.
Output is JSON; errors print `{"error": ...}` and exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any

from shoal.config import TASK_DRIVERS, Config
from shoal.model.errors import SpecError
from shoal.runtime.base import RuntimeDriverError
from shoal.runtime.images import DEFAULT_ROOT, ImageStore

DEFAULT_STATE_DIR = "/var/lib/shoal/tasks"


def _out(obj: Any) -> None:
    print(json.dumps(obj, sort_keys=True), flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m shoal.runtime", description=__doc__)
    p.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR))
    p.add_argument("--images", default=str(DEFAULT_ROOT), help="image store root")
    p.add_argument("--driver", choices=TASK_DRIVERS, default=Config().task_driver, help="task driver")
    p.add_argument("--run-dir", default="/run/shoal", help="the agent's runtime directory (oci: runc state)")
    sub = p.add_subparsers(dest="verb", required=True)
    sub.add_parser("run", help="prepare and start the Task read as JSON from stdin")
    sub.add_parser("hold", help="as run, then stay alive (an agent to kill in tests)")
    sub.add_parser("rm-all", help="remove every task of this node (running ones are killed)")
    for verb in ("poll", "rm", "pids", "state"):
        sub.add_parser(verb).add_argument("task_id")
    w = sub.add_parser("wait")
    w.add_argument("task_id")
    w.add_argument("--timeout", type=float)
    s = sub.add_parser("stop")
    s.add_argument("task_id")
    s.add_argument("--grace", type=float)
    k = sub.add_parser("kill")
    k.add_argument("task_id")
    k.add_argument("--signal", default="KILL")
    lg = sub.add_parser("logs")
    lg.add_argument("task_id")
    lg.add_argument("--tail", type=int)
    lg.add_argument("-f", "--follow", action="store_true")
    sub.add_parser("ps", help="running tasks")
    sub.add_parser("adopt", help="find running tasks after a restart")
    ex = sub.add_parser("exec", help="run a command inside a running task")
    ex.add_argument("-t", "--tty", action="store_true")
    ex.add_argument("task_id")
    ex.add_argument("argv", nargs=argparse.REMAINDER)
    sub.add_parser("images")
    sub.add_parser("rmi").add_argument("name")
    imp = sub.add_parser("import")
    imp.add_argument("source", help="directory or tar file; '-' for a config-only image")
    imp.add_argument("name")
    imp.add_argument("-c", "--change", action="append", default=[])
    return p


def run(args: argparse.Namespace) -> int:
    from shoal.runtime.oci.driver import OCIDriver

    images = ImageStore(args.images)
    driver = OCIDriver(args.state_dir, images=images, run_dir=args.run_dir)
    verb = args.verb
    if verb in ("run", "hold"):
        task = json.load(sys.stdin)
        _out(driver.start(task).to_dict())
        while verb == "hold":
            time.sleep(3600)
    elif verb == "poll":
        st = driver.poll(args.task_id)
        _out(st.to_dict() | {"message": st.message} if st else None)
    elif verb == "wait":
        st = driver.wait(args.task_id, args.timeout)
        _out(st.to_dict() | {"message": st.message} if st else None)
    elif verb == "stop":
        st = driver.stop(args.task_id, args.grace)
        _out(st.to_dict() | {"message": st.message} if st else None)
    elif verb == "kill":
        name = args.signal.upper()
        sig = int(name) if name.isdigit() else signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
        driver.kill(args.task_id, sig)
    elif verb == "rm":
        driver.remove(args.task_id)
    elif verb == "rm-all":
        for task_id in driver.task_ids():
            driver.remove(task_id)
    elif verb == "pids":
        _out(sorted(driver.task_pids(args.task_id)))
    elif verb == "logs":
        for rec in driver.log_records(args.task_id, tail=args.tail, follow=args.follow):
            sys.stdout.buffer.write(rec.to_line())
            sys.stdout.buffer.flush()
    elif verb == "state":
        _out(driver.runtime_state(args.task_id))
    elif verb in ("ps", "adopt"):
        _out([h.to_dict() for h in (driver.list_running() if verb == "ps" else driver.adopt())])
    elif verb == "exec":
        command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        argv, env = driver.exec_command(args.task_id, command, tty=args.tty)
        os.execve(argv[0], argv, env)
    elif verb == "images":
        _out([{**img.inspect(), "Rootfs": str(img.rootfs)} for img in images.list()])
    elif verb == "rmi":
        _out(images.remove(args.name))
    elif verb == "import":
        source = None if args.source == "-" else args.source
        image = images.import_dir(source, args.name, args.change)
        _out({**image.inspect(), "Rootfs": str(image.rootfs)})
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (RuntimeDriverError, SpecError) as exc:
        _out({"error": exc.message, "kind": type(exc).__name__})
        return 1
