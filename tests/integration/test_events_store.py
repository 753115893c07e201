"""Cluster events and manager metrics over a real replicated store (pysyncobj, one member on
127.0.0.1, in this process): writes become Docker event messages through the store's watch, and
the scrape-time collector reads real Raft status. No testbed needed."""

from __future__ import annotations

import asyncio
import copy
import socket
import time
import types
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shoal.agent.events import EventHub, follow_cluster
from shoal.manager.metrics import ManagerCollector
from shoal.model.ids import new_id, now_rfc3339
from shoal.store import Change, RaftConfig, ReplicatedStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service(name: str, replicas: int) -> dict:
    now = now_rfc3339()
    return {
        "ID": new_id(),
        "Version": {"Index": 0},
        "CreatedAt": now,
        "UpdatedAt": now,
        "Spec": {
            "Name": name,
            "Mode": {"Replicated": {"Replicas": replicas}},
            "TaskTemplate": {"ContainerSpec": {"Image": "shoal/host"}},
        },
    }


def test_store_writes_become_docker_events_and_metrics(tmp_path: Path) -> None:
    addr = f"127.0.0.1:{free_port()}"
    store = ReplicatedStore(RaftConfig(addr, [addr], tmp_path / "raft", "test-raft-secret"))
    try:
        deadline = time.monotonic() + 20
        while not store.leading and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.leading
        manager = types.SimpleNamespace(store=store, dispatcher=types.SimpleNamespace(live_sessions=lambda: 2))

        async def run() -> list[dict]:
            hub = EventHub()
            _, sub = hub.subscribe({"type": ["service"]}, None)
            feed = asyncio.get_running_loop().create_task(follow_cluster(hub, lambda: manager, poll=0.1))
            await asyncio.sleep(0.3)  # the feed subscribed
            web = service("web", 2)
            await store.acommit([Change(op="create", kind="service", obj=web)])
            current = store.get("service", web["ID"])
            assert current is not None
            scaled = copy.deepcopy(current)
            scaled["Spec"]["Mode"]["Replicated"]["Replicas"] = 5
            version = current["Version"]["Index"]
            await store.acommit(
                [Change(op="update", kind="service", obj=scaled, obj_id=web["ID"], expected_version=version)]
            )
            await store.acommit([Change(op="delete", kind="service", obj_id=web["ID"])])
            got = []
            while len(got) < 3:
                msg = await sub.next(10)
                assert msg is not None, got
                got.append(msg)
            feed.cancel()
            return got

        got = asyncio.run(run())
        assert [(m["Type"], m["Action"]) for m in got] == [
            ("service", "create"),
            ("service", "update"),
            ("service", "remove"),
        ]
        assert got[1]["Actor"]["Attributes"] == {"name": "web", "replicas.old": "2", "replicas.new": "5"}
        assert all(m["scope"] == "swarm" for m in got)

        registry = CollectorRegistry()
        registry.register(ManagerCollector(lambda: manager))
        fams = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
        value = {name: fams[name].samples[0].value for name in fams if fams[name].samples}
        assert value["shoal_raft_leader"] == 1 and value["shoal_raft_term"] >= 1
        assert value["shoal_raft_members"] == 1 and value["shoal_raft_has_quorum"] == 1
        assert (
            value["shoal_raft_applied_index"] >= 3
            and value["shoal_raft_commit_index"] >= value["shoal_raft_applied_index"] - 1
        )
        assert value["shoal_dispatcher_sessions"] == 2
        held = {s.labels["what"]: s.value for s in fams["shoal_manager_held"].samples}
        # three writes since the store started, none compacted yet: each is one entry of the log
        assert held["raft_log_entries"] >= 3 and held["raft_log_bytes"] > 0
        assert held["watch_subscriptions"] == 0  # the feed was cancelled and closed its watch
        assert held["assignment_snapshot_tasks"] == 0  # no node asked for assignments
    finally:
        store.close()
