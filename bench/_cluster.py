"""Shared setup for benchmarks that need a shoal cluster on the testbed (prints, never asserts)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "agent" / "src")]

from integration.cluster_helpers import HOSTS, api, start_agent, wait_for  # noqa: E402
from testbed.bed import Testbed  # noqa: E402
from testbed.lock import testbed_lock  # noqa: E402

MANAGER = "10.213.0.10:2377"


def fresh_cluster(managers: int = 3) -> Testbed:
    """Testbed up, agents restarted with empty state, swarm00 init, others joined (and promoted)."""
    bed = Testbed()
    bed.up(len(HOSTS))
    for host in HOSTS:
        bed.stop_agent(host)
        bed.run(host, ["sh", "-c", "rm -rf /var/lib/shoal/*"])
        start_agent(bed, host)
    api(bed, "swarm00").post("/swarm/init", {"AdvertiseAddr": "eth0"})
    tokens = api(bed, "swarm00").get("/swarm")["JoinTokens"]
    for i, host in enumerate(HOSTS[1:], start=1):
        token = tokens["Manager"] if i < managers else tokens["Worker"]
        api(bed, host).post("/swarm/join", {"JoinToken": token, "RemoteAddrs": [MANAGER]})
    wait_for(
        "managers reachable",
        lambda: (
            sum(
                1
                for n in api(bed, "swarm00").get("/nodes")
                if (n.get("ManagerStatus") or {}).get("Reachability") == "reachable"
            )
            == managers
        ),
        timeout=30,
    )
    return bed


def teardown(bed: Testbed) -> None:
    for host in HOSTS:
        bed.stop_agent(host)
        bed.run(host, ["sh", "-c", "rm -rf /var/lib/shoal/*"])


def locked_main(main: object) -> None:
    """Run a benchmark's main while holding the machine's testbed lock."""
    with testbed_lock():
        main()  # type: ignore[operator]
