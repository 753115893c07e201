"""The dataplane's paths in the three VMs of the VM testbed, on the IPVS backend and on the nftables
backend, side by side (issue 12). Prints figures only.

Needs the VM testbed up with a swarm on it (playbooks/site.yml converged), under its lock, e.g.
between the converge and destroy steps of `make molecule-vm`. Makes an overlay network and two
services on it: a server task pinned to swarm01 that publishes port MESH_PORT (routing mesh), and a
client task pinned to swarm00; swarm02 runs neither. iperf3 (the VMs' own, run in the tasks' network
namespaces with nsenter; SECONDS s a run, ROUNDS rounds, medians) through:

* underlay      swarm00 -> swarm01, host to host (no shoal in the path)
* task->task    client task -> server task across VMs (VXLAN): the reference of every ratio
* VIP           client task -> the server service's VIP (IPVS or nft DNAT in the client's namespace)
* mesh          swarm00's host -> swarm02:MESH_PORT (no task there) -> ingress -> swarm01's task

for each backend: the agents' `lb_backend` is set in /etc/shoal/shoald.yml and every agent is
restarted (its tasks are adopted); `shoal info` must say the backend before anything is measured.
The configuration is put back and the agents restarted at the end, whatever happens. Under QEMU's
software emulation absolute figures measure the emulator; only ratios between paths of one run do.

Measured 2026-12-03 20:40-20:51 UTC (load average 4.0 before, 3 rounds x 8 s per backend; medians of
Mbit/s, and medians of the per-round ratios to task->task):

    path           ipvs Mbit/s  ratio   nftables Mbit/s  ratio
    underlay             204.2   2.90             563.4   2.64
    task->task            72.1   1.00             216.2   1.00
    VIP                   82.8   1.06             205.1   0.85
    mesh                 114.1   1.58             125.6   0.58

Round to round the same path moved up to 8x (IPVS task->task 31.5, 72.1, 250.3) with the machine's
load, more than any path differs from another: per-round ratios were VIP 0.91/1.15/1.06 (IPVS) and
0.85/0.82/1.21 (nftables), mesh 1.69/1.58/0.84 (IPVS) and 0.40/0.58/1.06 (nftables). Only this is
clear: under TCG neither backend's VIP costs much against task->task, and the mesh (three VMs busy
where task->task keeps two) is as noisy as the machine; the 0.85 mesh goal of issue 12 is for the
namespace testbed (bench/dataplane.py), not for these guests.
"""

from __future__ import annotations

