"""A long poll late past its timeout is waited for on the manager still leading, not sent again."""

from __future__ import annotations

import asyncio
from typing import Any

from shoal.clusterclient import ClusterClient
from shoal.errors import ShoalError, Unavailable


class Session:
    closed = False


class Polls(ClusterClient):
    """`begin` as the kept connections' would: a call per manager that answers after `delay[addr]`
    seconds (or fails with `fail[addr]`); every call begun is recorded, cancelled ones too."""

    def __init__(self, delay: dict[str, float], fail: dict[str, ShoalError] | None = None) -> None:
        self.session = Session()  # type: ignore[assignment]
        self.delay, self.fail = delay, fail or {}
        self.begun: list[str] = []
        self.cancelled: list[str] = []

    def begin(self, addr: str, method: str, path: str, body: Any = None, *, timeout: float) -> asyncio.Task[Any]:
        self.begun.append(addr)

        async def call() -> Any:
            try:
                await asyncio.sleep(self.delay[addr])
            except asyncio.CancelledError:
                self.cancelled.append(addr)
                raise
            if addr in self.fail:
                raise self.fail[addr]
            return {"from": addr}

        return asyncio.ensure_future(call())


def poll(client: Polls, keep: set[str], timeout: float = 0.05) -> tuple[str, Any]:
    return asyncio.run(
        client.poll_any(["m1", "m2"], "POST", "/shoal/assignments", {}, timeout=timeout, keep_waiting=keep.__contains__)
    )


def test_a_late_answer_from_the_leader_is_waited_for_not_asked_again() -> None:
    client = Polls({"m1": 0.2, "m2": 0.0})
    assert poll(client, keep={"m1"}) == ("m1", {"from": "m1"})
    assert client.begun == ["m1"] and client.cancelled == []


def test_a_poll_to_a_manager_no_longer_leading_is_given_up_and_the_next_asked() -> None:
    client = Polls({"m1": 0.2, "m2": 0.0})
    assert poll(client, keep=set()) == ("m2", {"from": "m2"})
    assert client.begun == ["m1", "m2"] and client.cancelled == ["m1"]  # its connection closes


def test_a_failed_poll_moves_on_and_an_api_error_is_an_answer() -> None:
    client = Polls({"m1": 0.0, "m2": 0.0}, fail={"m1": Unavailable("cannot reach manager m1")})
    assert poll(client, keep={"m1"}) == ("m2", {"from": "m2"})
    client = Polls({"m1": 0.0, "m2": 0.0}, fail={"m1": ShoalError("bad request", 400)})
    try:
        poll(client, keep={"m1"})
    except ShoalError as exc:
        assert exc.status == 400 and client.begun == ["m1"]
    else:
        raise AssertionError("a 400 is an answer, not a manager to skip")
