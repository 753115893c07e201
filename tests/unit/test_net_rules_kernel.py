"""The VIP batches against the real nftables, each in a private network namespace of its own
(`unshare --net`: nothing outside it is touched). An incremental diff applied on top of the old
table must give the same table as writing the new one from scratch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest

from shoal.net import lb, mesh, nft
from shoal.net.model import Published, ServiceLB

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"), reason="needs root, nft, unshare"
)


def in_private_netns(*batches: list[nft.Cmd]) -> dict[str, Any]:
    """Apply the batches one after the other in a fresh namespace; the table as nft lists it."""
    script = "".join(f"nft -j -f - <<'EOF{i}'\n{nft.document(b)}\nEOF{i}\n" for i, b in enumerate(batches))
    script += "nft -j list ruleset\n"
    proc = subprocess.run(["unshare", "--net", "sh", "-ec", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def canonical(listing: dict[str, Any]) -> dict[str, Any]:
    chains, rules, sets = set(), [], {}
    for item in listing["nftables"]:
        if "chain" in item:
            chains.add(item["chain"]["name"])
        elif "rule" in item:
            rules.append(json.dumps([item["rule"]["chain"], item["rule"]["expr"]], sort_keys=True))
        elif "map" in item or "set" in item:
            body = item.get("map") or item["set"]
            sets[body["name"]] = sorted(json.dumps(e, sort_keys=True) for e in body.get("elem", []))
    return {"chains": sorted(chains), "rules": sorted(rules), "sets": sets}


def services(n: int, changed: int | None = None) -> list[ServiceLB]:
    out = []
    for i in range(n):
        backends = ["10.9.0.1", "10.9.0.2", "10.9.1.3" if i == changed else "10.9.0.3"]
        out.append(ServiceLB(f"s{i}", "netaaaaaaaaaaaa", f"10.0.{i // 250}.{i % 250 + 2}", [(80, "tcp")], backends))
    return out


def test_the_kernel_takes_the_full_table() -> None:
    listing = canonical(in_private_netns(lb.full(lb.normalise(services(3)))))
    assert "svc-s1-netaaaaaaa" in listing["chains"] and len(listing["sets"]["ports"]) == 3


@pytest.mark.parametrize(
    "old,new",
    [
        (services(20), services(20, changed=5)),  # one backend replaced
        (services(20), services(15)),  # services removed
        (services(5), services(12)),  # services added
        (
            services(3),
            [
                ServiceLB("s0", "netaaaaaaaaaaaa", "10.0.0.2", [(80, "tcp"), (53, "udp")], []),  # lost backends
                ServiceLB("s1", "netaaaaaaaaaaaa", "10.0.7.7", [(80, "tcp")], ["10.9.0.1"]),  # new VIP
                ServiceLB("s2", "netaaaaaaaaaaaa", "10.0.0.4", [], ["10.9.0.1", "10.9.0.2"]),  # ports gone
            ],
        ),
    ],
    ids=["backend", "removed", "added", "reshaped"],
)
def test_incremental_update_equals_rewrite(old: list[ServiceLB], new: list[ServiceLB]) -> None:
    o, n = lb.normalise(old), lb.normalise(new)
    stepped = in_private_netns(lb.full(o), lb.diff(o, n))
    assert canonical(stepped) == canonical(in_private_netns(lb.full(n)))


def test_the_kernel_takes_the_mesh_tables() -> None:
    host = mesh.host_ruleset(
        [
            mesh.HostTarget("tcp", 30080, ("172.18.0.2",), None),
            mesh.HostTarget("tcp", 31080, ("172.18.0.5", "172.18.0.6"), 80),
        ]
    )
    sbox = mesh.sbox_ruleset([Published(30080, "tcp", 8080, "ingress", ["10.255.0.5", "10.255.0.6"])])
    assert len(canonical(in_private_netns(host))["rules"]) == 6
    assert "pub-tcp-30080" in canonical(in_private_netns(sbox))["chains"]
