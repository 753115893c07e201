"""Pure parts of the dataplane: values the agent hands in, names, peer entries, addresses."""

from __future__ import annotations

import pytest

from shoal.net import links
from shoal.net.gwbridge import Gateway
from shoal.net.model import NetAttachment, Peer, mac_for, sandbox_name
from shoal.net.overlay import desired_entries

NET = {"network_id": "n1", "vni": 4097, "subnet": "10.0.1.0/24", "gateway": "10.0.1.1"}


def test_mac_is_dockers() -> None:
    assert mac_for("10.0.1.5") == "02:42:0a:00:01:05"
    assert mac_for("172.18.0.2/16") == "02:42:ac:12:00:02"


def test_attachment_derives_its_mac_and_checks_addresses() -> None:
    a = NetAttachment(address="10.0.1.5/24", **NET)  # type: ignore[arg-type]
    assert a.mac == "02:42:0a:00:01:05" and a.ip == "10.0.1.5" and a.prefixlen == 24
    assert NetAttachment(address="10.0.1.5/24", mac="02:00:00:00:00:01", **NET).mac == "02:00:00:00:00:01"  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not in subnet"):
        NetAttachment(address="10.0.2.5/24", **NET)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gateway"):
        NetAttachment(**{**NET, "gateway": "10.9.9.1"}, address="10.0.1.5/24")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="VXLAN"):
        NetAttachment(**{**NET, "vni": 0}, address="10.0.1.5/24")  # type: ignore[arg-type]


def test_sandbox_names_follow_libnetwork() -> None:
    assert sandbox_name("1qc6vhwhae7bn8ogw1x3pqwie") == "1-1qc6vhwhae"


def test_peer_entries_skip_local_ones_and_flood_to_each_remote_node() -> None:
    peers = [
        Peer("n1", "10.0.1.6", "02:42:0A:00:01:06", "10.213.0.11"),
        Peer("n1", "10.0.1.7", "02:42:0a:00:01:07", "10.213.0.11"),
        Peer("n1", "10.0.1.8", "02:42:0a:00:01:08", "10.213.0.12"),
        Peer("n1", "10.0.1.9", "02:42:0a:00:01:09", "10.213.0.10"),  # this node: bridged locally
    ]
    fdb, neigh = desired_entries("10.213.0.10", peers)
    assert fdb == {
        ("02:42:0a:00:01:06", "10.213.0.11"),
        ("02:42:0a:00:01:07", "10.213.0.11"),
        ("02:42:0a:00:01:08", "10.213.0.12"),
        ("00:00:00:00:00:00", "10.213.0.11"),
        ("00:00:00:00:00:00", "10.213.0.12"),
    }
    assert neigh == {
        ("10.0.1.6", "02:42:0a:00:01:06"),
        ("10.0.1.7", "02:42:0a:00:01:07"),
        ("10.0.1.8", "02:42:0a:00:01:08"),
    }


def test_link_names_and_aliases() -> None:
    assert links.side_name("ve", "x" * 25) == "ve" + "x" * 13  # IFNAMSIZ
    alias = links.alias_for("task1", "172.18.0.3", "10.0.1.5,10.255.0.5")
    assert links.parse_alias(alias) == ["task1", "172.18.0.3", "10.0.1.5,10.255.0.5"]
    assert links.parse_alias("somebody else's") is None
    assert links.parse_alias(None) is None


def test_gateway_allocation_skips_the_bridge_and_taken_addresses() -> None:
    gw = Gateway("172.18.0.0/16")
    assert gw.address == "172.18.0.1"
    assert gw.allocate(set()) == "172.18.0.2"
    assert gw.allocate({"172.18.0.2", "172.18.0.3"}) == "172.18.0.4"
    small = Gateway("192.168.7.0/30")
    with pytest.raises(OSError, match="no free address"):
        small.allocate({"192.168.7.2"})
    ep = gw.endpoint("t1", "/run/netns/t", "eth2", "172.18.0.9", ["10.0.1.5"])
    assert ep.address == "172.18.0.9/16" and ep.mac == "02:42:ac:12:00:09" and ep.isolated and ep.mtu == 1500
