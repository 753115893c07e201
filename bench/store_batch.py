"""Objects per second through the replicated store, in batches of 1, 10 and 100 changes per commit.

Three members, one process each, on 127.0.0.1 with the production settings (password, journal
sync). Each figure is timed inside the member that writes (no pipe in the measurement), from the
leader and from a follower (forwarded). Prints figures only; nothing is asserted.
"""

from __future__ import annotations

import socket
import tempfile
import time
from pathlib import Path

from shoal.store.member import MemberProcess

PASSWORD = "bench-raft-secret"
# (changes per commit, objects written): bounded in count, a few seconds each
RUNS = [(1, 400), (10, 2_000), (100, 10_000)]
PAYLOAD = 300  # bytes of Spec per object, about a small task
COLUMNS = ("writer", "batch", "objects", "seconds", "objects/s", "commits/s", "ms/commit")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="shoal-bench-store-"))
    addrs = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    members = [MemberProcess(a, [p for p in addrs if p != a], root / f"m{i}", PASSWORD) for i, a in enumerate(addrs)]
    try:
        for m in members:
            m.start()
        deadline = time.monotonic() + 10
        while not any(m.call("status")["leading"] for m in members):
            if time.monotonic() > deadline:
                raise SystemExit("no leader")
            time.sleep(0.05)
        leader = next(m for m in members if m.call("status")["leading"])
        follower = next(m for m in members if m is not leader)
        print(f"store_batch: 3 members on 127.0.0.1, {PAYLOAD} B objects, encrypted, journal synced")
        print("{:<9} {:>5} {:>8} {:>8} {:>10} {:>10} {:>10}".format(*COLUMNS))
        for role, member in (("leader", leader), ("follower", follower)):
            for batch, count in RUNS:
                res = member.call("bulk", timeout=120, kind="task", count=count, batch=batch, prefix=f"{role}-{batch}-")
                secs = res["seconds"]
                commits = count / batch
                print(
                    f"{role:<9} {batch:>5} {count:>8} {secs:>8.2f} {count / secs:>10.0f} "
                    f"{commits / secs:>10.0f} {1000 * secs / commits:>10.2f}"
                )
    finally:
        for m in members:
            m.stop()


if __name__ == "__main__":
    main()
