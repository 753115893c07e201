"""The gateway bridge's fixed ID never shadows a swarm network's own ID or name (Docker's order)."""

from __future__ import annotations

from shoal.manager.control.networks import is_gwbridge, view
from shoal.model.network import GWBRIDGE_ID, network_object


def test_names_and_ids_win_over_the_bridge_id_prefix() -> None:
    prefix = GWBRIDGE_ID[:3]
    networks = [{"ID": "abc123", "Spec": {"Name": prefix}}]
    assert is_gwbridge("shoal_gwbridge", networks)
    assert is_gwbridge(GWBRIDGE_ID, networks)
    assert not is_gwbridge(prefix, networks)  # a network named like the prefix is that network
    assert is_gwbridge(GWBRIDGE_ID[:6], networks)
    assert not is_gwbridge("ab", [])


class _Store:
    def __init__(self, **kinds: list[dict]) -> None:
        self.kinds = kinds

    def list(self, kind: str) -> list[dict]:
        return list(self.kinds.get(kind, []))

    list_shared = list


def _task(task_id: str, service_id: str, desired: str, state: str = "running") -> dict:
    attachment = {"Network": {"ID": "net1"}, "Addresses": [f"10.32.0.{len(task_id) + 2}/24"]}
    return {
        "ID": task_id,
        "ServiceID": service_id,
        "NodeID": "n1",
        "Slot": 1,
        "DesiredState": desired,
        "Status": {"State": state},
        "NetworksAttachments": [attachment],
    }


def test_only_tasks_meant_to_run_are_the_networks_containers() -> None:
    network = network_object("net1", {"Name": "cdnet", "Subnet": "10.32.0.0/24", "Gateway": "10.32.0.1"}, 4097, "now")
    node = {"ID": "n1", "Description": {"Hostname": "swarm00"}, "Status": {"Addr": "10.213.0.10"}}
    store = _Store(
        network=[network],
        node=[node],
        service=[{"ID": "s1", "Spec": {"Name": "web"}}],
        task=[
            _task("t1", "s1", "running"),
            _task("t22", "s1", "shutdown"),  # being stopped by an update or a scale down
            _task("t333", "gone", "running"),  # its service was just removed
            _task("t4444", "s1", "running", state="starting"),
        ],
    )
    shown = view(store, network, "n1")
    assert list(shown["Containers"]) == ["t1"]
    assert shown["Containers"]["t1"]["Name"] == "web.1.t1"
    assert shown["Peers"] == [{"Name": "swarm00", "IP": "10.213.0.10"}]
    assert view(store, network, "other-node")["Containers"] == {}
