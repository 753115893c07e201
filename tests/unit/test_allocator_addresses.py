"""Task addresses: always the lowest free one, and N of them in O(N) (no rescan from the start)."""

from __future__ import annotations

import ipaddress
import random
import time

from shoal.manager.allocator.addresses import take_address, used_addresses
from shoal.manager.allocator.endpoints import task_attachments
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


def test_tasks_on_one_network_version_share_one_view_of_it() -> None:
    # a deep copy of the network for each new task was a quarter of the leader's GIL time while
    # 30,000 tasks were created (docs/scale.md): one copy per network version, shared
    network = net("10.9.0.0/24")
    network["Version"] = {"Index": 7}
    service = {"Spec": {"TaskTemplate": {"Networks": [{"Target": "n1"}]}}}
    used: dict[str, set[str]] = {}
    first, second = (task_attachments(service, [network], used)[0] for _ in range(2))
    assert first["Network"] is second["Network"]
    assert first["Addresses"] != second["Addresses"]  # each task still gets its own address
    view = first["Network"]
    assert view == {k: network[k] for k in ("ID", "Spec", "DriverState", "IPAM")}
    assert view["Spec"] is not network["Spec"] and view["IPAM"] is not network["IPAM"]  # a copy, not the stored one
    updated = {**network, "Version": {"Index": 8}, "Spec": {**network["Spec"], "Labels": {"a": "b"}}}
    third = task_attachments(service, [updated], used)[0]["Network"]
    assert third is not view and third["Spec"]["Labels"] == {"a": "b"}  # a new version: a new view
