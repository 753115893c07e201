"""Simulated nodes speak the real wire: against a stand-in manager on loopback (TLS, the cluster
CA), each node joins with the token, beats with its own certificate, polls its assignments, runs
what it is given with the sim driver and reports the task RUNNING; a lost node goes silent."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import Counter
from typing import Any

from aiohttp import web

from shoal import tls
from shoal.agent.credentials import text
from shoal.agent.join import parse_join_request
from shoal.manager import ca, tokens
from shoal.model.ids import parse_rfc3339
from shoal.sim.fleet import Fleet
from shoal.sim.node import NodeShape


class StandInManager:
    """Just enough of a manager's cluster API: CA, join, heartbeat, assignments, task status."""

    def __init__(self, root: ca.RootCA) -> None:
        self.root = root
        self.token = tokens.make_join_token(tokens.ca_digest(root.cert_pem))
        self.addr = ""
        self.joined: list[str] = []
        self.beats: Counter[str] = Counter()
        self.states: dict[str, str] = {}

    def caller(self, request: web.Request) -> str:
        ssl_obj = request.transport.get_extra_info("ssl_object") if request.transport else None
        peer = tls.peer_identity(ssl_obj) if isinstance(ssl_obj, ssl.SSLObject) else None
        assert peer is not None, "a call without the node's certificate"
        return peer.node_id

    async def get_ca(self, request: web.Request) -> web.Response:
        return web.json_response({"CACertificate": text(self.root.cert_pem)})

    async def join(self, request: web.Request) -> web.Response:
        body = await request.json()
        assert body["Token"] == self.token and body["Hostname"].startswith("sim-")
        node_id = f"node{len(self.joined)}"
        self.joined.append(node_id)
        cert = self.root.issue(body["CSR"], node_id, "worker", "cluster1", ips=[body["AdvertiseIP"]])
        grant = {"NodeID": node_id, "ClusterID": "cluster1", "Role": "worker", "Certificate": text(cert)}
        return web.json_response({**grant, "Managers": [self.addr]})

    async def heartbeat(self, request: web.Request) -> web.Response:
        self.beats[self.caller(request)] += 1
        return web.json_response({"Leader": self.addr, "Managers": [self.addr], "Period": 0.1, "Role": "worker"})

    async def assignments(self, request: web.Request) -> web.Response:
        node_id = self.caller(request)
        since = (await request.json()).get("Since")
        if since == "v1":
            await asyncio.sleep(0.2)  # nothing new: a short long poll
        task = {
            "ID": f"task-{node_id}",
            "ServiceID": "svc1",
            "Slot": 1,
            "NodeID": node_id,
            "DesiredState": "running",
            "Status": {"State": "assigned"},
            "Spec": {"ContainerSpec": {"Image": "shoal/host"}},
        }
        return web.json_response({"Signature": "v1", "Epoch": 1, "Tasks": [task], "Services": {"svc1": "web"}})

    async def task_status(self, request: web.Request) -> web.Response:
        self.caller(request)
        for report in (await request.json())["Updates"]:
            self.states[report["ID"]] = report["State"]
        return web.json_response({"Applied": 1})


async def serve(manager: StandInManager) -> web.AppRunner:
    key, csr = ca.new_node_key_and_csr()
    cert = manager.root.issue(csr, "mgr1", "manager", "cluster1", ips=["127.0.0.1"])
    app = web.Application()
    app.router.add_get("/shoal/ca", manager.get_ca)
    for path, handler in (
        ("/shoal/join", manager.join),
        ("/shoal/heartbeat", manager.heartbeat),
        ("/shoal/assignments", manager.assignments),
        ("/shoal/task-status", manager.task_status),
    ):
        app.router.add_post(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.server_context(cert, key, manager.root.cert_pem))
    await site.start()
    manager.addr = f"127.0.0.1:{runner.addresses[0][1]}"
    return runner


