"""Chaos suite fixtures: the integration testbed (`bed`), the short/long switch and the summary table.

`CHAOS_LONG=1` selects the long rounds (documented target); without it the CI-sized short rounds run.
Each test records rows with `summary.add(test, rounds, failures, figures)`; they are printed at the end.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

import pytest

from integration.conftest import bed, root_before  # noqa: F401  (session fixtures, the testbed lock)

LONG = os.environ.get("CHAOS_LONG", "") not in ("", "0")


def rounds(short: int, long: int) -> int:
    return long if LONG else short


@dataclass
class Summary:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, test: str, rounds_: object, failures: object, figures: str) -> None:
        with self.lock:
            self.rows.append((test, str(rounds_), str(failures), figures))


SUMMARY = Summary()


@pytest.fixture(scope="session")
def summary() -> Summary:
    return SUMMARY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not SUMMARY.rows:
        return
    header = ("test", "rounds", "failures", "figures")
    widths = [max(len(r[i]) for r in [header, *SUMMARY.rows]) for i in range(3)]
    terminalreporter.section(f"chaos summary ({'long' if LONG else 'short'} rounds)")
    for row in [header, *SUMMARY.rows]:
        terminalreporter.write_line("  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
