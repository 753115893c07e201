"""Dispatcher, task side: which tasks a node must run, and the status it reports back.

Assignments are long-polled: a node sends the signature of the set it has; the manager answers at
once when the set differs, or when the next task event changes it, or after `wait` seconds.
Status reports are applied in one batch, and only when they move a task's state forward.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from shoal import metrics
from shoal.aio import cpu_timed
from shoal.errors import Unavailable
from shoal.manager import reportbatch
from shoal.manager.netitems import NetTables
from shoal.manager.netkeys import ring_of
from shoal.manager.netstate import NetView
from shoal.manager.secretdelivery import payloads_for
from shoal.model import netkeys, taskdelta
from shoal.model.network import is_encrypted
from shoal.model.objects import DATA_PATH_PORT
from shoal.model.secret import STORE_KINDS
from shoal.model.task import can_move
from shoal.store.changes import Change
from shoal.store.protocol import Store

REPORT_FIELDS = ("State", "Message", "Err", "ExitCode", "PID", "Timestamp")


# What a node acts on. A status report only moves Status (and the Version and UpdatedAt that come
# with any write): it changes nothing the node must do, so it does not re-send the node its whole
# task list (SwarmKit's TasksEqualStable compares tasks the same way).
UNSTABLE_FIELDS = frozenset({"Status", "Version", "UpdatedAt"})


@dataclass
class Snapshot:
    """The store as of one applied index, shared read-only by every waiting node: the stored
    objects themselves (`Store.list_shared`), never modified here, only serialized."""

    index: int
    tasks: list[dict[str, Any]]
    services: list[dict[str, Any]]
    networks: list[dict[str, Any]]
    nodes: list[dict[str, Any]]
    # task ID -> (Version.Index, hash of its stable fields): carried from one snapshot to the next,
    # so that each task version is hashed once
    stable: dict[str, tuple[int, str]] = field(default_factory=dict)
    built_at: float = 0.0  # time.monotonic() when its build ended
    cost: float = 0.0  # CPU seconds its build took (with the network view every answer needs)
    # (network ID, the version a node holds) -> that network's change for it, encoded once
    deltas: dict[tuple[str, str | None], bytes] = field(default_factory=dict)
    # (node ID, key ring tags) -> the node's signature in this snapshot (node_signature)
    signatures: dict[tuple[str, tuple[int, ...]], str] = field(default_factory=dict)
    # the (network, version held) pairs answered with the network whole (what the byte counters tell apart)
    wholes: set[tuple[str, str | None]] = field(default_factory=set)
    # the previous snapshot's networks' items, which its view updates (netitems.py); dropped once used
    tables_before: NetTables | None = None

    @cached_property
    def by_node(self) -> dict[str, list[dict[str, Any]]]:
        """Node ID -> its tasks past pending: one pass for every waiting node, not one per node."""
        out: dict[str, list[dict[str, Any]]] = {}
        for t in self.tasks:
            if t.get("NodeID") and t["Status"]["State"] != "pending":
                out.setdefault(t["NodeID"], []).append(t)
        return out

    @cached_property
    def net(self) -> NetView:
        before, self.tables_before = self.tables_before, None
        return NetView(self.tasks, self.services, self.networks, self.nodes, before)

    @property
    def service_names(self) -> dict[str, str]:
        return self.net.service_names

    def stable_hash(self, task: dict[str, Any]) -> str:
        version = task["Version"]["Index"]
        known = self.stable.get(task["ID"])
        if known is not None and known[0] == version:
            return known[1]
        body = {k: v for k, v in task.items() if k not in UNSTABLE_FIELDS}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
        digest = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
        self.stable[task["ID"]] = (version, digest)
        return digest


_SNAPSHOTS: dict[int, Snapshot] = {}
COALESCE = 0.02  # a burst of events (100 tasks starting) answers once, not once per event
# A change in a node's network state alone (peers, backends elsewhere; not its own tasks) may wait
# this long per endpoint on its networks, up to NET_COALESCE_MAX, to be sent with the next ones:
# each answer carries the networks' whole state, so while thousands of tasks start on one overlay,
# answering every node at every event was O(nodes x endpoints) per event. Small clusters: ~0 s.
NET_COALESCE_PER_ENDPOINT = 1 / 20000
# ... and at least this long per node of the cluster: with increments an answer is small, but while
# thousands of tasks start every commit changes the overlay, and every node was answered up to four
# times a second (200 nodes: 800 answers a second; the simulated fleet's one process and the
# leader could not keep up, and beats waited behind them: docs/scale.md). This bounds the answers
# that network changes alone cause to about 100 a second whatever the cluster's size (3 nodes: a
# change waits 30 ms; 200 nodes: 2 s, about the time Docker's gossip takes to spread one).
NET_COALESCE_PER_NODE = 0.01
# ... up to this long (reached at 1,000 nodes): while a rolling update replaced 100 tasks every 3 s at
# 1,000 nodes, the network-only answers (every node every 5 s) were most of the leader's answers and
# held up the batches' own (docs/scale.md, session 25). A node's own tasks never wait for it; other
# nodes' new endpoints reach it within this long (Docker's gossip is faster, from every node at once).
NET_COALESCE_MAX = 10.0
# A node's own new tasks are not held up by a large change of an overlay it is on: the change (the
# 3,000 endpoints of the tasks that replace 100 lost nodes' is 350 KB, sent to each of 900 nodes)
# follows in the node's next, network-only answer, coalesced as any other, and the task starts
# meanwhile on the network state the node holds (its own attachment is in the task). SwarmKit sends
# tasks by assignment and the overlay's peers by gossip, on their own time. Small changes (a few
# hundred endpoints) still go with the tasks.
DEFER_NET_BYTES = 64 << 10
DEFERRED = "deferred"  # the network part of the signature of an answer that held changes back


# A snapshot is rebuilt at most once per REBUILD_FACTOR times its own build cost (within
# COALESCE..REBUILD_MAX): building one is O(tasks), and at tens of thousands of tasks, with status
# reports committing many times a second, rebuilding at each index kept the leader's loop busy.
# A node that saw an older snapshot looks again once it may be rebuilt (`fresh_in`).
# The task index and the network view stay paced together: a task index rebuilt between two views
# (24 ms against 0.8 s at 30,000 tasks) sent each node its tasks and its endpoints apart, and at
# 1,000 nodes the answers while 30,000 tasks started grew 25 % and the leader's CPU with them
# (all RUNNING after 61-64 s instead of 50), while a rolling update's batches went no faster
# (docs/scale.md, session 24).
REBUILD_FACTOR = 2.0
REBUILD_MAX = 5.0


def fresh_in(snap: Snapshot, store: Store, now: float) -> float | None:
    """Seconds until a newer snapshot may be built, if `snap` is behind the store; else None."""
    if snap.index == store.applied_index:
        return None
    return max(0.0, snap.built_at + min(REBUILD_MAX, max(COALESCE, REBUILD_FACTOR * snap.cost)) - now)


def _due(cached: Snapshot | None, store: Store, now: float) -> bool:
    return cached is None or (cached.index != store.applied_index and fresh_in(cached, store, now) == 0.0)


SNAPSHOT_KINDS = ("task", "service", "network", "node")
STABLE_SLACK = 1.5


def _start(store: Store, cached: Snapshot | None, now: float) -> Snapshot:
    """The store's lists as of now (cheap: references), not yet indexed. Read with their index at
    one instant: a snapshot whose index was read after a commit its tasks missed was never rebuilt
    once the cluster went quiet, and its nodes never got that commit's tasks (a rolling update at
    1,000 nodes stalled with 100 tasks assigned and never started: docs/scale.md)."""
    index, lists = store.read_shared(SNAPSHOT_KINDS)
    tasks = lists["task"]
    # one cache for every snapshot (entries are checked by version), pruned once it holds many tasks
    # gone: filtered at each snapshot, it was an O(tasks) pass on the leader's loop several times a second
    stable = cached.stable if cached is not None else {}
    if len(stable) > STABLE_SLACK * len(tasks) + 1000:
        live = {t["ID"] for t in tasks}
        stable = {tid: known for tid, known in stable.items() if tid in live}
    tables = cached.net.take_tables() if cached is not None and "net" in cached.__dict__ else None
    return Snapshot(
        index, tasks, lists["service"], lists["network"], lists["node"], stable, built_at=now, tables_before=tables
    )


def _index(snap: Snapshot) -> Snapshot:
    """The O(tasks) part: the per-node task lists and the network view every waiting node needs.
    Pure over objects that are never mutated in place, so it may run in a thread.

    Its cost is the thread's CPU and the next build counts from the end of this one: in a thread
    sharing the GIL with a busy leader's loop, a build's wall time was several times its CPU, and
    twice that wall time between builds held new tasks back for seconds (1,000 nodes: 2.5 s from
    a rolling update's batch created to its last task RUNNING, docs/scale.md). The builds still take
    at most a third of the leader's CPU."""
    _, snap.cost = cpu_timed(_build, snap)
    snap.built_at = time.monotonic()
    return snap


def _build(snap: Snapshot) -> None:
    _ = snap.by_node
    for net_id in snap.net.by_net:
        snap.net.network(net_id)


# Network versions kept per network, to answer a node with the changes since the one it holds
# (model/netdelta.py); a node further behind gets the network whole. Only versions some node was
# sent are kept: while thousands of tasks start, snapshots (each a version) come several times a
# second, and nodes whose network-only changes wait 2 s held versions 8 snapshots old, so that
# keeping every snapshot's made nearly every answer a whole set again (200 nodes / 5,000 tasks).
NET_HISTORY = 24
_NET_HISTORY: dict[int, dict[str, OrderedDict[str, dict[str, str]]]] = {}


# Task-list versions kept per node (model/taskdelta.py): the last few sent to it, {task ID: stable
# hash} each. A node answers with the version it was sent last, so a few cover a reply that
# crossed a newer one; a node whose version is gone (or asking a manager that never answered it)
# gets its whole list.
TASK_HISTORY = 4
_TASKS_SENT: dict[int, dict[str, OrderedDict[str, dict[str, str]]]] = {}


def _install(key: int, snap: Snapshot) -> None:
    """`snap` is the one answers come from; versions of networks gone, and the task lists sent to
    nodes gone, are forgotten."""
    _SNAPSHOTS[key] = snap
    history = _NET_HISTORY.setdefault(key, {})
    for net_id in [n for n in history if n not in snap.net.by_net]:
        del history[net_id]
    sent = _TASKS_SENT.setdefault(key, {})
    if len(sent) > len(snap.nodes):
        live = {n["ID"] for n in snap.nodes}
        for node_id in [n for n in sent if n not in live]:
            del sent[node_id]


def held(store: Store) -> dict[str, int]:
    """What the answers keep in memory for `store` (metrics: what grows under load): the current
    snapshot's tasks and encoded network changes, the network versions kept, the task lists sent."""
    key = id(store)
    snap = _SNAPSHOTS.get(key)
    nets = list(_NET_HISTORY.get(key, {}).values())
    sent = list(_TASKS_SENT.get(key, {}).values())
    deltas = list(snap.deltas.values()) if snap is not None else []
    return {
        "assignment_snapshot_tasks": len(snap.tasks) if snap is not None else 0,
        "assignment_encoded_changes": len(deltas),
        "assignment_encoded_change_bytes": sum(len(d) for d in deltas),
        "assignment_network_versions": sum(len(v) for v in nets),
        "assignment_network_version_items": sum(len(items) for v in nets for items in list(v.values())),
        "assignment_task_lists_sent": sum(len(v) for v in sent),
    }


def task_answer(
    store: Store, snap: Snapshot, node_id: str, tasks: list[dict[str, Any]], sig: str, since: str | None
) -> dict[str, Any]:
    """The node's tasks as changes since the task list it holds (`since`, its signature), or whole
    when this manager did not send it that list (model/taskdelta.py); the list sent is kept."""
    hashes = {t["ID"]: snap.stable_hash(t) for t in tasks}
    sent = _TASKS_SENT.setdefault(id(store), {}).setdefault(node_id, OrderedDict())
    held = taskdelta.tasks_version(since)
    parts = taskdelta.change(sent.get(held) if held else None, held, tasks, hashes)
    version = taskdelta.tasks_version(sig)
    if not version:  # the signature is this manager's own: an empty one is a bug here, not bad input
        raise ValueError(f"assignments signature without a task-list version: {sig!r}")
    sent[version] = hashes
    sent.move_to_end(version)
    while len(sent) > TASK_HISTORY:
        sent.popitem(last=False)
    return {"TaskParts": parts}


def _remember(key: int, net_id: str, version: str, items: dict[str, str]) -> None:
    """A node is being sent `version`: kept, its unchanged items shared with the newest kept."""
    versions = _NET_HISTORY.setdefault(key, {}).setdefault(net_id, OrderedDict())
    if version in versions:
        return
    if versions:
        newest = versions[next(reversed(versions))]
        for k, v in items.items():
            same = newest.get(k)
            if same == v:
                items[k] = same  # one string for every version that has it
    versions[version] = items
    while len(versions) > NET_HISTORY:
        versions.popitem(last=False)


def net_change(store: Store, snap: Snapshot, net_id: str, have: str | None) -> bytes | None:
    """One network's change for a node that holds version `have` (None: none), encoded; None
    when it holds the current one. Computed once per (network, version held) and snapshot; the
    whole network once per snapshot, whatever version unknown here each node holds (a new leader:
    every node's, and each encoding of 30,000 endpoints took tens of milliseconds of its loop)."""
    done = snap.net.network(net_id)
    version = done["digest"]
    _remember(id(store), net_id, version, done["items"])
    if have == version:
        return None
    old = _NET_HISTORY.get(id(store), {}).get(net_id, {}).get(have) if have else None
    if old is None:  # holds none, or one no longer kept: the whole network
        snap.wholes.add((net_id, have))
    key = (net_id, have if old is not None else None)
    cached = snap.deltas.get(key)
    if cached is None:
        new: dict[str, str] = done["items"]
        if old is None:
            sets, dels, since = new.items(), [], "null"
        else:
            sets = [(k, v) for k, v in new.items() if old.get(k) != v]
            dels, since = [k for k in old if k not in new], json.dumps(have)
        body = ",".join(f"{json.dumps(k)}:{v}" for k, v in sets)
        text = f'{{"Version":{json.dumps(version)},"From":{since},"Set":{{{body}}},"Del":{json.dumps(dels)}}}'
        cached = text.encode()  # ASCII (json escapes the rest): bytes once, sent as they are by every answer
        snap.deltas[key] = cached
    return cached


def snapshot(store: Store) -> Snapshot:
    """One snapshot per applied index, shared by every waiting node: copying the task table for
    each node on each event saturated the manager's loop during large changes."""
    cached = _SNAPSHOTS.get(id(store))
    now = time.monotonic()
    if _due(cached, store, now):
        cached = _index(_start(store, cached, now))
        _install(id(store), cached)
    assert cached is not None
    return cached


_BUILDING: dict[int, asyncio.Future[Snapshot]] = {}


async def asnapshot(store: Store) -> Snapshot:
    """`snapshot`, with the O(tasks) indexing in a thread, one build at a time for every waiting
    node: built on the event loop it held the leader's loop for up to a second at 30,000 tasks,
    and heartbeats waited unread in its sockets meanwhile (docs/scale.md, the all-Down at 200
    nodes). The thread shares the GIL, but the loop gets its turn every switch interval (5 ms)."""
    key = id(store)
    cached = _SNAPSHOTS.get(key)
    now = time.monotonic()
    if not _due(cached, store, now):
        assert cached is not None
        return cached
    building = _BUILDING.get(key)
    if building is None:
        fresh = _start(store, cached, now)
        building = asyncio.ensure_future(asyncio.to_thread(_index, fresh))
        _BUILDING[key] = building

        def done(fut: asyncio.Future[Snapshot]) -> None:
            _BUILDING.pop(key, None)
            if not fut.cancelled() and fut.exception() is None:
                _install(key, fut.result())

        building.add_done_callback(done)
    return await asyncio.shield(building)


def signature(snap: Snapshot, tasks: list[dict[str, Any]], extra: Any = None) -> str:
    """Changes when a task of the node is added, removed, or changed in a field it acts on, or when
    `extra` (the node's network state, or its digest) changes; not on status reports. Two parts,
    "TASKS.NET", so that a change of the network state alone can be told apart."""
    text = ",".join(f"{t['ID']}:{snap.stable_hash(t)}" for t in sorted(tasks, key=lambda t: t["ID"]))
    net = hashlib.sha256(json.dumps(extra, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.{net}"


def node_signature(snap: Snapshot, node_id: str, tasks: list[dict[str, Any]], key_tags: list[int]) -> str:
    """`signature` of the node's tasks and network state in `snap`, made once per snapshot, node
    and key ring: every waiting poll wakes at each commit and looks again, and a thousand nodes
    each sorting and hashing their task list at every commit was a tenth of a busy leader's CPU."""
    cache_key = (node_id, tuple(key_tags))
    known = snap.signatures.get(cache_key)
    if known is None:
        known = snap.signatures[cache_key] = signature(snap, tasks, [snap.net.digest(node_id), key_tags])
    return known


def net_only_change(sig: str, since: str | None) -> bool:
    """Whether the node's answer differs from what it holds (`since`) in its network state alone:
    the same task-list version, so the answer may wait to be sent with the next network changes."""
    return since is not None and sig != since and taskdelta.tasks_version(sig) == taskdelta.tasks_version(since)


def deferred_signature(sig: str) -> str:
    """`sig` ("TASKS.NET") with its network part DEFERRED: the signature of an answer that held
    network changes back. It matches no network state, so the node's next poll sees a network-only
    change (answered, coalesced, with the changes held back), and it tells `defers_network` that
    the last answer held something back."""
    return f"{taskdelta.tasks_version(sig)}.{DEFERRED}"


class JSONPieces(list[bytes]):
    """A value that is JSON text already, in pieces that `encode_pieces` splices in: the network
    changes, encoded once per snapshot and shared by every node's answer, stay single objects up to
    the socket."""

    @classmethod
    def of(cls, text: str) -> JSONPieces:
        """JSON text in one piece (a node's whole network state)."""
        return cls([text.encode()])


def encode_pieces(answer: dict[str, Any]) -> list[bytes]:
    """An assignments answer as JSON, in pieces whose concatenation is the answer: its `JSONPieces`
    values (`Net`, `NetParts`) are spliced in as they were encoded. A whole
    network at 30,000 endpoints is 3 MB: joined into each node's answer, a new leader answering
    1,000 nodes at once held a copy per node (the OOM killer took it at 7.5 GB, docs/scale.md)."""
    spliced = {k: v for k, v in answer.items() if isinstance(v, JSONPieces)}
    rest = json.dumps({k: v for k, v in answer.items() if k not in spliced}, separators=(",", ":"), default=str)
    if not spliced:
        return [rest.encode()]
    pieces = [rest[:-1].encode()]
    for i, (k, v) in enumerate(spliced.items()):
        pieces.append(f"{',' if i or rest != '{}' else ''}{json.dumps(k)}:".encode())
        pieces += v
    pieces.append(b"}")
    return pieces


def encode(answer: dict[str, Any]) -> bytes:
    """`encode_pieces`, joined."""
    return b"".join(encode_pieces(answer))


def net_answer(
    store: Store, snap: Snapshot, node_id: str, have: dict[str, str] | None, held_back: set[str] | None = None
) -> dict[str, JSONPieces]:
    """The node's network state: whole (`Net`), or as changes since the versions it holds
    (`NetParts`, model/netdelta.py) when it sent them (`have`, possibly empty). With `held_back`
    (a set to fill), a change of more than DEFER_NET_BYTES to a network the node holds is left out
    (the node keeps the version it holds) and its network ID added to the set."""
    if have is None:
        return {"Net": JSONPieces.of(snap.net.for_node_json(node_id))}
    changes = {}
    for net_id in snap.net.networks_of(node_id):
        change = net_change(store, snap, net_id, have.get(net_id))
        if change is None:
            continue
        whole = (net_id, have.get(net_id)) in snap.wholes
        if held_back is not None and not whole and len(change) > DEFER_NET_BYTES:
            held_back.add(net_id)
            continue
        changes[net_id] = change
        metrics.ASSIGNMENT_NETWORK_BYTES.labels(form="whole" if whole else "change").inc(len(change))
    return {"NetParts": JSONPieces(snap.net.parts_pieces(node_id, changes))}


def defers_network(since: str | None, sig: str, task_increments: bool) -> bool:
    """Whether an answer may hold back large network changes: it carries the node's own task
    changes (a network-only answer exists to send them), the node holds a task list and networks
    (since), and its last answer held nothing back (`since` is not a `deferred_signature`: so that
    a node whose tasks keep changing is not left on an old network state)."""
    return (
        task_increments
        and since is not None
        and since != deferred_signature(since)
        and taskdelta.tasks_version(sig) != taskdelta.tasks_version(since)
    )


async def assignments(
    store: Store,
    node_id: str,
    since: str | None,
    wait: float,
    have: dict[str, str] | None = None,
    task_increments: bool = False,
    gone: Callable[[], bool] = lambda: False,
) -> dict[str, Any] | None:
    """The node's answer; None once `gone` says the node stopped waiting (its connection closed:
    it asks again from what it holds), so that no answer is built for nobody."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    net_changed_at: float | None = None
    sub = store.notice(loop)
    try:
        while True:
            if gone():
                return None
            snap = await asnapshot(store)
            tasks = snap.by_node.get(node_id, [])
            keys = network_keys(store, snap.networks)
            sig = node_signature(snap, node_id, tasks, netkeys.tags(keys))
            now = loop.time()
            remaining = deadline - now
            behind = fresh_in(snap, store, time.monotonic())
            pause = remaining if behind is None else min(remaining, behind + COALESCE)
            if sig != since or remaining <= 0:
                hold = 0.0
                if remaining > 0 and net_only_change(sig, since):
                    net_changed_at = net_changed_at or now
                    batch = min(
                        NET_COALESCE_MAX,
                        max(
                            snap.net.weight(node_id) * NET_COALESCE_PER_ENDPOINT,
                            len(snap.nodes) * NET_COALESCE_PER_NODE,
                        ),
                    )
                    hold = net_changed_at + batch - now
                if hold <= 0:
                    held_back: set[str] | None = set() if defers_network(since, sig, task_increments) else None
                    net = net_answer(store, snap, node_id, have, held_back)
                    if held_back:  # the next poll sees a network-only change: answered, coalesced, with them
                        sig = deferred_signature(sig)
                    return {
                        "Signature": sig,
                        "Epoch": store.epoch,
                        "Index": snap.index,  # a node never acts on an older replica's answer after it
                        **(
                            task_answer(store, snap, node_id, tasks, sig, since)
                            if task_increments
                            else {"Tasks": tasks}
                        ),
                        "Services": snap.service_names,
                        **net,
                        # the cluster's VXLAN port (`swarm init --data-path-port`): fixed at init, so
                        # not part of the signature; the node needs it before its first overlay
                        "DataPathPort": data_path_port(store),
                        # the secrets and configs its tasks use, and only those: not part of the
                        # signature (their data never changes; a new one comes with a task change)
                        # the ring of network encryption keys, while the cluster has an encrypted
                        # overlay (SwarmKit hands them over the session as well): in the signature
                        # by their Lamport times, so a rotation reaches every node at once
                        "NetworkKeys": keys,
                        "Payloads": payloads_for(tasks, [o for k in STORE_KINDS for o in store.list_shared(k)]),
                    }
                pause = min(pause, hold)
            # a waiting poll holds no snapshot: hundreds of polls each keeping the one they last saw
            # (with its network view) was most of the leader's memory while tasks started
            del snap, tasks, keys
            if await sub.wait(pause):
                await asyncio.sleep(COALESCE)
                sub.discard()  # a Notice holds no events: it cannot fall behind
    finally:
        sub.close()


def network_keys(store: Store, networks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The key ring, when some network is encrypted; else none (no node needs a key)."""
    if not any(is_encrypted(n) for n in networks):
        return []
    return ring_of(store)


def data_path_port(store: Store) -> int:
    for cluster in store.list_shared("cluster"):
        return int(cluster.get("DataPathPort") or DATA_PATH_PORT)
    return DATA_PATH_PORT


def status_changes(store: Store, node_id: str, reports: list[dict[str, Any]]) -> list[Change]:
    """Task updates for the reports that move a task of this node forward (others are stale).

    Several reports on one task (accepted, starting, running) fold into one change: a batch may
    change each object once. The stored task is read shared and the update is a new object that
    shares all but its `Status` with it (stored objects are never mutated in place, and the commit
    pickles its own copy): a deep copy of each reported task (its network attachments and spec)
    was most of the leader's event loop while 200 nodes reported 5,000 tasks starting, and held
    heartbeats unread for seconds (docs/scale.md, bench/leader_loop.py).
    """
    originals: dict[str, dict[str, Any]] = {}
    updated: dict[str, dict[str, Any]] = {}
    for report in reports:
        task_id = str(report.get("ID", ""))
        task = updated.get(task_id) or store.get_shared("task", task_id)
        if task is None or task.get("NodeID") != node_id:
            continue
        state = report.get("State")
        if not isinstance(state, str) or not can_move(task["Status"]["State"], state):
            continue
        originals.setdefault(task_id, task)
        status = dict(task["Status"])
        status.update({k: report[k] for k in ("State", "Message", "Timestamp") if k in report})
        if report.get("Err"):
            status["Err"] = report["Err"]
        container = dict(status.get("ContainerStatus") or {})
        if "PID" in report:
            container["PID"] = report["PID"]
            container["ContainerID"] = task_id
        if "ExitCode" in report:
            container["ExitCode"] = report["ExitCode"]
        status["ContainerStatus"] = container
        updated[task_id] = {**task, "Status": status, "UpdatedAt": report.get("Timestamp") or task["UpdatedAt"]}
    return [
        Change(
            op="update", kind="task", obj=task, obj_id=task_id, expected_version=originals[task_id]["Version"]["Index"]
        )
        for task_id, task in updated.items()
    ]


async def apply_reports(store: Store, node_id: str, reports: list[dict[str, Any]]) -> int:
    """The reports that move a task forward, committed with other nodes' (manager/reportbatch.py).
    Never dropped unsaid: the node takes an answer as delivered and never reports that state again
    (issue 12: a RUNNING report lost so left a running task ACCEPTED for good), so a report that
    keeps conflicting, or that names a task a lagging replica does not have yet, is a 503 and the
    node sends it again (elsewhere)."""
    if _lagging(store) and any(store.get("task", str(r.get("ID", ""))) is None for r in reports):
        raise Unavailable("task status not applied: this manager's replica lacks some of the tasks yet")
    return await reportbatch.batcher(store, lambda node, rs: status_changes(store, node, rs)).submit(node_id, reports)


def _lagging(store: Store) -> bool:
    lag = getattr(store, "replica_lag", None)  # a Raft replica; the in-memory store never lags
    if lag is None:
        return False
    behind = lag()
    return behind is None or behind > 0
