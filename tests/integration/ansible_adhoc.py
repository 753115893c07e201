"""Runs one of the collection's modules ad hoc (`ansible HOST -m shoal.swarm.NAME`) on a testbed host."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from testbed.bed import Testbed

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = REPO / ".venv" / "bin" / "ansible"


def run_module(
    bed: Testbed,
    name: str,
    args: dict[str, Any],
    *,
    check: bool = False,
    diff: bool = False,
    host: str = "swarm00",
) -> tuple[int, dict[str, Any], str]:
    """(rc, the module's result, ansible's whole output); the result is {} when ansible printed none."""
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(bed.ansible_cfg_path),
        ANSIBLE_COLLECTIONS_PATH=str(REPO / "playbooks" / "collections"),
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
    )
    argv = [str(ANSIBLE), host, "-m", f"shoal.swarm.{name}", "-a", json.dumps(args)]
    argv += ["--check"] * check + ["--diff"] * diff
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    print(f"{name} {sorted(args)}{' check' * check}: rc={proc.returncode} in {time.monotonic() - started:.1f} s")
    return proc.returncode, module_result(proc.stdout), out


def module_result(stdout: str) -> dict[str, Any]:
    """The result ansible printed after `HOST | STATUS => `, read from its stdout only: what goes to stderr
    (a library's deprecation warning, as cryptography 51's for DSA, imported by ansible-core's ssh agent
    support) is not part of it. {} when ansible printed none."""
    start = stdout.find(" => {")
    if start < 0:
        return {}
    result, _ = json.JSONDecoder().raw_decode(stdout, start + 4)
    return result
