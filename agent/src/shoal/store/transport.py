"""pysyncobj's TCP transport with the hooks the store needs (passed in as `transportClass`).

- Peer ping (notes/raft.md, defect 1): pysyncobj drops a connection that has read nothing for
  `connectionTimeout`, and only notices when it next sends on it. Followers never talk to each other,
  so after a leader dies the first vote request between them is what trips the timeout and is lost,
  and elections take several rounds. A tiny message to every peer every `ping_period` keeps every
  connection read-fresh.
- Liveness bookkeeping for fast "no quorum" answers: when each peer last sent append_entries
  (a leader) or next_node_idx (a follower acknowledging us).
- Journal syncs before acknowledgements and votes (`durability.py`).
- Fault injection for tests: `hooks.blocked` cuts the link to some peers (no connection, no traffic);
  `hooks.deaf` makes a follower drop a leader's entries but not its heartbeats or snapshots: a
  follower that stays connected and cannot catch up, what the catch-up watchdog is for.

This subclasses a pysyncobj class and overrides its protected `_onTick`, `_onMessageReceived`,
`_connectIfNecessarySingle` and `send`, and reads `_nodes` and `_connections`: pysyncobj is pinned
(0.3.17) and `tests/integration/test_store_raft.py` checks each hook still fires.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from pysyncobj.node import Node
from pysyncobj.transport import TCPTransport

from shoal.store.durability import JournalFlusher

PING = {"type": "shoal_ping"}


class TransportHooks:
    """State shared by the store (any thread, reads only) and its transport (the tick thread)."""

    def __init__(self, ping_period: float, flusher: JournalFlusher | None) -> None:
        self.ping_period = ping_period
        self.flusher = flusher
        self.last_heard: dict[str, float] = {}  # peer -> when we last read anything from it
        self.last_append: dict[str, float] = {}  # peer -> when it last sent us append_entries
        self.last_ack: dict[str, float] = {}  # peer -> when it last answered our append_entries
        self.pings_sent = 0
        self.pings_received = 0
        self.blocked: set[str] = set()  # tests: cut links to these peers
        self.deaf: set[str] = set()  # tests: drop entries (not heartbeats or snapshots) from these peers
        self.transport: ShoalTransport | None = None


def node_addr(node: Node) -> str:
    return str(getattr(node, "address", node.id))


class ShoalTransport(TCPTransport):  # type: ignore[misc]  # pysyncobj has no type hints
    def __init__(self, syncObj: Any, selfNode: Node | None, otherNodes: Iterable[Node], *, hooks: TransportHooks):
        # set before the base class registers our _onTick
        self._hooks = hooks
        self._next_ping = 0.0
        hooks.transport = self
        super().__init__(syncObj, selfNode, otherNodes)

    def _onTick(self) -> None:
        for node in list(self._nodes):
            if node_addr(node) in self._hooks.blocked and node in self._connections:
                self._connections[node].disconnect()  # a cut link: no connection at all
        super()._onTick()
        period = self._hooks.ping_period
        now = time.monotonic()
        if period > 0 and now >= self._next_ping:
            self._next_ping = now + period
            for node in list(self._nodes):
                if self.send(node, PING):
                    self._hooks.pings_sent += 1

    def _connectIfNecessarySingle(self, node: Node) -> bool:
        if node_addr(node) in self._hooks.blocked:
            return False
        return bool(super()._connectIfNecessarySingle(node))

    def _onMessageReceived(self, node: Node, message: Any) -> None:
        hooks = self._hooks
        addr = node_addr(node)
        if addr in hooks.blocked:
            return
        hooks.last_heard[addr] = time.monotonic()
        if isinstance(message, dict):
            kind = message.get("type")
            if kind == PING["type"]:
                hooks.pings_received += 1
                return  # the read itself was the point
            if kind == "append_entries":
                if addr in hooks.deaf and (message.get("entries") or message.get("transmission")):
                    return
                hooks.last_append[addr] = time.monotonic()
                has_data = message.get("entries") or message.get("transmission") or message.get("serialized")
                if has_data and hooks.flusher is not None:
                    hooks.flusher.mark_dirty()
            elif kind == "next_node_idx":
                hooks.last_ack[addr] = time.monotonic()
        super()._onMessageReceived(node, message)

    def send(self, node: Node, message: Any) -> bool:
        hooks = self._hooks
        if node_addr(node) in hooks.blocked:
            return False
        flusher = hooks.flusher
        if flusher is not None and isinstance(message, dict):
            kind = message.get("type")
            if kind == "next_node_idx" and message.get("success"):
                flusher.before_ack(int(message["next_node_idx"]) - 1)
            elif kind == "append_entries" and message.get("entries"):
                flusher.before_replicate(int(message["entries"][-1][1]))
            elif kind == "append_entries" and message.get("transmission") == "start":
                flusher.before_replicate(int(message["prevLogIdx"]) + 1)  # one large entry, sent in parts
            elif kind in ("request_vote", "response_vote"):
                flusher.before_vote()
        return bool(super().send(node, message))
