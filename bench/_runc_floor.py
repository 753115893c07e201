"""The runtime's own floor, run inside a testbed host: N containers started one after another by
conmon + runc exactly as shoal's oci driver calls them (`shoal.runtime.oci.conmon`: conmon runs
`runc create`, then `runc start`), with no shoal around them: a read-only root of the host's /usr,
runc's default namespaces (a new network namespace each), `sleep 3600`. Prints one JSON line:
{"n", "wall_s", "cpu_s": machine CPU (/proc/stat, every process on the machine), "proc_cpu_s": the
CPU of the processes involved (the runc calls, conmons, containers)}, then removes every container.

    python bench/_runc_floor.py N [fifo]

With `fifo`, each container is started the way shoal's driver does it with runc (the exec FIFO
that `runc start` opens, shoal.runtime.oci.execfifo), not by a second runc process.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from shoal.runtime.oci import conmon, execfifo

ROOT = Path(f"/tmp/shoal-runc-floor-{os.getpid()}")
RUNC_ROOT = str(ROOT / "runc")


def machine_busy() -> float:
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def conmon_cpu(paths: conmon.Paths) -> float:
    """A daemonized conmon's CPU with the runc create and the container it waited for."""
    pid = conmon.read_pid(paths.conmon_pidfile)
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def config(runtime: str, cid: str) -> dict:
    if not (ROOT / "config.json").exists():
        spec = subprocess.run([runtime, "spec", "--bundle", str(ROOT)], capture_output=True, check=False)
        if spec.returncode != 0:
            raise SystemExit(spec.stderr.decode())
    doc = json.loads((ROOT / "config.json").read_text())
    doc["process"].update(terminal=False, args=["sleep", "3600"])
    doc["root"] = {"path": str(ROOT / "rootfs"), "readonly": True}
    doc["mounts"].append({"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]})
    doc["linux"]["cgroupsPath"] = f"/{cid}"  # one level: runc delete removes it
    return doc


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    fifo = len(sys.argv) > 2 and sys.argv[2] == "fifo"
    runtime = conmon.runtime_path()
    rootfs = ROOT / "rootfs"
    (rootfs / "usr").mkdir(parents=True)
    for name in ("bin", "lib", "lib64", "sbin"):
        if os.path.islink(f"/{name}"):
            os.symlink(os.readlink(f"/{name}"), rootfs / name)
    ids = [f"floor{os.getpid()}x{i}" for i in range(n)]
    bundles = []
    for cid in ids:
        bundle = ROOT / cid
        bundle.mkdir()
        (bundle / "config.json").write_text(json.dumps(config(runtime, cid)))
        bundles.append(conmon.Paths(bundle, cid, ROOT / "sock"))
    argvs = [conmon.conmon_argv("conmon", runtime, RUNC_ROOT, p, conmon.LOG_SIZE_MAX) for p in bundles]
    try:
        busy0, t0, children0 = machine_busy(), time.monotonic(), children_cpu()
        for paths, argv in zip(bundles, argvs, strict=True):
            pid = conmon.start(argv, paths)
            if fifo:
                execfifo.start(execfifo.fifo_path(RUNC_ROOT, paths.task_id), pid)
            else:
                subprocess.run(
                    [runtime, f"--root={RUNC_ROOT}", "start", paths.task_id], check=True, capture_output=True
                )
        wall, cpu = time.monotonic() - t0, machine_busy() - busy0
        procs = children_cpu() - children0 + sum(conmon_cpu(p) for p in bundles)
        states = {
            json.loads(
                subprocess.run([runtime, f"--root={RUNC_ROOT}", "state", p.task_id], capture_output=True).stdout or "{}"
            ).get("status")
            for p in bundles
        }
        print(
            json.dumps({"n": n, "wall_s": wall, "cpu_s": cpu, "proc_cpu_s": procs, "states": sorted(map(str, states))}),
            flush=True,
        )
    finally:
        for paths in bundles:
            subprocess.run([runtime, f"--root={RUNC_ROOT}", "kill", paths.task_id, "KILL"], capture_output=True)
        deadline = time.monotonic() + 10
        for paths in bundles:
            while paths.conmon_pidfile.exists() and not paths.exit_file.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            subprocess.run([runtime, f"--root={RUNC_ROOT}", "delete", "-f", paths.task_id], capture_output=True)
        shutil.rmtree(ROOT, ignore_errors=True)


if __name__ == "__main__":
    main()
