"""A Dataplane driven over stdin/stdout, run inside a testbed host (no tests in this file).

The dataplane test and bench/dataplane.py start one per host and keep it for a whole run, so that
one Dataplane object (with its memory of peers and VIP tables) serves every call, as in shoald.
Protocol: one JSON object per line, {"op": NAME, "args": {...}} -> {"ok": true, "result": ...}
or {"ok": false, "error": "..."}.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

DRIVER = Path(__file__)


class Driver:
    """Client side: one driver process inside `host` of the testbed."""

    def __init__(self, bed: Any, host: str, node_ip: str) -> None:
        self.host = host
        self.proc = subprocess.Popen(
            bed.exec_argv(host, ["python", str(DRIVER), node_ip]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def call(self, op: str, **args: Any) -> Any:
        assert self.proc.stdin and self.proc.stdout
        payload = {k: _plain(v) for k, v in args.items()}
        self.proc.stdin.write(json.dumps({"op": op, "args": payload}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"dataplane driver on {self.host} died")
        reply = json.loads(line)
        if not reply["ok"]:
            raise DriverError(reply["error"])
        return reply.get("result")

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class DriverError(RuntimeError):
    pass


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def serve(node_ip: str) -> None:
    from shoal.net.dataplane import Dataplane
    from shoal.net.model import NetAttachment, Peer, Published, ServiceLB

    dp = Dataplane(node_ip)

    def tuples(ports: list[list[Any]]) -> list[tuple[int, str]]:
        return [(int(p), str(proto)) for p, proto in ports]

    ops = {
        "attach": lambda a: dp.attach(a["task_id"], a["task_netns"], [NetAttachment(**x) for x in a["attachments"]]),
        "detach": lambda a: dp.detach(a["task_id"], a["task_netns"]),
        "set_peers": lambda a: dp.set_peers(a["network_id"], [Peer(**x) for x in a["peers"]]),
        "program_task_lb": lambda a: dp.program_task_lb(
            a["task_netns"], [ServiceLB(**{**x, "ports": tuples(x["ports"])}) for x in a["services"]]
        ),
        "program_ingress": lambda a: dp.program_ingress(
            [Published(**x) for x in a["published"]],
            NetAttachment(**a["ingress"]) if a.get("ingress") else None,
        ),
        "cleanup": lambda a: dp.cleanup(),
        "backend": lambda a: dp.backend(),
        "ipvs_available": lambda a: dp.ipvs_available(),
        "gateway_address": lambda a: dp.gateway_address(a["task_id"]),
    }
    for line in sys.stdin:
        req = json.loads(line)
        try:
            result = ops[req["op"]](req.get("args") or {})
            reply = {"ok": True, "result": result}
        except Exception as exc:
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve(sys.argv[1])
