"""Stacks (issue 13's shape): a 10-service compose file (30 tasks, 2 overlay networks, 2 secrets and
1 config from files) deployed by `shoal stack deploy` until every task runs (time), redeployed
unchanged (time, and the store writes it made: 0 expected), then the same file through the docker
CLI's `docker stack deploy` on shoal's socket (time).

    .venv/bin/python bench/stack.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from _cluster import HOSTS, api, locked_main, services_cluster, wait_for, wipe

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / ".state" / "docker-cli" / "usr" / "bin" / "docker"
DOCKER_CONFIG = ROOT / ".state" / "docker-cli" / "config"
SERVICES, REPLICAS = 10, 3


def compose() -> str:
    lines = ['version: "3.8"', "services:"]
    for i in range(SERVICES):
        net = "front" if i % 2 else "back"
        lines += [
            f"  s{i}:",
            "    image: shoal/host",
            "    command: sleep 3600",
            "    stop_signal: SIGKILL",  # sleep as PID 1 ignores SIGTERM: no 10 s grace period per task
            f"    networks: [{net}]",
            f"    secrets: [{'token' if i % 2 else 'password'}]",
            *(["    configs: [{source: settings, target: /etc/settings.conf}]"] if i < 5 else []),
            "    deploy:",
            f"      replicas: {REPLICAS}",
        ]
    lines += ["networks:", "  front:", "  back:"]
    lines += ["secrets:", "  password:", "    file: ./password", "  token:", "    file: ./token"]
    lines += ["configs:", "  settings:", "    file: ./settings.conf"]
    return "\n".join(lines) + "\n"


def write_files(tmp: Path) -> Path:
    (tmp / "password").write_text("bench-password")
    (tmp / "token").write_text("bench-token")
    (tmp / "settings.conf").write_text("level=1\n")
    file = tmp / "compose.yml"
    file.write_text(compose())
    return file


def objects(bed: Any, stack: str) -> dict[str, int]:
    """Version.Index of the stack's services, networks, secrets and configs, and the highest index of
    any task."""
    client = api(bed, "swarm00")
    label = {"label": [f"com.docker.stack.namespace={stack}"]}
    out = {s["Spec"]["Name"]: s["Version"]["Index"] for s in client.get("/services", filters=label)}
    out |= {n["Name"]: n.get("Version", {}).get("Index", 0) for n in client.get("/networks", filters=label)}
    for kind in ("secrets", "configs"):
        out |= {f"{kind}/{o['Spec']['Name']}": o["Version"]["Index"] for o in client.get(f"/{kind}", filters=label)}
    out["tasks"] = max((t["Version"]["Index"] for t in client.get("/tasks")), default=0)
    return out


def all_running(bed: Any) -> bool:
    tasks = api(bed, "swarm00").get("/tasks", filters={"desired-state": ["running"]})
    return sum(1 for t in tasks if t["Status"]["State"] == "running") == SERVICES * REPLICAS


def timed(bed: Any, argv: list[str]) -> float:
    started = time.monotonic()
    res = bed.run("swarm00", argv, timeout=300)
    if res.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed: {res.stdout}{res.stderr}")
    return time.monotonic() - started


def remove(bed: Any, stack: str) -> None:
    bed.run("swarm00", ["shoal", "stack", "rm", stack], timeout=120)
    wait_for("tasks gone", lambda: not api(bed, "swarm00").get("/tasks"), timeout=60)
    client = api(bed, "swarm00")
    left = client.get("/secrets") + client.get("/configs")
    if left:
        raise SystemExit(f"stack rm left {[o['Spec']['Name'] for o in left]}")


def main() -> None:
    bed = services_cluster(managers=1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            file = write_files(Path(tmp))
            print(
                f"stack of {SERVICES} services x {REPLICAS} replicas on 2 networks, 2 secrets, 1 config, "
                f"{len(HOSTS)} nodes"
            )
            started = time.monotonic()
            deploy = timed(bed, ["shoal", "stack", "deploy", "-c", str(file), "bench"])
            wait_for("all running", lambda: all_running(bed), timeout=120, interval=0.1)
            running = time.monotonic() - started
            print(
                f"  shoal stack deploy: command {deploy:.2f} s, all {SERVICES * REPLICAS} tasks running {running:.2f} s"
            )
            before = objects(bed, "bench")
            again = timed(bed, ["shoal", "stack", "deploy", "-c", str(file), "bench"])
            writes = sum(1 for k, v in objects(bed, "bench").items() if before.get(k) != v)
            print(f"  redeploy unchanged: {again:.2f} s, objects written: {writes}")
            remove(bed, "bench")
            if DOCKER.exists():
                started = time.monotonic()
                docker = [
                    "env", f"DOCKER_CONFIG={DOCKER_CONFIG}", str(DOCKER), "-H", "unix:///run/shoal/shoal.sock",
                    "stack", "deploy", "-c", str(file), "dbench",
                ]  # fmt: skip
                command = timed(bed, docker)
                wait_for("all running", lambda: all_running(bed), timeout=120, interval=0.1)
                print(
                    f"  docker stack deploy: command {command:.2f} s, all tasks running "
                    f"{time.monotonic() - started:.2f} s"
                )
                remove(bed, "dbench")
            else:
                print(f"  docker stack deploy: skipped ({DOCKER} missing: `make setup` unpacks it)")
    finally:
        wipe(bed, "bench_stack")


if __name__ == "__main__":
    locked_main(main)
