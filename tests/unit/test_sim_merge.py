"""The answers of several sim processes merged into one (tests/integration/sim_helpers.SimFleet)."""

from __future__ import annotations

from shoal.sim.merge import merge_events


def test_stats_add_counters_and_keep_the_worst_latency() -> None:
    a = {
        "event": "stats",
        "nodes": 100,
        "lost": 0,
        "running": 2500,
        "beats_unreachable": 3,
        "loop_late_worst_s": 1.5,
        "beat_slowest_s": 0.4,
        "cpu_s": 20.0,
        "rss_bytes": 300,
        "rss_start_bytes": 100,
        "rss_per_node_bytes": 2,
    }
    b = {
        "event": "stats",
        "nodes": 99,
        "lost": 1,
        "running": 2400,
        "beats_unreachable": 0,
        "loop_late_worst_s": 4.0,
        "beat_slowest_s": 0.2,
        "cpu_s": 30.0,
        "rss_bytes": 500,
        "rss_start_bytes": 100,
        "rss_per_node_bytes": 4,
    }
    merged = merge_events([a, b])
    assert merged["event"] == "stats"
    assert (merged["nodes"], merged["lost"], merged["running"]) == (199, 1, 4900)
    assert merged["beats_unreachable"] == 3 and merged["cpu_s"] == 50.0
    assert (merged["loop_late_worst_s"], merged["beat_slowest_s"]) == (4.0, 0.4)
    assert merged["rss_per_node_bytes"] == (800 - 200) // 200  # over all 200 nodes, lost ones included


def test_node_lists_and_maps_are_joined() -> None:
    lost = merge_events(
        [{"event": "lost", "nodes": ["n1", "n2"], "seconds": 0.5}, {"event": "lost", "nodes": ["n3"], "seconds": 2.0}]
    )
    assert lost == {"event": "lost", "nodes": ["n1", "n2", "n3"], "seconds": 2.0}
    tasks = merge_events(
        [
            {"event": "tasks", "running": {"n1": ["t1"]}, "starts": {"n1": 1}},
            {"event": "tasks", "running": {"n2": ["t2", "t3"]}, "starts": {"n2": 2}},
        ]
    )
    assert tasks["running"] == {"n1": ["t1"], "n2": ["t2", "t3"]} and tasks["starts"] == {"n1": 1, "n2": 2}


def test_joined_sums_nodes_and_keeps_every_error() -> None:
    joined = merge_events(
        [
            {"event": "joined", "nodes": 100, "errors": [], "seconds": 9.0},
            {"event": "joined", "nodes": 98, "errors": ["x", "y"], "seconds": 12.0},
        ]
    )
    assert joined == {"event": "joined", "nodes": 198, "errors": ["x", "y"], "seconds": 12.0}


def test_one_answer_is_itself() -> None:
    only = {"event": "stats", "nodes": 5, "rss_bytes": 50, "rss_start_bytes": 0, "rss_per_node_bytes": 10}
    assert merge_events([only]) == only
