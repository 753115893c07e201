"""How long `testbed up` and `down` of 3 hosts take (target: under 5 s each). Prints figures only."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from testbed.bed import Testbed

ROUNDS = 3


def main() -> None:
    bed = Testbed()
    bed.down()
    ups, downs = [], []
    for _ in range(ROUNDS):
        t0 = time.monotonic()
        bed.up(3)
        ups.append(time.monotonic() - t0)
        t0 = time.monotonic()
        bed.down()
        downs.append(time.monotonic() - t0)
    print(f"testbed up   (3 hosts, sshd answering): median {statistics.median(ups):.2f} s, max {max(ups):.2f} s")
    print(f"testbed down (everything removed):      median {statistics.median(downs):.2f} s, max {max(downs):.2f} s")
    print("target: under 5 s each")


if __name__ == "__main__":
    main()
