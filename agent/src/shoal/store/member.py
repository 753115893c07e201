"""A standalone store replica driven over stdin/stdout, one JSON object per line.

For tests that kill -9 a member and for benchmarks (one process per member, as in production):

    SHOAL_RAFT_PASSWORD=... python -m shoal.store.member --addr 127.0.0.1:7001 \
        --peer 127.0.0.1:7002 --peer 127.0.0.1:7003 --data-dir /tmp/m1

It prints {"ready": true} once listening, then answers each request line
({"id": 1, "op": "commit", "changes": [[op, kind, obj, obj_id, expected_version], ...]}) with
{"id": 1, "result": ...} or {"id": 1, "error": "NoQuorum", "status": 503, "message": "..."}.
Ops: status, commit, bulk, list, ids, add_member, remove_member, transfer, export, exit.
`MemberProcess` starts one and talks to it (tests, bench/store_batch.py).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from shoal.errors import ShoalError
from shoal.store.changes import Change
from shoal.store.config import RaftConfig
from shoal.store.replicated import ReplicatedStore


def status(store: ReplicatedStore) -> dict[str, Any]:
    flusher = store.hooks.flusher
    return {
        "addr": store.addr,
        "leader": store.leader(),
        "is_leader": store.is_leader(),
        "leading": store.leading,
        "members": store.members(),
        "epoch": store.epoch,
        "has_quorum": store.has_quorum(),
        "applied_index": store.applied_index,
        "peer_status": store.peer_status(),
        "durable_index": flusher.durable_index if flusher else None,
    }


def bulk(store: ReplicatedStore, req: dict[str, Any]) -> dict[str, Any]:
    """Create `count` objects in batches of `batch`, timed here (no pipe in the measurement)."""
    kind, count, size = req.get("kind", "task"), int(req["count"]), int(req["batch"])
    payload = "x" * int(req.get("payload", 300))
    prefix = req.get("prefix", "b")
    start = time.perf_counter()
    done = 0
    while done < count:
        n = min(size, count - done)
        objs = [{"ID": f"{prefix}{done + i}", "Spec": {"Payload": payload}} for i in range(n)]
        store.commit([Change("create", kind, o) for o in objs], timeout=10.0)
        done += n
    return {"seconds": time.perf_counter() - start, "count": count}


def handle(store: ReplicatedStore, req: dict[str, Any]) -> Any:
    op = req["op"]
    if op == "status":
        return status(store)
    if op == "commit":
        changes = [Change(*c) for c in req["changes"]]
        return store.commit(changes, float(req.get("timeout", 2.0)), request_id=req.get("request_id"))
    if op == "bulk":
        return bulk(store, req)
    if op == "list":
        return store.list(req["kind"])
    if op == "ids":
        return sorted(o["ID"] for o in store.list(req["kind"]))
    if op == "add_member":
        return store.add_member(req["addr"], float(req.get("timeout", 5.0)))
    if op == "remove_member":
        return store.remove_member(req["addr"], float(req.get("timeout", 5.0)))
    if op == "transfer":
        return store.transfer_leadership(req.get("target"), float(req.get("timeout", 2.0)))
    if op == "export":
        return store.export_state()
    raise ValueError(f"unknown op {op!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", required=True)
    parser.add_argument("--peer", action="append", default=[])
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--ping-period", type=float, default=None, help="peer ping period; 0 turns pings off")
    parser.add_argument("--unsealed-for-benchmarks", action="store_true", help="plain journal (bench only)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("pysyncobj").setLevel(logging.CRITICAL)
    password = os.environ.get("SHOAL_RAFT_PASSWORD", "")
    cfg = RaftConfig(args.addr, args.peer, args.data_dir, password)
    if args.ping_period is not None:
        cfg.ping_period = args.ping_period
    cfg.unsealed_for_benchmarks = args.unsealed_for_benchmarks
    store = ReplicatedStore(cfg)
    out = sys.stdout
    out.write(json.dumps({"ready": True, "addr": args.addr}) + "\n")
    out.flush()
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            req = json.loads(line)
            if req.get("op") == "exit":
                break
            answer: dict[str, Any] = {"id": req.get("id")}
            try:
                answer["result"] = handle(store, req)
            except ShoalError as exc:
                answer.update(
                    error=type(exc).__name__,
                    status=exc.status,
                    message=exc.message,
                    outcome_unknown=exc.outcome_unknown,
                )
            out.write(json.dumps(answer) + "\n")
            out.flush()
    finally:
        store.close()
    return 0


class MemberError(Exception):
    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__(f"{answer['error']}: {answer['message']}")
        self.error: str = answer["error"]
        self.answer = answer


class MemberProcess:
    """Runs `python -m shoal.store.member` and calls it; `kill9()` sends SIGKILL to its pid."""

    def __init__(self, addr: str, peers: list[str], data_dir: Path, password: str, extra: list[str] | None = None):
        self.addr, self.peers, self.data_dir, self.password = addr, peers, data_dir, password
        self.extra = extra or []
        self.proc: subprocess.Popen[str] | None = None
        self._ids = itertools.count(1)
        self._lines: queue.Queue[str | None] = queue.Queue()

    def start(self, timeout: float = 15.0) -> MemberProcess:
        src = str(Path(__file__).resolve().parents[2])  # agent/src, for a checkout without install
        path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "SHOAL_RAFT_PASSWORD": self.password, "PYTHONPATH": path}
        argv = [sys.executable, "-m", "shoal.store.member", "--addr", self.addr, "--data-dir", str(self.data_dir)]
        for peer in self.peers:
            argv += ["--peer", peer]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir.parent / f"{self.data_dir.name}.stderr").open("a") as stderr:
            self.proc = subprocess.Popen(
                [*argv, *self.extra], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env
            )
        self._lines = queue.Queue()
        threading.Thread(target=self._read, args=(self.proc, self._lines), daemon=True).start()
        ready = self._lines.get(timeout=timeout)
        if ready is None or not json.loads(ready).get("ready"):
            raise RuntimeError(f"store member {self.addr} did not start (see {self.data_dir}.stderr)")
        return self

    @staticmethod
    def _read(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def call(self, op: str, timeout: float = 30.0, **args: Any) -> Any:
        assert self.proc is not None and self.proc.stdin is not None
        req_id = next(self._ids)
        self.proc.stdin.write(json.dumps({"id": req_id, "op": op, **args}) + "\n")
        self.proc.stdin.flush()
        line = self._lines.get(timeout=timeout)
        if line is None:
            raise RuntimeError(f"store member {self.addr} exited")
        answer = json.loads(line)
        if "error" in answer:
            raise MemberError(answer)
        return answer["result"]

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def stop(self) -> None:
        """Ask it to exit (closes the store), then make sure."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"op": "exit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.kill9()


if __name__ == "__main__":
    sys.exit(main())
