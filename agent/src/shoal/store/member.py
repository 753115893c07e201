"""A standalone store replica driven over stdin/stdout, one JSON object per line.

For tests that kill -9 a member and for benchmarks (one process per member, as in production):

    SHOAL_RAFT_PASSWORD=... python -m shoal.store.member --addr 127.0.0.1:7001 \
        --peer 127.0.0.1:7002 --peer 127.0.0.1:7003 --data-dir /tmp/m1

It prints {"ready": true} once listening, then answers each request line
({"id": 1, "op": "commit", "changes": [[op, kind, obj, obj_id, expected_version], ...]}) with
{"id": 1, "result": ...} or {"id": 1, "error": "NoQuorum", "status": 503, "message": "..."}.
Ops: status, commit, bulk, list, ids, add_member, remove_member, transfer, export, exit.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from shoal.store.changes import Change
from shoal.store.config import RaftConfig
from shoal.store.errors import StoreError
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("pysyncobj").setLevel(logging.CRITICAL)
    password = os.environ.get("SHOAL_RAFT_PASSWORD", "")
    store = ReplicatedStore(RaftConfig(args.addr, args.peer, args.data_dir, password))
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
            except StoreError as exc:
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


if __name__ == "__main__":
    sys.exit(main())