async def until(check: Any, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not reached in time")


def test_simulated_nodes_join_beat_run_and_report_over_tls() -> None:
    async def main() -> None:
        manager = StandInManager(ca.RootCA.create())
        runner = await serve(manager)
        fleet = Fleet(3, NodeShape("127.0.0.1", period=0.1, exit_poll=0.1), port_base=40000)
        t0_ns = time.time_ns()
        try:
            req = parse_join_request({"JoinToken": manager.token, "RemoteAddrs": [manager.addr]})
            joined, errors = await fleet.join_all(req)
            assert (joined, errors) == (3, [])
            assert sorted(n.node_id for n in fleet.nodes) == ["node0", "node1", "node2"]
            await until(lambda: len(manager.states) == 3 and set(manager.states.values()) == {"running"})
            await until(lambda: min(manager.beats[n] for n in manager.joined) >= 2)
            stats = fleet.stats()
            assert stats["running"] == 3 and stats["starts"] == 3 and stats["connected"] == 3
            assert fleet.tasks()["running"] == {f"node{i}": [f"task-node{i}"] for i in range(3)}
            started = fleet.started(t0_ns)["tasks"]
            assert sorted(started) == [f"task-node{i}" for i in range(3)]
            assert all(t0_ns <= parse_rfc3339(at) <= time.time_ns() for at in started.values())
            assert fleet.started(time.time_ns())["tasks"] == {}  # none started after now
            await until(lambda: len(fleet.started(t0_ns)["delivered"]) == 3)  # their RUNNING reports taken
            assert all(t0_ns / 1e9 <= at <= time.time() for at in fleet.started(t0_ns)["delivered"].values())

            lost = await fleet.lose(1)
            before = manager.beats[lost[0]]
            await asyncio.sleep(0.5)
            assert manager.beats[lost[0]] == before  # a lost node is silent
            assert fleet.stats()["nodes"] == 2
        finally:
            await fleet.stop()
            await runner.cleanup()

    asyncio.run(main())


def test_flapping_nodes_go_silent_come_back_and_keep_their_tasks_without_restarting_them() -> None:
    async def main() -> None:
        manager = StandInManager(ca.RootCA.create())
        runner = await serve(manager)
        fleet = Fleet(4, NodeShape("127.0.0.1", period=0.1, exit_poll=0.1), port_base=40100)
        try:
            req = parse_join_request({"JoinToken": manager.token, "RemoteAddrs": [manager.addr]})
            assert await fleet.join_all(req) == (4, [])
            await until(lambda: len(manager.states) == 4 and set(manager.states.values()) == {"running"})
            flapping = asyncio.create_task(fleet.flap(2, 2, 0.6, 0.4))
            await asyncio.sleep(0.2)
            gone = [n.node_id for n in fleet.nodes if not n.running]
            assert len(gone) == 2
            beats = {n: manager.beats[n] for n in gone}
            await asyncio.sleep(0.3)
            assert {n: manager.beats[n] for n in gone} == beats  # disconnected: silent
            flapped = await flapping
            assert len(flapped) == 4 and set(gone) <= set(flapped)
            await until(lambda: all(manager.beats[n] > beats.get(n, 0) for n in flapped))  # back, beating
            stats = fleet.stats()
            assert (stats["nodes"], stats["running"], stats["starts"]) == (4, 4, 4)  # no task started twice
        finally:
            await fleet.stop()
            await runner.cleanup()

    asyncio.run(main())


def test_the_intruders_probes_reach_a_tls_manager_and_record_its_answers() -> None:
    from shoal.sim.intruder import probe

    async def main() -> dict[str, Any]:
        manager = StandInManager(ca.RootCA.create())
        runner = await serve(manager)
        fleet = Fleet(1, NodeShape("127.0.0.1", period=0.1), port_base=40200)
        try:
            req = parse_join_request({"JoinToken": manager.token, "RemoteAddrs": [manager.addr]})
            fleet.join_request = req
            node = await fleet.join_intruder()
            assert node.hostname == "sim-00001" and not node.running
            return await probe(node)
        finally:
            await runner.cleanup()

    answers = asyncio.run(main())
    (one,) = answers.values()
    assert one["garbage"]["closed"] and not one["garbage"]["answer"].startswith(b"HTTP".hex())
    # the stand-in reads no heartbeat body and breaks on a bad status body: only the wire is tested here
    assert one["bad_json"]["status"] == 200
    assert one["bad_updates"] == {"status": 500, "message": None}
    assert one["beat"] == {"status": 200, "message": None}
