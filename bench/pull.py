"""Image pulls from the testbed registry (TLS + basic auth): the seed app's image (node + its
libraries, ~35 MB compressed, ~104 MB unpacked) pulled by 3 nodes at once, then a cached pull.

Figures only: wall time of the concurrent cold pull (every node downloads and unpacks), the
`docker pull` of an image already there (asks the registry, downloads nothing), and the
`ensure` path a task start takes for a present image (no registry round trip; goal <= 0.1 s).
"""

from __future__ import annotations

import statistics
import threading
import time

import docker
from _cluster import HOSTS, locked_main, machine_note, start_agent
from _figures import record

from testbed import registry
from testbed.bed import Testbed

IMAGE = registry.ref(registry.NODEJS_APP)


def client(bed: Testbed, host: str) -> docker.DockerClient:
    return docker.DockerClient(base_url=f"unix://{bed.host(host).socket_path}", timeout=600)


def main() -> None:
    print(machine_note())
    bed = Testbed()
    bed.up(len(HOSTS))
    auth = {"username": registry.USER, "password": registry.password()}
    try:
        for host in HOSTS:
            bed.stop_agent(host)
            bed.run(host, ["sh", "-c", "rm -rf /var/lib/shoal/*"])
            start_agent(bed, host)
        sizes: dict[str, int] = {}
        times: dict[str, float] = {}

        def pull(host: str) -> None:
            t0 = time.monotonic()
            client(bed, host).api.pull(IMAGE, auth_config=auth)
            times[host] = time.monotonic() - t0
            sizes[host] = client(bed, host).images.get(IMAGE).attrs["Size"]

        t0 = time.monotonic()
        threads = [threading.Thread(target=pull, args=(h,)) for h in HOSTS]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        layer_bytes = sum(f.stat().st_size for f in (registry.CACHE / "data").rglob("data") if f.is_file())
        print(f"image {IMAGE}: {max(sizes.values()) / 1e6:.1f} MB unpacked; registry holds {layer_bytes / 1e6:.1f} MB")
        print(
            f"cold pull on {len(HOSTS)} nodes at once: {wall:.2f} s wall; per node "
            + ", ".join(f"{h} {times[h]:.2f} s" for h in HOSTS)
        )
        record("cold pull, 3 nodes at once", wall, unit="s")
        record("cold pull per node", list(times.values()), unit="s")
        warm = []
        for _ in range(5):
            t0 = time.monotonic()
            client(bed, HOSTS[0]).api.pull(IMAGE, auth_config=auth)
            warm.append(time.monotonic() - t0)
        print(f"docker pull of a present image (asks the registry): median {statistics.median(warm) * 1000:.0f} ms")
        record("cached pull (API, asks the registry)", warm, unit="s", goal=0.1)
        code = (
            "import time; from shoal.runtime.images import ImageStore\n"
            "s = ImageStore('/var/lib/shoal/images'); t = []\n"
            "for _ in range(20):\n"
            f"    t0 = time.perf_counter(); s.ensure({IMAGE!r}); t.append(time.perf_counter() - t0)\n"
            "t.sort(); print(f'{t[len(t) // 2] * 1000:.2f} {t[-1] * 1000:.2f}')"
        )
        out = bed.run(HOSTS[1], ["python", "-c", code], check=True).stdout.split()
        record("cached pull for a task start (ensure)", float(out[0]) / 1000, unit="s", goal=0.1)
        print(
            f"cached pull for a task start (ImageStore.ensure, present image): "
            f"median {out[0]} ms, max {out[1]} ms (goal <= 100 ms)"
        )
    finally:
        for host in HOSTS:
            bed.stop_agent(host)
        bed.down()


if __name__ == "__main__":
    locked_main(main)
