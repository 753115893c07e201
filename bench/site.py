"""playbooks/site.yml on the testbed: bare hosts to a ready 3-node swarm running the inventory's default service
(the seed's nodejs, 2 replicas, converged when site.yml returns) (goal <= 60 s, including the wheelhouse install on
the hosts), then an immediate re-run (goal changed=0, <= 15 s). Prints figures only.

`--cold` also drops the controller's wheelhouse archive first, so that the first run rebuilds shoal's
wheel (the dependencies' wheels stay cached in build/wheelhouse). `--profile` prints, per run, the slowest tasks
(ansible.posix's profile_tasks callback, from the `ansible` package of requirements-dev.txt) and the number of
task results per host (each one is at least one round trip to the host, a python start there).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "agent" / "src")]

from integration.cluster_helpers import HOSTS, api, wipe_cluster  # noqa: E402
from testbed.bed import Testbed  # noqa: E402
from testbed.lock import testbed_lock  # noqa: E402

PROFILE_LINE = re.compile(r"^(.+?) -+ (\d+\.\d+)s$", re.M)
RESULT_LINE = re.compile(r"^(?:ok|changed|skipping|failed|fatal): \[([^\]\s]+)", re.M)
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
WHEELHOUSE = ROOT / "build" / "wheelhouse"


def bare(bed: Testbed) -> None:
    """No swarm, no agent, nothing installed (leaving first ends any task)."""
    wipe_cluster(bed, "bench_site")
    for host in HOSTS:
        bed.run(host, ["sh", "-c", "rm -rf /var/lib/shoal/* /etc/shoal/* /opt/shoal/*"])


def site(bed: Testbed, source: Path, profile: bool = False) -> tuple[float, int, str]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(bed.ansible_cfg_path), ANSIBLE_NOCOLOR="1")
    if profile:
        env.update(ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", PROFILE_TASKS_TASK_OUTPUT_LIMIT="15")
    argv = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), str(ROOT / "playbooks" / "site.yml")]
    argv += ["-e", f"agent_source={source}", "-e", f"agent_wheelhouse_dir={WHEELHOUSE}"]
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    took = time.monotonic() - started
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise SystemExit(f"site.yml failed (rc={proc.returncode}):\n{out[-4000:]}")
    return took, sum(int(m[2]) for m in RECAP.findall(out)), out


def print_profile(label: str, out: str) -> None:
    """The slowest tasks (profile_tasks' summary) and the task results per host (skipped ones included)."""
    print(f"  {label}: slowest tasks")
    for name, seconds in PROFILE_LINE.findall(out.split("=" * 20, 1)[-1])[:15]:
        print(f"    {float(seconds):6.2f} s  {name.strip()}")
    per_host: dict[str, int] = {}
    for host in RESULT_LINE.findall(out):
        per_host[host] = per_host.get(host, 0) + 1
    print("  task results per host: " + ", ".join(f"{h} {n}" for h, n in sorted(per_host.items())))


def main() -> None:
    cold = "--cold" in sys.argv[1:]
    profile = "--profile" in sys.argv[1:]
    # a snapshot of the agent's source, so that edits in the tree during the runs do not count
    tmp = Path(tempfile.mkdtemp(prefix="shoal-bench-site-"))
    source = tmp / "agent"
    shutil.copytree(ROOT / "agent", source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    bed = Testbed()
    bed.up(len(HOSTS))
    bare(bed)
    if cold:
        for name in ("shoal-wheelhouse.tar", "source.digest"):
            (WHEELHOUSE / name).unlink(missing_ok=True)
    try:
        first, changed, out = site(bed, source, profile)
        built = "changed: [" in out.split("Build the wheelhouse of shoal", 1)[-1].split("TASK [", 1)[0]
        listed = api(bed, "swarm00").get("/nodes")
        ready = sum(1 for n in listed if n["Status"]["State"] == "ready")
        leaders = sum(1 for n in listed if (n.get("ManagerStatus") or {}).get("Leader"))
        tasks = api(bed, "swarm00").get("/tasks", filters={"service": ["seed_nodejs"]})
        running = sum(1 for t in tasks if t["DesiredState"] == "running" and t["Status"]["State"] == "running")
        again, changed_again, out_again = site(bed, source, profile)
        wheels = "rebuilt on the controller" if built else "reused from build/wheelhouse"
        print(
            f"site.yml, bare testbed -> {ready} ready nodes, {leaders} leader, nodejs {running} running: "
            f"{first:.1f} s (goal <= 60 s)"
        )
        print(f"  {changed} changes; wheelhouse {wheels}; install on {len(HOSTS)} hosts included")
        print(f"site.yml, immediate re-run: changed={changed_again} in {again:.1f} s (goal changed=0, <= 15 s)")
        if profile:
            print_profile("first run", out)
            print_profile("re-run", out_again)
    finally:
        bare(bed)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    with testbed_lock():
        main()
