"""A node's session: a beat that reached no manager is tried again within a fraction of a second
(doubling), not a whole heartbeat period later; once beats get through again, the period holds.

Why: the leader marks a node Down after 3 periods without a beat. Waiting a whole period after one
lost beat spent a third of that grace, and a simulated node whose link then dropped for 6 s (well
within the grace) was marked Down and its 10 tasks replaced (issue 17, docs/scale.md)."""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

from shoal.errors import Unavailable
from shoal.worker.session import Session, after_failure

PERIOD = 2.0  # beats 1.5-2 s apart: well above the retries (0.1, 0.2, 0.4 s) on a loaded machine


class FlakyManager:
    """Refuses (unreachable) the first `down` beats, then answers; records when each came."""

    def __init__(self, down: int) -> None:
        self.down = down
        self.at: list[float] = []

    async def call(self, addr: str, method: str, path: str, body: Any = None, *, timeout: float | None = None) -> Any:
        self.at.append(asyncio.get_running_loop().time())
        if len(self.at) <= self.down:
            raise Unavailable(f"cannot reach manager {addr}: ConnectionRefusedError")
        return {"Leader": addr, "Period": PERIOD}


def _beats(down: int, seconds: float) -> list[float]:
    async def run() -> list[float]:
        manager = FlakyManager(down)

        async def on_answer(answer: dict[str, Any]) -> None:
            return None

        sess = Session(lambda: manager, lambda: ["10.0.0.1:2377"], "10.0.0.9:2377", PERIOD, on_answer)  # type: ignore[arg-type,return-value]
        start = asyncio.get_running_loop().time()
        sess.start()
        await asyncio.sleep(seconds)
        await sess.stop()
        return [t - start for t in manager.at]

    return asyncio.run(run())


def test_a_lost_beat_is_tried_again_at_once_doubling() -> None:
    at = _beats(down=3, seconds=3.0)
    gaps = [b - a for a, b in itertools.pairwise(at)]
    # 3 refusals: retries after 0.05-0.1, 0.1-0.2, 0.2-0.4 s; the 4th beat got through, then the period
    assert len(at) == 5, at
    assert all(0.05 <= g < 1.0 for g in gaps[:3]) and gaps[0] < gaps[1] < gaps[2], gaps
    assert gaps[3] >= PERIOD * 0.75 - 0.02, gaps


def test_beats_that_get_through_keep_the_period() -> None:
    at = _beats(down=0, seconds=4.2)
    gaps = [b - a for a, b in itertools.pairwise(at)]
    assert gaps and all(PERIOD * 0.75 - 0.02 <= g <= PERIOD + 0.1 for g in gaps), gaps


def test_the_backoff_doubles_up_to_one_period_and_is_spread() -> None:
    rng = random.Random(3)
    for failures, ceiling in zip(range(1, 9), [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0], strict=True):
        waits = [after_failure(failures, 5.0, rng) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits), (failures, min(waits), max(waits))
        # a fleet whose beats failed together does not come back in step
        assert max(waits) - min(waits) > ceiling / 4
