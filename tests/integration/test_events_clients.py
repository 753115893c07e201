"""The real clients read shoal's event stream: the docker.io 20.10 CLI (`docker events`), the docker
SDK and `shoal events`, against the agent's own local API app on a unix socket in a temporary
directory, fed by a node event hub (no testbed: nothing but the socket)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from aiohttp import web

from shoal.agent.events import EventHub
from shoal.model import events

DOCKER = Path(__file__).resolve().parents[2] / ".state" / "docker-cli" / "usr" / "bin" / "docker"
T0 = 1_700_000_000


@pytest.fixture
def socket_api(tmp_path: Path) -> Iterator[tuple[str, EventHub, asyncio.AbstractEventLoop]]:
    from shoal.api import local  # the API is the daemon's; here it serves a stand-in node

    hub = EventHub()
    hub.publish(events.message("service", "create", "s1", {"name": "web"}, "swarm", T0 * 10**9 + 1))
    hub.publish(
        events.message(
            "service",
            "update",
            "s1",
            {"name": "web", "replicas.old": "2", "replicas.new": "4"},
            "swarm",
            T0 * 10**9 + 2,
        )
    )
    hub.publish(
        events.message(
            "node", "update", "n1", {"name": "swarm01", "availability.new": "drain"}, "swarm", T0 * 10**9 + 3
        )
    )
    hub.publish(
        events.message(
            "container", "start", "t1", {"name": "web.1.t1", "image": "shoal/hello"}, "local", T0 * 10**9 + 4
        )
    )
    agent = types.SimpleNamespace(events=hub, state="active", identity=None, manager=None, locked=False)
    path = str(tmp_path / "shoal.sock")
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner = web.AppRunner(local.build_app(agent))  # type: ignore[arg-type]

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.UnixSite(runner, path).start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield f"unix://{path}", hub, loop
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_docker_cli_reads_the_stream(socket_api: tuple[str, EventHub, asyncio.AbstractEventLoop]) -> None:
    assert DOCKER.exists(), "make setup unpacks the docker CLI into .state/docker-cli"
    host, _, _ = socket_api
    window = ["--since", str(T0), "--until", str(T0 + 1)]
    res = subprocess.run([str(DOCKER), "-H", host, "events", *window], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "2023-11-14T22:13:20.000000001Z service create s1 (name=web)",
        "2023-11-14T22:13:20.000000002Z service update s1 (name=web, replicas.new=4, replicas.old=2)",
        "2023-11-14T22:13:20.000000003Z node update n1 (availability.new=drain, name=swarm01)",
        "2023-11-14T22:13:20.000000004Z container start t1 (image=shoal/hello, name=web.1.t1)",
    ]
    res = subprocess.run(
        [str(DOCKER), "-H", host, "events", *window, "--filter", "type=node", "--format", "{{.Actor.Attributes.name}}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0 and res.stdout.split() == ["swarm01"], res.stderr
    res = subprocess.run(
        [str(DOCKER), "-H", host, "events", "--since", "10", "--until", "5"], capture_output=True, text=True, timeout=60
    )
    assert res.returncode != 0 and "since time must be before until time" in res.stderr


def test_docker_sdk_and_shoal_cli_follow_live(socket_api: tuple[str, EventHub, asyncio.AbstractEventLoop]) -> None:
    host, hub, loop = socket_api
    client = docker.DockerClient(base_url=host, timeout=30)
    stream = client.events(decode=True, filters={"type": ["service"]})
    shoal = subprocess.Popen(
        [sys.executable, "-m", "shoal.cli.main", "-H", host, "events", "--format", "json", "-f", "scope=swarm"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(hub.subscribers) < 2 and time.monotonic() < deadline:  # both connected (a loaded machine is slow)
            time.sleep(0.05)
        assert len(hub.subscribers) == 2
        live = events.message("service", "remove", "s9", {"name": "live"}, "swarm")
        loop.call_soon_threadsafe(hub.publish, live)
        got = next(iter(stream))
        assert got["Action"] == "remove" and got["Actor"]["Attributes"]["name"] == "live"
        assert shoal.stdout is not None
        assert json.loads(shoal.stdout.readline())["Actor"]["ID"] == "s9"
    finally:
        stream.close()
        shoal.terminate()
        shoal.wait(10)
    deadline = time.monotonic() + 5
    while hub.subscribers and time.monotonic() < deadline:  # both clients gone: nothing kept for them
        time.sleep(0.1)
    assert hub.subscribers == []
