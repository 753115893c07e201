"""How fast the visualizer follows the cluster: `service scale` -> the cards drawn in a headless
Chromium (the page on swarm00's loopback, live over Server-Sent Events), against the moment a
client polling GET /tasks sees every task RUNNING. ROUNDS rounds of 2 -> 6 -> 2 replicas.
Figures only, nothing asserted.

    .venv/bin/python bench/visualizer.py [ROUNDS]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _cluster import (
    api,
    create_service,
    locked_main,
    machine_note,
    running_tasks,
    scale_service,
    service_tasks,
    services_cluster,
    until,
    wipe,
)
from _figures import record
from selenium.webdriver.common.by import By

from integration.browser import InNetns, start_chromium
from integration.cluster_helpers import cli

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    print(f"visualizer: {ROUNDS} rounds of scale 2 -> 6 -> 2 (`shoal/host sleep 3600`)")
    print(machine_note(), flush=True)
    bed = services_cluster(managers=1)
    profile = tempfile.mkdtemp(prefix="chromium-", dir=ROOT / ".state")
    ns = InNetns("shoal-swarm00")
    driver: Any = None
    try:
        url = cli(bed, "swarm00", "visualizer", "--print-url")[1].strip()
        driver = start_chromium(ns, profile)
        service = create_service(bed, "vis", 2)
        ns(lambda: driver.get(url))

        def cards() -> int:
            return ns(lambda: len(driver.find_elements(By.CSS_SELECTOR, "section.node .task.running")))

        until("2 cards", lambda: cards() == 2, 30, 0.05)
        drawn, polled = [], []
        for round_ in range(ROUNDS):
            for n in (6, 2):
                t0 = time.monotonic()
                scale_service(bed, service, n)
                seen_api: list[float] = []

                def both(n: int = n, t0: float = t0, seen_api: list[float] = seen_api) -> bool:
                    if not seen_api and len(running_tasks(service_tasks(bed, service))) == n:
                        seen_api.append(time.monotonic() - t0)
                    return cards() == n

                ok, elapsed = until(f"{n} cards", both, 30, 0.02, start=t0)
                if not ok:
                    print(f"  round {round_ + 1}: {n} cards not drawn after {elapsed:.1f} s")
                    continue
                drawn.append(elapsed)
                if seen_api:
                    polled.append(seen_api[0])
                print(
                    f"  round {round_ + 1}: scale -> {n}: {n} running cards drawn after {elapsed * 1000:.0f} ms "
                    f"(GET /tasks showed them RUNNING after "
                    f"{seen_api[0] * 1000 if seen_api else float('nan'):.0f} ms)",
                    flush=True,
                )
        if drawn:
            record("scale -> cards drawn (browser)", drawn)
            record("scale -> RUNNING (GET /tasks polling)", polled)
            drawn.sort()
            print(f"scale -> cards drawn: median {drawn[len(drawn) // 2] * 1000:.0f} ms, max {drawn[-1] * 1000:.0f} ms")
        api(bed, "swarm00").delete(f"/services/{service}")
    finally:
        if driver is not None:
            ns(driver.quit)
        ns.close()
        shutil.rmtree(profile, ignore_errors=True)
        wipe(bed, "bench_visualizer")


if __name__ == "__main__":
    locked_main(main)
