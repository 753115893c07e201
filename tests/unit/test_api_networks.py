"""The gateway bridge's fixed ID never shadows a swarm network's own ID or name (Docker's order)."""

from __future__ import annotations

from shoal.api.networks import GWBRIDGE_ID, _is_gwbridge


def test_names_and_ids_win_over_the_bridge_id_prefix() -> None:
    prefix = GWBRIDGE_ID[:3]
    networks = [{"ID": "abc123", "Spec": {"Name": prefix}}]
    assert _is_gwbridge("shoal_gwbridge", networks)
    assert _is_gwbridge(GWBRIDGE_ID, networks)
    assert not _is_gwbridge(prefix, networks)  # a network named like the prefix is that network
    assert _is_gwbridge(GWBRIDGE_ID[:6], networks)
    assert not _is_gwbridge("ab", [])