import json
import os
import shlex
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
CONFIG = "/etc/shoal/shoald.yml"
SECONDS = int(os.environ.get("SECONDS_PER_RUN", "8"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
BACKENDS = os.environ.get("BACKENDS", "ipvs nftables").split()
NET, SERVER, CLIENT = "bench_dp", "bench_dp_srv", "bench_dp_cli"
IPERF_PORT, MESH_PORT = 5201, 30201
PIDFILE = "/run/bench-iperf3.pid"
PATHS = ["underlay", "task->task", "VIP", "mesh"]

# run on the manager: {"server": {...}, "client": {...}, "vip": "..."} of the running tasks
QUERY_PY = (
    MANAGER_API_PY
    + f"""\
services = {{s["Spec"]["Name"]: s for s in get("/services")}}
nets = {{n["Name"]: n["Id"] for n in get("/networks")}}
out = {{}}
srv = services.get("{SERVER}")
for vip in (srv or {{}}).get("Endpoint", {{}}).get("VirtualIPs") or []:
    if vip["NetworkID"] == nets.get("{NET}"):
        out["vip"] = vip["Addr"].split("/")[0]
for t in get("/tasks"):
    for role, name in (("server", "{SERVER}"), ("client", "{CLIENT}")):
        s = services.get(name)
        if s and t["ServiceID"] == s["ID"] and t["Status"]["State"] == "running":
            ips = [a["Addresses"][0].split("/")[0] for a in t.get("NetworksAttachments") or []
                   if a["Network"]["Spec"]["Name"] == "{NET}"]
            out[role] = {{"node": nodes.get(t["NodeID"], ""), "id": t["ID"], "ip": ips[0] if ips else ""}}
print(json.dumps(out))
"""
)


class Bench:
    def __init__(self) -> None:
        self.bed = VmTestbed()
        self.names = [h.name for h in self.bed.hosts()]
        if len(self.names) < 3:
            raise SystemExit("needs the three VMs of the VM testbed (python -m testbed up --backend vm)")
        self.manager = self.names[0]
        self.addr = {h.name: h.address for h in self.bed.hosts()}

    def run(self, name: str, argv: list[str], timeout: float = 300, stdin: str | None = None) -> str:
        proc = self.bed.run(name, argv, timeout=timeout, input=stdin)
        if proc.returncode != 0:
            raise SystemExit(f"{name}: {shlex.join(argv)[:120]}: {proc.stderr.strip()[-400:]}")
        return proc.stdout

    def shell(self, name: str, script: str, timeout: float = 300) -> str:
        return self.run(name, ["bash", "-c", script], timeout=timeout)

    # ---- backends
    def switch(self, backend: str) -> None:
        """lb_backend in every agent's configuration, then a restart of every agent."""
        for name in self.names:
            self.shell(
                name,
                f"test -e {CONFIG}.bench || cp -p {CONFIG} {CONFIG}.bench; "
                f"sed -i 's/^lb_backend: .*/lb_backend: \"{backend}\"/' {CONFIG}; systemctl restart shoald",
            )
        deadline = time.monotonic() + 600
        for name in self.names:
            while (seen := self._try_backend(name)) != backend:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{name}: shoal info says {seen!r}, not {backend}")
                time.sleep(5)

    def _try_backend(self, name: str) -> str:
        proc = self.bed.run(name, [SHOAL, "info"], timeout=120)
        for line in proc.stdout.splitlines():
            if "Load balancer backend:" in line:
                return line.split(":", 1)[1].strip()
        return ""

    def restore(self) -> None:
        for name in self.names:
            self.bed.run(
                name,
                ["bash", "-c", f"test -e {CONFIG}.bench && mv {CONFIG}.bench {CONFIG} && systemctl restart shoald"],
                timeout=300,
            )

    # ---- services
    def create(self) -> None:
        self.run(self.manager, [SHOAL, "network", "create", "--driver", "overlay", NET])
        common = ["service", "create", "--detach", "--network", NET, "--replicas", "1"]
        self.run(self.manager, [SHOAL, *common, "--name", SERVER, "--constraint", f"node.hostname=={self.names[1]}",
                                "--publish", f"{MESH_PORT}:{IPERF_PORT}", "shoal/hello"])  # fmt: skip
        self.run(self.manager, [SHOAL, *common, "--name", CLIENT, "--constraint", f"node.hostname=={self.names[0]}",
                                "shoal/hello"])  # fmt: skip

    def remove(self) -> None:
        for service in (SERVER, CLIENT):
            self.bed.run(self.manager, [SHOAL, "service", "rm", service], timeout=120)
        time.sleep(20)
        self.bed.run(self.manager, [SHOAL, "network", "rm", NET], timeout=120)

    def tasks(self, timeout: float = 900) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            found = json.loads(self.run(self.manager, ["python3", "-"], stdin=QUERY_PY))
            if all(found.get(k) and found[k]["ip"] for k in ("server", "client")) and found.get("vip"):
                return found
            if time.monotonic() > deadline:
                raise SystemExit(f"the bench services did not run: {found}")
            time.sleep(5)

    # ---- iperf3
    def iperf(self, server: str, server_netns: str | None, client: str, client_netns: str | None, dst: str,
              port: int) -> float:  # fmt: skip
        def inside(netns: str | None, argv: list[str]) -> list[str]:
            return ["nsenter", f"--net={netns}", *argv] if netns else argv

        # a server left by a failed run would hold the port: stop it by its pid file first
        self.shell(server, f"test -s {PIDFILE} && kill $(cat {PIDFILE}) 2>/dev/null; rm -f {PIDFILE}; true")
        self.run(server, inside(server_netns, ["iperf3", "-s", "-1", "-D", "-I", PIDFILE, "-p", str(IPERF_PORT)]))
        time.sleep(1)
        out = self.run(
            client,
            inside(client_netns, ["iperf3", "-c", dst, "-p", str(port), "-t", str(SECONDS), "-J"]),
            timeout=SECONDS + 120,
        )
        return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e6

    def measure(self, found: dict) -> dict[str, float]:
        srv, cli = found["server"], found["client"]
        srv_ns, cli_ns = f"/run/netns/task-{srv['id'][:12]}", f"/run/netns/task-{cli['id'][:12]}"
        a, b, c = self.names[:3]
        return {
            "underlay": self.iperf(b, None, a, None, self.addr[b], IPERF_PORT),
            "task->task": self.iperf(srv["node"], srv_ns, cli["node"], cli_ns, srv["ip"], IPERF_PORT),
            "VIP": self.iperf(srv["node"], srv_ns, cli["node"], cli_ns, found["vip"], IPERF_PORT),
            "mesh": self.iperf(srv["node"], srv_ns, a, None, self.addr[c], MESH_PORT),
        }


def main() -> None:
    bench = Bench()
    one, five, _ = os.getloadavg()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {os.cpu_count()} CPUs, "
          f"load average {one:.2f} (1 min), {five:.2f} (5 min) before the run", flush=True)  # fmt: skip
    figures: dict[str, dict[str, list[float]]] = {b: {p: [] for p in PATHS} for b in BACKENDS}
    bench.create()
    try:
        # running before the first restart: a task still Accepted when its agent restarted stayed
        # Accepted (seen here on the manager VM, 2026-12-03), and the bench would wait for nothing
        bench.tasks()
        for backend in BACKENDS:
            t0 = time.monotonic()
            bench.switch(backend)
            found = bench.tasks()
            print(f"{backend}: agents restarted and tasks running in {time.monotonic() - t0:.0f} s: "
                  f"server on {found['server']['node']}, client on {found['client']['node']}", flush=True)  # fmt: skip
            for _ in range(ROUNDS):
                for path, mbps in bench.measure(found).items():
                    figures[backend][path].append(mbps)
                    record(f"{backend} {path}", mbps, unit="Mbit/s")
                    print(f"  {backend:9} {path:11} {mbps:8.1f} Mbit/s", flush=True)
    finally:
        bench.remove()
        bench.restore()
    report(figures)


def report(figures: dict[str, dict[str, list[float]]]) -> None:
    """Ratios per round (paths measured back to back), then their median: the shared machine's load
    moves absolute figures between rounds far more than between paths of one round."""
    backends = list(figures)
    print(f"\nmedians of {ROUNDS} x {SECONDS} s iperf3; ratio = median over rounds of path / task->task of that round")
    print(f"{'path':12}" + "".join(f"{b + ' Mbit/s':>18}{'ratio':>8}" for b in backends))
    for path in PATHS:
        row = f"{path:12}"
        for b in backends:
            ratios = [x / ref for x, ref in zip(figures[b][path], figures[b]["task->task"], strict=True)]
            record(f"{b} {path} / task->task", ratios, unit="ratio")
            row += f"{statistics.median(figures[b][path]):18.1f}{statistics.median(ratios):8.2f}"
        print(row)


if __name__ == "__main__":
    main()
