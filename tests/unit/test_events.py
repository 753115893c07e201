"""Events: Docker's message shape, filters and times (model/events.py), cluster events from store
watch events (manager/events.py), container events (worker/events.py), the node's hub."""

from __future__ import annotations

import asyncio
import copy

import pytest

from shoal.agent.events import EventHub
from shoal.cli.events import default_line, render
from shoal.errors import InvalidArgument
from shoal.manager.events import ClusterEvents
from shoal.model import events
from shoal.worker.events import container_event


def node(state: str = "ready", availability: str = "active", role: str = "worker", leader: bool | None = None) -> dict:
    obj = {
        "ID": "n1",
        "Spec": {"Role": role, "Availability": availability},
        "Description": {"Hostname": "swarm01"},
        "Status": {"State": state},
    }
    if leader is not None:
        obj["ManagerStatus"] = {"Leader": leader, "Reachability": "reachable"}
    return obj


def service(replicas: int = 2, image: str = "shoal/hello", update: str | None = None) -> dict:
    obj = {
        "ID": "s1",
        "Spec": {
            "Name": "nodejs",
            "Mode": {"Replicated": {"Replicas": replicas}},
            "TaskTemplate": {"ContainerSpec": {"Image": image}},
        },
    }
    if update:
        obj["UpdateStatus"] = {"State": update}
    return obj


# ---- message shape
def test_message_has_docker_fields() -> None:
    msg = events.message("service", "create", "s1", {"name": "web"}, "swarm", time_ns=1_700_000_000_123_456_789)
    assert msg == {
        "Type": "service",
        "Action": "create",
        "Actor": {"ID": "s1", "Attributes": {"name": "web"}},
        "scope": "swarm",
        "time": 1_700_000_000,
        "timeNano": 1_700_000_000_123_456_789,
    }


def test_default_line_is_dockers() -> None:
    msg = events.message(
        "node", "update", "n1", {"name": "a", "availability.new": "drain"}, "swarm", 1_700_000_000_000_000_005
    )
    assert default_line(msg) == "2023-11-14T22:13:20.000000005Z node update n1 (availability.new=drain, name=a)"
    assert render("{{.Type}} {{.Actor.Attributes.availability.new}}", msg) == "node drain"


# ---- times and filters
def test_parse_time_forms() -> None:
    assert events.parse_time("1700000000") == 1_700_000_000_000_000_000
    assert events.parse_time("1700000000.5") == 1_700_000_000_500_000_000
    assert events.parse_time("2023-11-14T22:13:20Z") == 1_700_000_000_000_000_000
    assert events.parse_time("10m", now=1000.0) == 400_000_000_000
    assert events.parse_time("1h30s", now=10_000.0) == (10_000 - 3630) * 1_000_000_000
    assert events.parse_time(None) is None
    with pytest.raises(InvalidArgument):
        events.parse_time("yesterday")
    with pytest.raises(InvalidArgument):
        events.parse_time("2023-11-14T22:13:20")  # no zone


def test_since_after_until_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="since"):
        events.validate_window(2, 1)
    events.validate_window(1, 1)


@pytest.mark.parametrize("bad", [{"colour": ["red"]}, {"type": ["spaceship"]}, {"scope": ["galaxy"]}])
def test_bad_filters_are_refused(bad: dict) -> None:
    with pytest.raises(InvalidArgument):
        events.validate_filters(bad)


def test_filters_match_as_docker() -> None:
    svc = events.message("service", "update", "s1abc", {"name": "nodejs"}, "swarm")
    nd = events.message("node", "update", "n1", {"name": "swarm01"}, "swarm")
    ctr = events.message(
        "container",
        "start",
        "t1",
        {"name": "nodejs.1.t1", "image": "shoal/hello", "com.docker.swarm.service.name": "nodejs"},
        "local",
    )
    assert events.matches(svc, {"type": ["service"]}) and not events.matches(nd, {"type": ["service"]})
    assert events.matches(svc, {"service": ["nodejs"]}) and events.matches(
        svc, {"service": ["s1"]}
    )  # name or ID prefix
    assert not events.matches(nd, {"service": ["nodejs"]})
    assert events.matches(nd, {"type": ["service", "node"]})  # values of one key are ORed
    assert not events.matches(svc, {"type": ["service"], "event": ["create"]})  # keys are ANDed
    assert events.matches(ctr, {"scope": ["local"]}) and not events.matches(svc, {"scope": ["local"]})
    assert events.matches(ctr, {"label": ["com.docker.swarm.service.name=nodejs"]})
    assert not events.matches(ctr, {"label": ["com.docker.swarm.service.name=other"]})
    assert events.matches(ctr, {"image": ["shoal/hello"]})


