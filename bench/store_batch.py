"""Objects per second through the replicated store, in batches of 1, 10 and 100 changes per commit.

Three members, one process each, on 127.0.0.1 with the production settings (password, journal
sync, journal and snapshots encrypted at rest). Each figure is timed inside the member that writes
(no pipe in the measurement), from the leader and from a follower (forwarded). Prints figures only;
nothing is asserted.

`--plain` prints the cost of encryption at rest (issue 13; goal: at most 10 % slower): a second
cluster with pysyncobj's plain files runs the same rows, interleaved with the sealed one, and the
raw costs of sealing a journal entry and a snapshot are timed apart from Raft.
"""

from __future__ import annotations

import argparse
import pickle
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


class Cluster:
    def __init__(self, root: Path, plain: bool) -> None:
        addrs = [f"127.0.0.1:{free_port()}" for _ in range(3)]
        extra = ["--unsealed-for-benchmarks"] if plain else []
        self.members = [
            MemberProcess(a, [p for p in addrs if p != a], root / f"m{i}", PASSWORD, extra) for i, a in enumerate(addrs)
        ]

    def start(self) -> None:
        for m in self.members:
            m.start()
        deadline = time.monotonic() + 10
        while not any(m.call("status")["leading"] for m in self.members):
            if time.monotonic() > deadline:
                raise SystemExit("no leader")
            time.sleep(0.05)

    def writer(self, role: str) -> MemberProcess:
        leader = next(m for m in self.members if m.call("status")["leading"])
        return leader if role == "leader" else next(m for m in self.members if m is not leader)

    def run(self, role: str, batch: int, count: int, tag: str) -> float:
        member = self.writer(role)
        res = member.call("bulk", timeout=120, kind="task", count=count, batch=batch, prefix=f"{tag}-{role}-{batch}-")
        return float(res["seconds"])

    def stop(self) -> None:
        for m in self.members:
            m.stop()


def row(role: str, batch: int, count: int, secs: float) -> str:
    commits = count / batch
    return (
        f"{role:<9} {batch:>5} {count:>8} {secs:>8.2f} {count / secs:>10.0f} "
        f"{commits / secs:>10.0f} {1000 * secs / commits:>10.2f}"
    )


def sealed_only() -> None:
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="shoal-bench-store-")), plain=False)
    try:
        cluster.start()
        print(f"store_batch: 3 members on 127.0.0.1, {PAYLOAD} B objects, encrypted, journal synced, sealed at rest")
        print("{:<9} {:>5} {:>8} {:>8} {:>10} {:>10} {:>10}".format(*COLUMNS))
        for role in ("leader", "follower"):
            for batch, count in RUNS:
                print(row(role, batch, count, cluster.run(role, batch, count, "s")))
    finally:
        cluster.stop()


def compare(rounds: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="shoal-bench-store-"))
    sealed, plain = Cluster(root / "sealed", plain=False), Cluster(root / "plain", plain=True)
    try:
        sealed.start()
        plain.start()
        print(f"store_batch --plain: two 3-member clusters on 127.0.0.1, {PAYLOAD} B objects; rows interleaved,")
        print(f"best of {rounds} per row; 'cost' = how much slower sealed at rest is than plain (goal <= 10 %)")
        print(f"{'writer':<9} {'batch':>5} {'objects':>8} {'plain obj/s':>12} {'sealed obj/s':>13} {'cost':>7}")
        for role in ("leader", "follower"):
            for batch, count in RUNS:
                best = {"plain": 1e9, "sealed": 1e9}
                pair = [("plain", plain), ("sealed", sealed)]
                for r in range(rounds):
                    for name, cluster in pair if r % 2 == 0 else pair[::-1]:  # neither always goes first
                        best[name] = min(best[name], cluster.run(role, batch, count, f"{name}{r}"))
                cost = best["sealed"] / best["plain"] - 1
                print(
                    f"{role:<9} {batch:>5} {count:>8} {count / best['plain']:>12.0f} "
                    f"{count / best['sealed']:>13.0f} {100 * cost:>+6.1f}%"
                )
    finally:
        sealed.stop()
        plain.stop()
    raw_costs()


def raw_costs() -> None:
    """Sealing alone, without Raft: a journal entry (one commit) and a snapshot."""
    from pysyncobj.journal import FileJournal

    from shoal.store.atrest.journal import SealedFileJournal
    from shoal.store.atrest.records import DataKey, RecordCipher
    from shoal.store.atrest.snapshot import SealedSerializer

    cipher = RecordCipher(DataKey.generate())
    root = Path(tempfile.mkdtemp(prefix="shoal-bench-seal-"))
    print("raw cost, no Raft: journal add (mmap write) per entry, and one snapshot write + read")
    for batch in (1, 100):
        command = pickle.dumps([("create", "task", {"ID": f"t{i}", "Spec": "x" * PAYLOAD}) for i in range(batch)])
        n = 2000 if batch == 1 else 300
        timings = {}
        for name, journal in (
            ("plain", FileJournal(str(root / f"plain-{batch}"))),
            ("sealed", SealedFileJournal(str(root / f"sealed-{batch}"), cipher)),
        ):
            started = time.perf_counter()
            for i in range(n):
                journal.add(command, i + 1, 1)
            timings[name] = (time.perf_counter() - started) / n * 1e6
            journal._destroy()
        print(
            f"  entry of {len(command):>6} B: plain {timings['plain']:7.1f} us, sealed {timings['sealed']:7.1f} us "
            f"(+{timings['sealed'] - timings['plain']:.1f} us)"
        )
    state = {"objects": {"task": {f"t{i}": {"ID": f"t{i}", "Spec": "x" * PAYLOAD} for i in range(10_000)}}}
    data = ([{}, state], (b"c", 2, 1), (b"c", 1, 1), set())
    serializer = SealedSerializer(str(root / "raft.dump"), 1 << 20, cipher, use_fork=False)
    started = time.perf_counter()
    serializer.serialize(data, 1)
    written = time.perf_counter()
    serializer.checkSerializing()
    serializer.deserialize()
    done = time.perf_counter()
    size = (root / "raft.dump").stat().st_size
    print(
        f"  snapshot of 10,000 objects ({size >> 10} KiB sealed): write {1000 * (written - started):.0f} ms, "
        f"read {1000 * (done - written):.0f} ms (pysyncobj's plain dump: gzip level 9, written in a fork)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plain", action="store_true", help="also run plain (unsealed) files and print the cost")
    parser.add_argument("--rounds", type=int, default=2, help="with --plain: runs per row, best kept (2)")
    args = parser.parse_args()
    if args.plain:
        compare(max(1, min(args.rounds, 5)))
    else:
        sealed_only()


if __name__ == "__main__":
    main()
