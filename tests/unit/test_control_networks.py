"""The gateway bridge's fixed ID never shadows a swarm network's own ID or name (Docker's order)."""

from __future__ import annotations

from shoal.manager.control.networks import is_gwbridge
from shoal.model.network import GWBRIDGE_ID


def test_names_and_ids_win_over_the_bridge_id_prefix() -> None:
    prefix = GWBRIDGE_ID[:3]
    networks = [{"ID": "abc123", "Spec": {"Name": prefix}}]
    assert is_gwbridge("shoal_gwbridge", networks)
    assert is_gwbridge(GWBRIDGE_ID, networks)
    assert not is_gwbridge(prefix, networks)  # a network named like the prefix is that network
    assert is_gwbridge(GWBRIDGE_ID[:6], networks)
    assert not is_gwbridge("ab", [])
