"""Task addresses: always the lowest free one, and N of them in O(N) (no rescan from the start)."""

from __future__ import annotations

import ipaddress
import random
import time

from shoal.manager.allocator.addresses import take_address, used_addresses
from shoal.model.network import gateway_of, network_object, subnet_of, validate_create

NOW = "2026-01-01T00:00:00.000000000Z"


def net(subnet: str) -> dict:
    return network_object(
        "n1", validate_create({"Name": "app", "IPAM": {"Config": [{"Subnet": subnet}]}}, []), 4097, NOW
    )


def lowest_free(network: dict, taken: set[str]) -> str:
    """The rule as first written: scan the subnet's hosts from the start."""
    n = subnet_of(network)
    ip = next(str(h) for h in n.hosts() if str(h) != gateway_of(network) and str(h) not in taken)
    taken.add(ip)
    return f"{ip}/{n.prefixlen}"


def test_takes_the_lowest_free_address_like_a_full_scan() -> None:
    rng = random.Random(5)
    network = net("10.9.0.0/24")
    for _ in range(20):
        holes = {f"10.9.0.{i}" for i in rng.sample(range(2, 254), 120)}
        tasks = [{"NetworksAttachments": [{"Network": {"ID": "n1"}, "Addresses": [f"{ip}/24"]}]} for ip in holes]
        used = used_addresses(tasks, [], [])
        reference = set(holes)
        for _ in range(60):
            assert take_address(network, used) == lowest_free(network, reference)


def test_many_addresses_cost_linear_time() -> None:
    network = net("10.128.0.0/15")
    used = used_addresses([], [], [])
    t0 = time.perf_counter()
    got = [take_address(network, used) for _ in range(20000)]
    assert time.perf_counter() - t0 < 5.0  # a rescan per address took minutes
    assert len(set(got)) == 20000 and got[0] == "10.128.0.2/15"  # .1 is the gateway
    assert ipaddress.ip_interface(got[-1]).ip == ipaddress.ip_address("10.128.78.33")
