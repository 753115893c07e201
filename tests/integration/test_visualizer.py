"""The visualizer page in a real headless Chromium (Debian's chromium + chromium-driver, driven by
Selenium with the driver path given, so nothing is downloaded). The page listens on the manager's
loopback inside swarm00's network namespace, so chromedriver and every Selenium call run on one
thread that entered that namespace (setns is per thread; the driver process inherits it).

Checks the DOM as the cluster changes: three node columns; `service scale nodejs=4` gives four
cards; a drained swarm01 has an empty column; a cut swarm02 is shown Down; a node label full of
markup renders as text. Screenshots go to .state/visualizer/.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from integration.browser import InNetns, start_chromium
from integration.cluster_helpers import cli, form_cluster, wait_for, wipe_cluster
from testbed.bed import Testbed

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / ".state" / "visualizer"
XSS = "<script>window.pwned=1</script><b>bold</b>"


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=1)
    yield bed
    bed.set_link("swarm02", up=True)
    wipe_cluster(bed, "test_visualizer")


@pytest.fixture(scope="module")
def browser(cluster: Testbed) -> Iterator[tuple[InNetns, Any, str]]:
    code, out, err = cli(cluster, "swarm00", "visualizer", "--print-url")
    assert code == 0, err
    url = out.strip()
    profile = tempfile.mkdtemp(prefix="chromium-", dir=ROOT / ".state")
    ns = InNetns("shoal-swarm00")
    driver = start_chromium(ns, profile)
    try:
        yield ns, driver, url
    finally:
        ns(driver.quit)
        ns.close()
        shutil.rmtree(profile, ignore_errors=True)


# read in one script: the page re-renders on every change, so element handles go stale between calls
READ_COLUMNS = """
const out = {};
for (const col of document.querySelectorAll("section.node")) {
  out[col.dataset.hostname] = {
    state: col.querySelector(".head .state").textContent,
    availability: col.dataset.availability,
    cards: col.querySelectorAll(".task").length,
    classes: col.className,
    labels: Array.from(col.querySelectorAll(".labels"), e => e.textContent),
    bold: col.querySelectorAll("b").length,
  };
}
return out;
"""


def columns(ns: InNetns, driver: Any) -> dict[str, dict[str, Any]]:
    return ns(lambda: driver.execute_script(READ_COLUMNS))


def cards(cols: dict[str, dict[str, Any]]) -> int:
    return sum(c["cards"] for c in cols.values())


def shot(ns: InNetns, driver: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    ns(lambda: driver.save_screenshot(str(SHOTS / f"{name}.png")))


def test_the_board_follows_the_cluster_live(cluster: Testbed, browser: tuple[InNetns, Any, str]) -> None:
    ns, driver, url = browser
    code, _, err = cli(
        cluster, "swarm00", "service", "create", "--detach", "--name", "nodejs", "--replicas", "2",
        "--constraint", "node.role==worker", "--init", "shoal/host", "sleep", "3600",
    )  # fmt: skip
    assert code == 0, err
    ns(lambda: driver.get(url))
    cols = wait_for("three node columns", lambda: (c := columns(ns, driver)) and len(c) == 3 and c, timeout=30)
    assert set(cols) == {"swarm00", "swarm01", "swarm02"}
    leader = 'return document.querySelector("section[data-hostname=swarm00] .head .leader") !== null'
    assert ns(lambda: driver.execute_script(leader)) is True
    wait_for("two cards", lambda: cards(columns(ns, driver)) == 2, timeout=30)
    loaded = ns(lambda: driver.execute_script("return document.body.dataset.loaded"))

    assert cli(cluster, "swarm00", "service", "scale", "--detach", "nodejs=4")[0] == 0
    wait_for("four cards", lambda: cards(columns(ns, driver)) == 4, timeout=40)
    # live: the same page (no reload) re-rendered from the event stream
    assert ns(lambda: driver.execute_script("return performance.getEntriesByType('navigation').length")) == 1
    assert ns(lambda: driver.execute_script("return document.body.dataset.loaded")) != loaded
    shot(ns, driver, "scaled")

    assert cli(cluster, "swarm00", "node", "update", "--availability", "drain", "swarm01")[0] == 0
    wait_for("swarm01's column empty", lambda: columns(ns, driver)["swarm01"]["cards"] == 0, timeout=40)
    wait_for("four cards elsewhere", lambda: cards(columns(ns, driver)) == 4, timeout=40)
    assert columns(ns, driver)["swarm01"]["availability"] == "drain"
    shot(ns, driver, "drained")
    assert cli(cluster, "swarm00", "node", "update", "--availability", "active", "swarm01")[0] == 0

    cluster.set_link("swarm02", up=False)
    try:
        wait_for("swarm02 shown Down", lambda: columns(ns, driver)["swarm02"]["state"] == "Down", timeout=40)
        assert "down" in columns(ns, driver)["swarm02"]["classes"]
        shot(ns, driver, "down")
    finally:
        cluster.set_link("swarm02", up=True)
    wait_for("swarm02 back", lambda: columns(ns, driver)["swarm02"]["state"] == "Ready", timeout=40)


def test_names_render_as_text(cluster: Testbed, browser: tuple[InNetns, Any, str]) -> None:
    ns, driver, url = browser
    # service names are DNS labels (Docker refuses `<script>` too); node labels are free text
    assert cli(cluster, "swarm00", "node", "update", "--label-add", f"note={XSS}", "swarm01")[0] == 0
    ns(lambda: driver.get(url))
    wait_for(
        "the label shown",
        lambda: columns(ns, driver).get("swarm01", {}).get("labels") == [f"note={XSS}"],
        timeout=30,
    )
    assert columns(ns, driver)["swarm01"]["bold"] == 0
    assert ns(lambda: driver.execute_script("return window.pwned === undefined")) is True
    shot(ns, driver, "escaped")


def test_without_the_token_the_page_says_401(cluster: Testbed, browser: tuple[InNetns, Any, str]) -> None:
    ns, driver, url = browser
    ns(lambda: driver.get(url.split("?", 1)[0]))
    body = ns(lambda: driver.find_element(By.TAG_NAME, "body").text)
    assert "needs its token" in body
    assert not ns(lambda: driver.find_elements(By.CSS_SELECTOR, "section.node"))
