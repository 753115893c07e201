"""Root CA rotation time for 3 nodes (3 managers, or `--managers 1`: 1 manager + 2 workers).

Each round is `shoal swarm ca --rotate` as the API sees it (Spec.CAConfig.ForceRotate + 1), then:
  converted: every node holds a certificate of the new root and the old root is retired
             (RootRotationInProgress false);
  trusted:   every node also trusts only the new root (what `swarm ca` waits for before it returns).
Figures only, nothing asserted.

    .venv/bin/python bench/ca_rotation.py [ROUNDS] [--managers N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from _cluster import HOSTS, api, fresh_cluster, locked_main, machine_note, teardown, until
from _figures import record

TIMEOUT = 180.0


def converged(bed: Any) -> tuple[bool, bool]:
    """(certificates converted and old root retired, every node trusting only the new root)."""
    swarm = api(bed, "swarm00").get("/swarm")
    want = swarm["TLSInfo"]
    nodes = [(n.get("Description") or {}).get("TLSInfo") or {} for n in api(bed, "swarm00").get("/nodes")]
    certs = all(t.get("CertIssuerPublicKey") == want["CertIssuerPublicKey"] for t in nodes)
    roots = all(t.get("TrustRoot") == want["TrustRoot"] for t in nodes)
    done = certs and not swarm["RootRotationInProgress"]
    return done, done and roots


def one_rotation(bed: Any) -> tuple[float | None, float | None]:
    swarm = api(bed, "swarm00").get("/swarm")
    spec = swarm["Spec"]
    spec["CAConfig"]["ForceRotate"] = int(spec["CAConfig"].get("ForceRotate") or 0) + 1
    t0 = time.monotonic()
    api(bed, "swarm00").post("/swarm/update", spec, version=swarm["Version"]["Index"])
    done, t_done = until("certificates converted, old root retired", lambda: converged(bed)[0], TIMEOUT, 0.05, t0)
    trusted, t_trust = until("every node trusts only the new root", lambda: converged(bed)[1], TIMEOUT, 0.05, t0)
    return (t_done if done else None), (t_trust if trusted else None)


def _secs(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="?", type=int, default=3)
    parser.add_argument("--managers", type=int, default=3, choices=(1, 2, 3))
    args = parser.parse_args()
    print(f"cluster: {len(HOSTS)} nodes, {args.managers} manager(s); heartbeat 1 s (renewal is asked in the heartbeat)")
    print(machine_note(), flush=True)
    bed = fresh_cluster(managers=args.managers)
    converted: list[float] = []
    trusted: list[float] = []
    try:
        for i in range(args.rounds):
            a, b = one_rotation(bed)
            print(f"  round {i + 1}: converted {_secs(a)}, trusted {_secs(b)}", flush=True)
            if a is not None:
                converted.append(a)
            if b is not None:
                trusted.append(b)
    finally:
        teardown(bed)
    for label, samples in (
        ("rotation: certificates converted, old root retired", converted),
        ("rotation: every node trusts only the new root", trusted),
    ):
        if samples:
            record(label, samples)
            median, worst = statistics.median(samples), max(samples)
            print(f"{label}: median {median:.2f} s, max {worst:.2f} s over {len(samples)} rounds")
        else:
            print(f"{label}: never within {TIMEOUT:.0f} s")


if __name__ == "__main__":
    locked_main(main)
