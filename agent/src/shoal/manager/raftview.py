"""A read-only view of Raft for the control API: who leads, who is reachable from here."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RaftView:
    self_addr: str | None
    leader: str | None
    connected: dict[str, bool] = field(default_factory=dict)

    def reachable(self, addr: str | None) -> bool:
        if not addr:
            return False
        if addr == self.self_addr:
            return True
        return self.connected.get(addr, False)
