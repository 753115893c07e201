"""Headless Chromium (Debian's chromium + chromium-driver) driven by Selenium from inside a testbed
host's network namespace, where the visualizer listens on loopback.

setns is per thread: every Selenium call runs on one thread that entered the namespace, and
chromedriver, started from that thread, inherits it. The driver path is given, so Selenium never
tries to download one.
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Callable
from typing import Any, TypeVar

from pyroute2.netns import setns
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

T = TypeVar("T")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = [
    "--headless",
    "--no-sandbox",  # Chromium refuses to run as root otherwise
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1280,800",
]


class InNetns:
    """Run callables on one thread that lives in a network namespace."""

    def __init__(self, name: str) -> None:
        def enter() -> None:
            fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
            try:
                setns(fd, flags=0)
            finally:
                os.close(fd)

        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, initializer=enter)

    def __call__(self, fn: Callable[[], T], timeout: float = 60) -> T:
        return self.pool.submit(fn).result(timeout)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def start_chromium(ns: InNetns, profile: str) -> Any:
    """A headless Chromium with a fresh profile, driven from inside `ns`."""

    def start() -> Any:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in [*FLAGS, f"--user-data-dir={profile}"]:
            options.add_argument(flag)
        return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)

    return ns(start)