# ---- cluster events
def test_node_update_carries_old_and_new() -> None:
    before = node(leader=True)
    feed = ClusterEvents([("node", before)])
    after = copy.deepcopy(before)
    after["Spec"]["Availability"] = "drain"
    after["Status"]["State"] = "down"
    after["ManagerStatus"]["Leader"] = False
    msg = feed.translate("node", "update", after)
    assert msg is not None
    assert msg["Type"] == "node" and msg["Action"] == "update" and msg["scope"] == "swarm"
    assert msg["Actor"]["Attributes"] == {
        "name": "swarm01",
        "availability.old": "active",
        "availability.new": "drain",
        "state.old": "ready",
        "state.new": "down",
        "leader.old": "true",
        "leader.new": "false",
    }


def test_service_events() -> None:
    feed = ClusterEvents()
    assert feed.translate("service", "create", service())["Actor"]["Attributes"] == {"name": "nodejs"}
    scaled = feed.translate("service", "update", service(replicas=4))
    assert scaled["Actor"]["Attributes"] == {"name": "nodejs", "replicas.old": "2", "replicas.new": "4"}
    updating = feed.translate("service", "update", service(replicas=4, image="shoal/hello:2", update="updating"))
    assert updating["Actor"]["Attributes"] == {
        "name": "nodejs",
        "image.old": "shoal/hello",
        "image.new": "shoal/hello:2",
        "updatestate.new": "updating",
    }
    done = feed.translate("service", "update", service(replicas=4, image="shoal/hello:2", update="completed"))
    assert done["Actor"]["Attributes"]["updatestate.old"] == "updating"
    assert done["Actor"]["Attributes"]["updatestate.new"] == "completed"
    removed = feed.translate("service", "delete", service())
    assert removed["Action"] == "remove"


def test_internal_kinds_make_no_event() -> None:
    feed = ClusterEvents()
    assert feed.translate("task", "create", {"ID": "t"}) is None
    assert feed.translate("meta", "update", {"ID": "ca"}) is None


def test_container_events_follow_task_states() -> None:
    task = {"ID": "t1", "NodeID": "n1", "ServiceID": "s1", "Spec": {"ContainerSpec": {"Image": "shoal/hello"}}}
    start = container_event(task, "running", "nodejs.1.t1", "nodejs")
    assert start["Type"] == "container" and start["Action"] == "start" and start["scope"] == "local"
    assert start["Actor"]["Attributes"]["com.docker.swarm.service.name"] == "nodejs"
    assert start["from"] == "shoal/hello"
    died = container_event(task, "failed", "nodejs.1.t1", "nodejs", exit_code=3)
    assert died["Action"] == "die" and died["Actor"]["Attributes"]["exitCode"] == "3"
    assert container_event(task, "assigned", "x", "y") is None


# ---- the hub
def test_hub_replays_since_and_cuts_off_a_slow_subscriber() -> None:
    async def run() -> None:
        hub = EventHub(history=10, queue=3)
        for i in range(5):
            hub.publish(events.message("node", "update", f"n{i}", {}, "swarm", time_ns=100 + i))
        past, sub = hub.subscribe({}, since_ns=103)
        assert [m["Actor"]["ID"] for m in past] == ["n3", "n4"]
        for i in range(3):
            hub.publish(events.message("node", "update", f"live{i}", {}, "swarm"))
        assert (await sub.next(0.1))["Actor"]["ID"] == "live0"
        for i in range(4):  # more than the queue holds while nobody reads
            hub.publish(events.message("node", "update", f"flood{i}", {}, "swarm"))
        assert sub.overflowed and await sub.next(0.1) is None
        assert sub not in hub.subscribers  # cut off: nothing kept for it
        _, quiet = hub.subscribe({"type": ["service"]}, None)
        hub.publish(events.message("node", "update", "n", {}, "swarm"))
        assert await quiet.next(0.05) is None and not quiet.pending
        quiet.close()
        assert hub.subscribers == []

    asyncio.run(run())


