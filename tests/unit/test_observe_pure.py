"""Metrics families from cluster objects and Raft status, the visualizer's board, the event
stream handler over a real aiohttp server (bad input, since/until, a slow client cut off)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from shoal.agent.events import EventHub
from shoal.api import events as events_api
from shoal.api.metrics import route_of
from shoal.manager.metrics import object_families, raft_families
from shoal.manager.visualizer import board
from shoal.model import events


def node(node_id: str, host: str, role: str = "worker", state: str = "ready", avail: str = "active") -> dict:
    return {
        "ID": node_id,
        "Spec": {"Role": role, "Availability": avail, "Labels": {"zone": "a"}},
        "Description": {"Hostname": host},
        "Status": {"State": state, "Addr": "10.213.0.10"},
        "ManagerStatus": {"Leader": True} if role == "manager" else None,
    }


def task(task_id: str, node_id: str, state: str = "running", desired: str = "running", slot: int = 1) -> dict:
    return {
        "ID": task_id,
        "ServiceID": "s1",
        "NodeID": node_id,
        "Slot": slot,
        "DesiredState": desired,
        "Status": {"State": state, "Timestamp": "2026-01-01T00:00:00Z"},
        "Spec": {"ContainerSpec": {"Image": "shoal/hello", "Env": ["PASSWORD=hunter2"]}},
    }


SERVICE = {"ID": "s1", "Spec": {"Name": "nodejs", "Mode": {"Replicated": {"Replicas": 2}}}}


class Fixed(Collector):
    def __init__(self, fams: list) -> None:
        self.fams = fams

    def collect(self):  # type: ignore[no-untyped-def]
        yield from self.fams


def parse(fams: list) -> dict:
    registry = CollectorRegistry()
    registry.register(Fixed(fams))
    text = generate_latest(registry).decode()
    return {
        f.name: {tuple(sorted(s.labels.items())): s.value for s in f.samples}
        for f in text_string_to_metric_families(text)
    }


def test_object_counts_by_state() -> None:
    nodes = [node("a", "m", "manager"), node("b", "w1"), node("c", "w2", state="down", avail="drain")]
    tasks = [task("t1", "b"), task("t2", "b"), task("t3", "c", state="failed", desired="shutdown")]
    got = parse(object_families(nodes, [SERVICE], tasks))
    assert got["shoal_nodes"][(("availability", "active"), ("role", "manager"), ("state", "ready"))] == 1
    assert got["shoal_nodes"][(("availability", "drain"), ("role", "worker"), ("state", "down"))] == 1
    assert got["shoal_tasks"] == {(("state", "failed"),): 1, (("state", "running"),): 2}
    assert got["shoal_services"][(("mode", "replicated"),)] == 1


def test_raft_families() -> None:
    status = {"raft_term": 7, "commit_idx": 120, "last_applied": 119, "has_quorum": True, "partner_nodes_count": 2}
    got = parse(raft_families(status, leading=True, snapshot_bytes=4096))
    assert got["shoal_raft_term"][()] == 7 and got["shoal_raft_commit_index"][()] == 120
    assert got["shoal_raft_applied_index"][()] == 119 and got["shoal_raft_leader"][()] == 1
    assert got["shoal_raft_members"][()] == 3 and got["shoal_raft_snapshot_size_bytes"][()] == 4096


def test_board_shows_running_tasks_only_and_no_spec_internals() -> None:
    nodes = [node("b", "w1"), node("a", "m", "manager")]
    tasks = [
        task("t1", "b"),
        task("t2", "b", state="starting", slot=2),
        task("t3", "a", state="complete", desired="shutdown"),
    ]
    data = board(nodes, [SERVICE], tasks, [{"ID": "n1", "Spec": {"Name": "ingress"}}])
    assert [c["Hostname"] for c in data["Nodes"]] == ["m", "w1"]
    assert data["Nodes"][0]["Leader"] is True and data["Nodes"][1]["Leader"] is False
    assert [(c["Service"], c["Slot"], c["State"]) for c in data["Tasks"]] == [
        ("nodejs", 1, "running"),
        ("nodejs", 2, "starting"),
    ]
    assert data["Networks"] == [{"ID": "n1", "Name": "ingress", "Driver": "overlay", "Subnet": ""}]
    assert "hunter2" not in json.dumps(data)


def test_route_label_is_the_template() -> None:
    async def run() -> str:
        seen: list[str] = []

        async def handler(request: web.Request) -> web.Response:
            seen.append(route_of(request))
            return web.Response()

        app = web.Application()
        app.router.add_get(r"/v{api_version:[0-9]+\.[0-9]+}/services/{id}", handler)
        async with _serve(app) as url, aiohttp.ClientSession() as s:
            await (await s.get(f"{url}/v1.41/services/abcdef")).read()
        return seen[0]

    assert asyncio.run(run()) == "/services/{id}"


class _serve:
    def __init__(self, app: web.Application) -> None:
        self.runner = web.AppRunner(app)

    async def __aenter__(self) -> str:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


def _app(hub: EventHub) -> web.Application:
    from shoal.api.errors import error_middleware

    async def handler(request: web.Request) -> web.StreamResponse:
        return await events_api.stream(request, hub)

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/events", handler)
    return app


def test_stream_bad_input_replay_and_until() -> None:
    async def run() -> None:
        hub = EventHub()
        for i in range(3):
            hub.publish(
                events.message("service", "create", f"s{i}", {"name": f"web{i}"}, "swarm", time_ns=(100 + i) * 10**9)
            )
        async with _serve(_app(hub)) as url, aiohttp.ClientSession() as s:
            for query, status in (
                ({"filters": "{"}, 400),
                ({"filters": '{"x":["y"]}'}, 400),
                ({"since": "5", "until": "1"}, 400),
            ):
                resp = await s.get(f"{url}/events", params=query)
                assert resp.status == status and "message" in await resp.json()
            resp = await s.get(
                f"{url}/events", params={"since": "101", "until": "200", "filters": '{"service":["web2"]}'}
            )
            lines = [json.loads(x) for x in (await resp.text()).splitlines()]
            assert [m["Actor"]["ID"] for m in lines] == ["s2"]  # since, filter, and the stream ended at until
        assert hub.subscribers == []

    asyncio.run(run())


def test_a_slow_reader_is_cut_off_with_an_error() -> None:
    async def run() -> None:
        hub = EventHub(queue=8)
        async with _serve(_app(hub)) as url:
            host, port = url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
            big = {"name": "x" * 4000}
            for i in range(4000):  # far more than socket buffers and the queue hold, while nobody reads
                hub.publish(events.message("service", "update", f"s{i}", big, "swarm"))
                if i % 50 == 0:
                    await asyncio.sleep(0)
            await asyncio.sleep(0.2)
            assert hub.subscribers == []  # cut off: the node holds nothing for it any more
            tail = b""
            try:
                while chunk := await asyncio.wait_for(reader.read(1 << 20), 10):
                    tail = (tail + chunk)[-20000:]
            except TimeoutError:
                pass
            writer.close()
            assert b"fell too far behind" in tail

    asyncio.run(run())


def test_snapshot_file_name_is_the_stores() -> None:
    from shoal.manager import metrics as manager_metrics
    from shoal.store.config import DUMP_FILE

    assert manager_metrics.DUMP_FILE == DUMP_FILE


def test_listener_addresses_in_the_config(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from shoal import config

    path = tmp_path / "shoald.yml"
    path.write_text("metrics_addr: 127.0.0.1:9323\nui_addr: 127.0.0.1:8088\n")
    cfg = config.load(path)
    assert (cfg.metrics_addr, cfg.ui_addr) == ("127.0.0.1:9323", "127.0.0.1:8088")
    assert config.load(None).metrics_addr is None and config.load(None).ui_addr is None  # off by default
    for bad in ("9323", "127.0.0.1:", "127.0.0.1:99999"):
        path.write_text(f"metrics_addr: '{bad}'\n")
        with pytest.raises(config.ConfigError, match="metrics_addr"):
            config.load(path)


def test_ui_token_file_is_root_only_and_stable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from shoal.api.ui import load_token

    path = tmp_path / "ui.token"
    token = load_token(path)
    assert len(token) >= 32 and path.stat().st_mode & 0o777 == 0o600
    assert load_token(path) == token
