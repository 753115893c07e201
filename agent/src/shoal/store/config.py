"""Settings of one Raft replica; defaults are the tuned values of notes/raft.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pysyncobj import SyncObjConf

if TYPE_CHECKING:
    from shoal.store.atrest.keyfile import DataKeySource

JOURNAL_FILE = "raft.journal"  # pysyncobj adds raft.journal.meta (term, vote, commit index)
DUMP_FILE = "raft.dump"
# One append_entries message may carry this much. Far above any batch we accept, because pysyncobj
# splits a larger single entry into parts and its reassembly breaks for some sizes.
APPEND_ENTRIES_BYTES = 16 << 20
MAX_BATCH_BYTES = 8 << 20


def check_addr(addr: str, what: str) -> None:
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{what} must be host:port, not {addr!r}")


@dataclass
class RaftConfig:
    self_addr: str  # host:port other managers reach this one at (the advertise address)
    # The other members (self_addr is ignored if listed); empty to start a new cluster. On a restart
    # pass the membership last seen (`members()`): the journal replays later changes on top of it.
    peers: list[str]
    data_dir: Path  # journal and snapshot; empty when joining an existing cluster
    password: str  # encrypts Raft traffic; without it pysyncobj unpickles what anyone sends
    bind_addr: str | None = None  # default self_addr: Raft listens on the manager's address only
    raft_min_timeout: float = 0.25
    raft_max_timeout: float = 0.6
    leader_fallback_timeout: float = 1.0  # a cut-off leader steps down after this long
    append_entries_period: float = 0.05
    connection_timeout: float = 2.0
    connection_retry_time: float = 0.1
    auto_tick_period: float = 0.02
    log_compaction_min_entries: int = 5000
    log_compaction_min_time: float = 60.0
    ping_period: float = 0.5  # keep idle peer connections fresh (notes defect 1); 0 turns it off
    catchup_stall_timeout: float = 5.0  # leader forces a compaction for a stalled follower (defect 2)
    quorum_wait: float = 1.0  # a write waits this long for a leader with a majority, then NoQuorum
    # A write's default deadline; stretched with the election timeout: at 1,000 nodes on two CPUs
    # commits took over 2 s while the leader was busy, and every such write (a `service update`,
    # the dispatcher's Down marks) failed with its outcome unknown (docs/scale.md, session 20)
    commit_timeout: float = 2.0
    flush_journal: bool = True  # sync the journal before acknowledging (defect 4)
    watch_max_pending: int = 100_000  # events a subscriber may lag before it is dropped
    # Where this manager's data key (encryption at rest) lives; default `<state>/keys/raft.dek`
    # beside `<state>/raft` (atrest/keyfile.py). Autolock will pass a source that unwraps it.
    key_source: DataKeySource | None = None
    # Only for `bench/store_batch.py --plain` (the cost of encryption at rest): pysyncobj's own
    # plain files. No agent setting reaches it; a sealed store refuses what it writes.
    unsealed_for_benchmarks: bool = False

    def validate(self) -> None:
        if not isinstance(self.password, str) or not self.password:
            raise ValueError("a Raft password is required (pysyncobj without one runs pickles from anyone)")
        check_addr(self.self_addr, "self_addr")
        if self.bind_addr is not None:
            check_addr(self.bind_addr, "bind_addr")
        for peer in self.peers:
            check_addr(peer, "peer")
        if not self.raft_min_timeout > 3 * self.append_entries_period:
            raise ValueError("raft_min_timeout must exceed three append_entries periods")

    @classmethod
    def scaled(cls, election_timeout: float, **kwargs: object) -> RaftConfig:
        """Timeouts for a slower machine: the defaults stretched so that the minimum election
        timeout is `election_timeout` seconds (0.25 = the defaults). Periods stay as they are:
        a slow guest needs patience, not more traffic."""
        cfg = cls(**kwargs)  # type: ignore[arg-type]
        factor = max(1.0, election_timeout / cfg.raft_min_timeout)
        cfg.raft_min_timeout *= factor
        cfg.raft_max_timeout *= factor
        cfg.leader_fallback_timeout *= factor
        cfg.connection_timeout *= factor
        cfg.quorum_wait *= factor
        cfg.commit_timeout *= factor
        cfg.catchup_stall_timeout *= factor
        return cfg

    @classmethod
    def longest_election(cls, election_timeout: float) -> float:
        """The longest a lone replica can wait before it stands for election, at these timeouts."""
        return cls.raft_max_timeout * max(1.0, election_timeout / cls.raft_min_timeout)

    def other_peers(self) -> list[str]:
        return sorted({p for p in self.peers if p != self.self_addr})

    def sync_conf(self) -> SyncObjConf:
        data = Path(self.data_dir)
        return SyncObjConf(
            password=self.password,
            autoTick=True,
            autoTickPeriod=self.auto_tick_period,
            dynamicMembershipChange=True,
            appendEntriesUseBatch=False,  # latency per write; throughput comes from batched changes
            appendEntriesPeriod=self.append_entries_period,
            appendEntriesBatchSizeBytes=APPEND_ENTRIES_BYTES,
            raftMinTimeout=self.raft_min_timeout,
            raftMaxTimeout=self.raft_max_timeout,
            leaderFallbackTimeout=self.leader_fallback_timeout,
            connectionTimeout=self.connection_timeout,
            connectionRetryTime=self.connection_retry_time,
            logCompactionMinEntries=self.log_compaction_min_entries,
            logCompactionMinTime=self.log_compaction_min_time,
            commandsWaitLeader=True,
            journalFile=str(data / JOURNAL_FILE),
            fullDumpFile=str(data / DUMP_FILE),
            bindAddress=self.bind_addr or self.self_addr,
            bindRetryTime=0.2,
            maxBindRetries=10,  # fail loudly (StoreError) instead of retrying a taken port forever
        )
