"""The agent's memory housekeeping really hands freed heap back to the kernel (glibc)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "agent" / "src"

PROBE = """
import sys
from shoal import memory

def rss_mb():
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS")).split()[1]) // 1024

arenas = memory.limit_arenas()
blocks = [bytes(1024) + bytes([i % 256]) for i in range(40000)]  # ~40 MB from malloc, not pymalloc
keep = blocks[-1]  # the heap's top stays in use, so free() alone cannot shrink it
del blocks
before = rss_mb()
trimmed = memory.trim()
print(arenas, trimmed, before, rss_mb())
"""


def test_trim_returns_freed_heap_and_arenas_are_limited() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env={"PYTHONPATH": str(SRC)}, capture_output=True, text=True, check=True
    ).stdout.split()
    arenas, trimmed, before, after = out[0], out[1], int(out[2]), int(out[3])
    assert arenas == "True" and trimmed == "True"
    assert before - after >= 25, f"RSS {before} MB -> {after} MB after malloc_trim"