def test_executor_state_changes_become_container_events() -> None:
    from shoal.agent.events import task_listener
    from shoal.worker.executor import Executor

    async def run() -> list[dict]:
        hub = EventHub()
        _, sub = hub.subscribe({}, None)
        executor = Executor(driver=None)
        executor.listeners.append(task_listener(hub, executor))
        executor.service_names["s1"] = "web"
        task = {"ID": "t1", "ServiceID": "s1", "NodeID": "n1", "Slot": 3, "Spec": {"ContainerSpec": {"Image": "img"}}}
        executor.assigned = {"t1": task}
        executor.report("t1", "starting", "starting")
        executor.report("t1", "running", "started", PID=1)
        executor.report("t1", "failed", "exited", ExitCode=2)
        return [m for m in [await sub.next(0.1) for _ in range(3)] if m]

    got = asyncio.run(run())
    assert [m["Action"] for m in got] == ["create", "start", "die"]
    assert got[0]["Actor"]["Attributes"]["name"] == "web.3.t1"
    assert got[2]["Actor"]["Attributes"]["exitCode"] == "2"


def test_a_running_task_deleted_from_the_store_still_dies_as_an_event() -> None:
    """`service rm` deletes the tasks: the node stops them without a report to the managers, but
    its container events must still say the container died (docker events shows it)."""
    from shoal.agent.events import task_listener
    from shoal.runtime.base import ExitStatus
    from shoal.worker.executor import Executor

    class StoppingDriver:
        def stop(self, task_id: str, grace: float | None = None) -> ExitStatus:
            return ExitStatus(exit_code=143, signal=15)

        def remove(self, task_id: str) -> None:
            return None

    async def run() -> list[dict]:
        hub = EventHub()
        _, sub = hub.subscribe({}, None)
        executor = Executor(driver=StoppingDriver())
        executor.listeners.append(task_listener(hub, executor))
        executor.service_names["s1"] = "web"
        task = {"ID": "t1", "ServiceID": "s1", "NodeID": "n1", "Slot": 1, "DesiredState": "running"}
        executor.assigned = {"t1": task}
        executor.state["t1"] = "running"
        executor.apply([])  # the store no longer has it
        for _ in range(50):
            if "t1" not in executor.state:
                break
            await asyncio.sleep(0.01)
        return [m for m in [await sub.next(0.1)] if m]

    got = asyncio.run(run())
    assert [m["Action"] for m in got] == ["die"]
    assert got[0]["Actor"]["Attributes"]["name"] == "web.1.t1"
    assert got[0]["Actor"]["Attributes"]["exitCode"] == "143"


def test_a_task_stopped_after_its_service_was_removed_dies_under_the_service_name() -> None:
    """`service rm`: the assignment that tells the node to stop the task no longer names the
    service, yet the die event must carry `com.docker.swarm.service.name` as the start did."""
    from shoal.agent.events import task_listener
    from shoal.worker.executor import Executor

    async def run() -> list[dict]:
        hub = EventHub()
        _, sub = hub.subscribe({}, None)
        executor = Executor(driver=None)
        executor.listeners.append(task_listener(hub, executor))
        task = {"ID": "t1", "ServiceID": "s1", "NodeID": "n1", "Slot": 1, "DesiredState": "running"}
        executor.busy.add("t1")  # a start in flight: apply() leaves the task to it
        executor.apply([task], {"s1": "web", "s2": "db"})
        executor.apply([{**task, "DesiredState": "remove"}], {"s2": "db"})  # the service is gone
        assert executor.service_names == {"s1": "web", "s2": "db"}
        executor.report("t1", "shutdown", "shutdown", ExitCode=0)
        executor.busy.discard("t1")
        executor.apply([], {})  # the task is deleted: the node forgets it, and then the name
        for _ in range(50):
            if "t1" not in executor.state:
                break
            await asyncio.sleep(0.01)
        executor.apply([], {})
        assert executor.service_names == {}
        return [m for m in [await sub.next(0.1)] if m]

    got = asyncio.run(run())
    assert [m["Action"] for m in got] == ["die"]
    assert got[0]["Actor"]["Attributes"]["com.docker.swarm.service.name"] == "web"
