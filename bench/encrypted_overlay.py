"""Throughput of an encrypted overlay (IPsec ESP, AES-GCM) as a ratio to a plain overlay, between
tasks on two VMs of the VM testbed (the only kernel here with ESP). Prints figures only.

Needs the VM testbed up with a swarm on it, under its lock, e.g. between the converge and destroy
steps of `make molecule-vm` (or `python -m testbed up --backend vm` then playbooks/site.yml). Creates
an encrypted and a plain network and a global service on both, runs iperf3 (SECONDS s, ROUNDS
rounds, medians) from the first VM's task to the second's on each network with the VMs' own iperf3
in the tasks' network namespaces, then removes what it made. Goal: ratio >= 0.5. Under software
emulation (TCG) both figures are far below real hardware; the ratio is what to compare.

Measured 2026-12-03 20:29 UTC (load average 2.4, the three VMs converged by site.yml, keys rotating every
30 s as the VM inventory sets): plain overlay 144.0 Mbit/s, encrypted 38.6 Mbit/s (medians of 3 x 10 s;
rounds 182/125/144 and 18/39/40), ratio 0.27: under the 0.5 goal. What costs is the emulator's AES-GCM:
in the same guest OpenSSL's AES-GCM of 1,400-byte buffers runs at 161 Mbit/s against 1,775 Mbit/s for a
plain copy (11x), where this machine's own CPU does 6,103 against 24,023 Mbit/s (4x): TCG makes the
cipher about three times dearer relative to moving bytes than real hardware does, and ESP costs one
encryption and one decryption per packet on guests of one emulated core. The kernel uses
rfc4106-gcm-aesni in the guests (QEMU's `-cpu max` has AES-NI, PCLMULQDQ, AVX2), so no slower generic
cipher is chosen; with the encrypted MTU at 1416 no ESP packet is fragmented. The goal can only be
checked on hardware with ESP in the kernel (this machine's has none).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "agent" / "src"), str(ROOT / "bench")]

from _figures import record  # noqa: E402
from _vm import MANAGER_API_PY  # noqa: E402

from testbed.vm.bed import VmTestbed  # noqa: E402

SHOAL = "/opt/shoal/venv/bin/shoal"
SECONDS = int(os.environ.get("SECONDS_PER_RUN", "10"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SERVICE, SECURE, PLAIN = "bench_enc", "bench_secure", "bench_plain"

# run on a manager VM: the service's running tasks as [{"node", "id", SECURE: ip, PLAIN: ip}]
TASKS_PY = (
    MANAGER_API_PY
    + f"""\
sid = [s["ID"] for s in get("/services") if s["Spec"]["Name"] == "{SERVICE}"][0]
out = []
for t in get("/tasks"):
    if t["ServiceID"] == sid and t["Status"]["State"] == "running":
        row = {{"node": nodes.get(t["NodeID"], ""), "id": t["ID"]}}
        for a in t.get("NetworksAttachments") or []:
            row[a["Network"]["Spec"]["Name"]] = a["Addresses"][0].split("/")[0]
        out.append(row)
print(json.dumps(out))
"""
)


def main() -> None:
    bed = VmTestbed()
    names = [h.name for h in bed.hosts()]
    manager = names[0]
    one, five, _ = os.getloadavg()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {os.cpu_count()} CPUs, "
          f"load average {one:.2f} (1 min), {five:.2f} (5 min) before the run", flush=True)  # fmt: skip

    def run(name: str, argv: list[str], timeout: float = 300, stdin: str | None = None) -> str:
        proc = bed.run(name, argv, timeout=timeout, input=stdin)
        if proc.returncode != 0:
            raise SystemExit(f"{name}: {' '.join(argv[:4])}...: {proc.stderr.strip()}")
        return proc.stdout

    run(manager, [SHOAL, "network", "create", "--driver", "overlay", "--opt", "encrypted", SECURE])
    run(manager, [SHOAL, "network", "create", "--driver", "overlay", PLAIN])
    try:
        run(manager, [SHOAL, "service", "create", "--detach", "--name", SERVICE, "--mode", "global",
                      "--network", SECURE, "--network", PLAIN, "shoal/hello"])  # fmt: skip
        deadline = time.monotonic() + 900
        while True:
            tasks = json.loads(run(manager, ["python3", "-"], stdin=TASKS_PY))
            if len({t["node"] for t in tasks}) >= 2 and all(SECURE in t and PLAIN in t for t in tasks):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"the service's tasks did not run on two VMs: {tasks}")
            time.sleep(5)
        client, server = tasks[0], next(t for t in tasks if t["node"] != tasks[0]["node"])

        def netns(task: dict[str, str]) -> str:
            return f"--net=/run/netns/task-{task['id'][:12]}"

        figures: dict[str, list[float]] = {SECURE: [], PLAIN: []}
        for _ in range(ROUNDS):
            for net in (PLAIN, SECURE):
                run(server["node"], ["nsenter", netns(server), "iperf3", "-s", "-1", "-D"])
                time.sleep(1)
                out = run(
                    client["node"],
                    ["nsenter", netns(client), "iperf3", "-c", server[net], "-t", str(SECONDS), "-J"],
                    timeout=SECONDS + 120,
                )
                bps = json.loads(out)["end"]["sum_received"]["bits_per_second"]
                figures[net].append(bps / 1e6)
                record(net, bps / 1e6, unit="Mbit/s")
                print(f"{net}: {bps / 1e6:.1f} Mbit/s", flush=True)
        plain, secure = statistics.median(figures[PLAIN]), statistics.median(figures[SECURE])
        print(f"plain overlay     {plain:8.1f} Mbit/s (median of {ROUNDS} x {SECONDS} s)")
        print(f"encrypted overlay {secure:8.1f} Mbit/s")
        print(f"ratio encrypted/plain {secure / plain:.2f} (goal >= 0.5)")
        record("ratio encrypted/plain", secure / plain, unit="ratio", goal=0.5)
    finally:
        bed.run(manager, [SHOAL, "service", "rm", SERVICE], timeout=120)
        time.sleep(20)
        for net in (SECURE, PLAIN):
            bed.run(manager, [SHOAL, "network", "rm", net], timeout=120)


if __name__ == "__main__":
    main()
