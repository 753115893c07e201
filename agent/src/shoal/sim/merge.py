"""One answer from several `python -m shoal.sim` processes' answers to the same command (the
testbed's drivers split a fleet across processes: tests/integration/sim_helpers.SimFleet)."""

from __future__ import annotations

from typing import Any

from shoal.worker.taskloop import POLL_COUNTERS

# the counters that add up across processes; other numbers are worst cases (max)
SUMMED = frozenset(
    [
        "nodes",
        "lost",
        "running",
        "starts",
        "rss_bytes",
        "rss_start_bytes",
        "connected",
        "beats_unreachable",
        "beats_timed_out",
        "connections_made",
        *POLL_COUNTERS,
        "cpu_s",
        "loop_stalls",
        "loop_late_total_s",
    ]
)


def merge_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts added, lists and node maps joined, other numbers the worst (largest) of them."""
    merged: dict[str, Any] = dict(events[0])
    for other in events[1:]:
        for key, value in other.items():
            mine = merged.get(key)
            if key == "event" or mine is None:
                merged.setdefault(key, value)
            elif isinstance(value, dict) and isinstance(mine, dict):
                merged[key] = {**mine, **value}
            elif isinstance(value, list) and isinstance(mine, list):
                merged[key] = mine + value
            elif isinstance(value, (int, float)) and isinstance(mine, (int, float)):
                merged[key] = mine + value if key in SUMMED else max(mine, value)
    if "rss_bytes" in merged and "rss_per_node_bytes" in merged:  # over the whole fleet, not one process
        grown = merged["rss_bytes"] - merged.get("rss_start_bytes", 0)
        merged["rss_per_node_bytes"] = grown // max(1, merged.get("nodes", 0) + merged.get("lost", 0))
    return merged
