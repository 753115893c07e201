"""Encrypted overlays, the pure parts: the `ip xfrm` lines, the kernel's reason as a node reports
it, `network create --opt encrypted` refused with the nodes' reasons, the key schedule, SPIs, the
nftables rules, the placement filter and the order in which a node moves between key rings."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.errors import SpecError
from shoal.manager import netkeys as netkey_manager
from shoal.manager.control.networks import refuse_encrypted
from shoal.manager.manager import dataplane_description
from shoal.manager.scheduler.filters import EncryptionFilter
from shoal.manager.scheduler.nodeinfo import NodeInfo
from shoal.model import netkeys
from shoal.net import encryption, overlay
from shoal.net.model import NetAttachment, overlay_mtu
from shoal.net.xfrm import KEY_BYTES, reason_from, state_add_line


def _state_listing(src: str, dst: str, spi: int, reqid: int) -> str:
    """One state as iproute2 6.1 prints it with -o (the lines of a state joined by a backslash)."""
    return (
        f"src {src} dst {dst}\\\tproto esp spi 0x{spi:08x} reqid {reqid} mode transport\\\treplay-window 0 \\"
        f"\taead rfc4106(gcm(aes)) 0x{'ab' * KEY_BYTES} 128\\\tanti-replay context: seq 0x0, oseq 0x0\\"
        "\tsel src 0.0.0.0/0 dst 0.0.0.0/0 \\\n"
    )


def _policy_listing(src: str, dst: str, port: int, mark: str | None, spi: int = 0x1234, proto: str = "udp") -> str:
    marked = f"\tmark {mark} \\" if mark else ""
    return (
        f"src {src}/32 dst {dst}/32 proto {proto} dport {port} \\\tdir out priority 0 ptype main \\{marked}"
        f"\ttmpl src {src} dst {dst}\\\t\tproto esp spi 0x{spi:08x} reqid 0 mode transport\\\n"
    )


def test_state_line_is_esp_transport_aes_gcm_with_the_key_in_hex() -> None:
    key = bytes(range(KEY_BYTES))
    line = state_add_line("10.213.0.10", "10.213.0.11", 0xBEEF, key, reqid=7)
    assert line == (
        "xfrm state add src 10.213.0.10 dst 10.213.0.11 proto esp spi 0x0000beef reqid 7 mode transport "
        f"aead 'rfc4106(gcm(aes))' 0x{key.hex()} 128"
    )
    with pytest.raises(ValueError, match="20 bytes, not 16"):
        state_add_line("a", "b", 1, bytes(16))
    with pytest.raises(ValueError, match="bad SPI 0"):
        state_add_line("a", "b", 0, key)


def test_the_kernels_answers_become_reasons() -> None:
    # the answers of this machine's kernel (../shared/notes/dataplane.md)
    assert reason_from("RTNETLINK answers: Requested type not found\n").startswith("the kernel has no IPsec ESP")
    assert reason_from("Requested AEAD algorithm not found").startswith("the kernel has no rfc4106(gcm(aes))")
    assert reason_from("") == "ip xfrm failed"


def _node(name: str, dataplane: dict[str, Any] | None) -> dict[str, Any]:
    desc: dict[str, Any] = {"Hostname": name}
    if dataplane is not None:
        desc["Dataplane"] = dataplane
    return {"ID": name + "-id", "Description": desc}


def test_encrypted_is_refused_with_each_node_that_cannot() -> None:
    nodes = [
        _node("a", {"EncryptedOverlay": True, "Reason": ""}),
        _node("b", {"EncryptedOverlay": False, "Reason": "the kernel has no IPsec ESP (esp4/xfrm): x"}),
        _node("c", None),  # an agent that joined before nodes reported it
    ]
    with pytest.raises(SpecError) as exc:
        refuse_encrypted(nodes, "")
    assert exc.value.status == 400
    assert "this cluster cannot encrypt (b: the kernel has no IPsec ESP (esp4/xfrm): x; c: did not report" in str(
        exc.value.message
    )
    refuse_encrypted(nodes[:1], "")  # every kernel can: created (and encrypted)


def test_the_dataplane_field_is_kept_only_in_its_shape() -> None:
    assert dataplane_description({"EncryptedOverlay": False, "Reason": "r" * 500}) == {
        "EncryptedOverlay": False,
        "Reason": "r" * 300,
    }
    assert dataplane_description({"EncryptedOverlay": "yes"}) is None
    assert dataplane_description(None) is None


# ---- key schedule (model/netkeys.py, manager/netkeys.py)
def _tok(i: int) -> bytes:
    return bytes([i]) * netkeys.KEY_BYTES


def test_ring_rotation_installs_a_key_one_period_before_it_encrypts() -> None:
    ring = netkeys.initial_ring([_tok(1), _tok(2), _tok(3)])
    assert netkeys.tags(ring) == [1, 2, 3]
    assert netkeys.key_bytes(netkeys.primary(ring)) == _tok(2)  # the second newest encrypts
    ring2 = netkeys.rotated(ring, _tok(4))
    assert netkeys.tags(ring2) == [2, 3, 4]  # the oldest dropped, a new newest
    # the key that encrypts now is the one every node has held for a whole period already
    assert netkeys.primary(ring2)["LamportTime"] == 3
    assert netkeys.primary(ring2)["LamportTime"] in netkeys.tags(ring)
    # the key that encrypted before is still in the ring (grace: peers still sending with it)
    assert netkeys.primary(ring)["LamportTime"] in netkeys.tags(ring2)
    with pytest.raises(ValueError, match="20 bytes"):
        netkeys.new_key(1, b"short")


def test_rotation_is_due_after_a_period_and_on_a_clock_gone_back() -> None:
    assert netkeys.due(None, 100.0, 10.0)
    assert not netkeys.due(100.0, 109.9, 10.0)
    assert netkeys.due(100.0, 110.0, 10.0)
    assert netkeys.due(100.0, 50.0, 10.0)  # a timestamp from the future is not trusted


def test_key_manager_creates_then_rotates_the_ring_only_when_due() -> None:
    first = netkey_manager.key_change(None, 1000.0, 60.0)
    assert first is not None and first.op == "create" and first.kind == "meta"
    meta = {**first.obj, "Version": {"Index": 5}}
    assert netkeys.tags(meta["Keys"]) == [1, 2, 3] and meta["RotatedAt"] == 1000.0
    assert netkey_manager.key_change(meta, 1059.0, 60.0) is None
    rot = netkey_manager.key_change(meta, 1060.0, 60.0)
    assert rot is not None and rot.op == "update" and rot.expected_version == 5
    assert netkeys.tags(rot.obj["Keys"]) == [2, 3, 4] and rot.obj["RotatedAt"] == 1060.0
    assert rot.obj["Keys"][:2] == meta["Keys"][1:]  # kept keys are the same keys


def test_spi_is_libnetworks_fnv_and_differs_per_direction_and_key() -> None:
    # FNV-1a 32 over 10.0.0.1 | tag 1 | 10.0.0.2, computed independently of the module
    data = bytes([10, 0, 0, 1, 0, 0, 0, 1, 10, 0, 0, 2])
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) % (1 << 32)
    assert netkeys.spi("10.0.0.1", "10.0.0.2", 1) == h
    spis = {netkeys.spi(a, b, t) for a, b in (("10.0.0.1", "10.0.0.2"), ("10.0.0.2", "10.0.0.1")) for t in (1, 2)}
    assert len(spis) == 4 and all(s > 255 for s in spis)


def test_a_received_ring_is_taken_whole_or_not_at_all() -> None:
    ring = netkeys.initial_ring([_tok(1), _tok(2), _tok(3)])
    assert netkeys.valid_ring(ring) == ring
    assert netkeys.valid_ring([*ring, {"LamportTime": 9, "Key": "AAAA"}]) == []
    assert netkeys.valid_ring(None) == [] and netkeys.valid_ring("x") == []


# ---- what a node programs (net/encryption.py)
ME, P1, P2 = "10.213.1.10", "10.213.1.11", "10.213.1.12"


def test_plan_has_a_state_each_way_per_peer_and_key_and_a_policy_on_the_primary() -> None:
    ring = netkeys.initial_ring([_tok(1), _tok(2), _tok(3)])
    plan = encryption.plan(ME, [P1, P2, ME], [4097], 4789, ring)
    assert len(plan.states) == 2 * 2 * 3  # peers x directions x keys; never a state to itself
    assert plan.states[(ME, P1, netkeys.spi(ME, P1, 2))] == _tok(2)
    assert plan.states[(P2, ME, netkeys.spi(P2, ME, 3))] == _tok(3)
    assert plan.policies == {P1: netkeys.spi(ME, P1, 2), P2: netkeys.spi(ME, P2, 2)}
    assert plan.vnis == {4097}
    assert "states" not in repr(plan) and _tok(2).hex() not in repr(plan)  # keys are kept out of logs
    # nothing encrypted, no keys, or no peer: nothing at all (not even the rules)
    for empty in (
        encryption.plan(ME, [P1], [], 4789, ring),
        encryption.plan(ME, [P1], [4097], 4789, []),
        encryption.plan(ME, [ME], [4097], 4789, ring),
    ):
        assert (empty.states, empty.policies, empty.vnis) == ({}, {}, frozenset())


def test_policy_selects_only_marked_vxlan_to_the_peer_and_uses_the_primarys_spi() -> None:
    line = encryption.policy_update_line(ME, P1, 4789, 0x1234ABCD)
    assert line == (
        f"xfrm policy update src {ME}/32 dst {P1}/32 proto udp dport 4789 dir out mark 0x5e0a1c mask 0xffffffff "
        f"tmpl src {ME} dst {P1} proto esp spi 0x1234abcd reqid {encryption.REQID} mode transport"
    )
    assert encryption.policy_delete_line(ME, P1, 4789).startswith(f"xfrm policy delete src {ME}/32 dst {P1}/32")
    assert (
        encryption.state_delete_line((ME, P1, 0x100)) == f"xfrm state delete src {ME} dst {P1} proto esp spi 0x00000100"
    )


def test_nft_rules_mark_encrypted_vnis_out_and_drop_them_unencrypted_in() -> None:
    cmds = encryption.ruleset([4099, 4097], 7789)
    rules = [c["add"]["rule"] for c in cmds if "rule" in c.get("add", {})]
    chains = {c["add"]["chain"]["name"]: c["add"]["chain"] for c in cmds if "chain" in c.get("add", {})}
    assert chains["mark"]["type"] == "route" and chains["mark"]["hook"] == "output"  # re-routes: xfrm sees the mark
    assert chains["plain_in"]["hook"] == "input"
    vni = {
        "match": {
            "op": "==",
            "left": {"payload": {"base": "th", "offset": 96, "len": 24}},
            "right": {"set": [4097, 4099]},
        }
    }
    port = {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 7789}}
    mark_rule, drop_rule = rules
    assert mark_rule["expr"] == [port, vni, {"mangle": {"key": {"meta": {"key": "mark"}}, "value": encryption.MARK}}]
    assert drop_rule["expr"] == [
        port,
        vni,
        {"match": {"op": "==", "left": {"meta": {"key": "secpath"}}, "right": False}},
        {"drop": None},
    ]
    assert encryption.ruleset([], 4789) == []


def test_errors_are_scrubbed_of_key_material() -> None:
    key = _tok(7).hex()
    assert key not in encryption.scrub(f'Error: argument "0x{key}" is wrong: ALGO-KEYMAT value is invalid')
    assert (
        encryption.scrub("Error: Requested AEAD algorithm not found.") == "Error: Requested AEAD algorithm not found."
    )


class RecordingEncryption(encryption.Encryption):
    def __init__(self) -> None:
        super().__init__(ME)
        self.batches: list[list[str]] = []
        self.kernel = {"state": "", "policy": ""}  # what `ip -o xfrm ... list` answers

    def _apply(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(encryption, "run_batch", lambda _ns, lines, force=False: self.batches.append(list(lines)))
        monkeypatch.setattr(encryption.ns, "exec_in", lambda _ns, argv, **_: self.kernel[argv[3]])
        monkeypatch.setattr(encryption.nft, "apply", lambda _ns, cmds: self.batches.append(["nft " + str(len(cmds))]))
        monkeypatch.setattr(encryption.nft, "delete_table", lambda _ns, name: self.batches.append(["nft delete"]))


def test_a_rotation_adds_the_new_key_then_moves_the_policy_then_removes_the_old(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    enc = RecordingEncryption()
    enc._apply(monkeypatch)
    ring = netkeys.initial_ring([_tok(1), _tok(2), _tok(3)])
    enc.program(encryption.plan(ME, [P1], [4097], 4789, ring))
    assert enc.batches[0] == []  # the sweep of a first program: the kernel holds nothing of shoal's
    assert len(enc.batches[1]) == 6 and all(line.startswith("xfrm state add") for line in enc.batches[1])
    assert enc.batches[2] == [encryption.policy_update_line(ME, P1, 4789, netkeys.spi(ME, P1, 2))]
    assert enc.batches[3] == [f"nft {len(encryption.ruleset([4097], 4789))}"]  # the rules last
    enc.batches.clear()
    enc.program(encryption.plan(ME, [P1], [4097], 4789, netkeys.rotated(ring, _tok(4))))
    adds, policy, gone_policies, deletes = enc.batches  # no nft change: the VNIs are the same
    assert {line.split(" spi ")[1][:10] for line in adds} == {
        f"0x{netkeys.spi(a, b, 4):08x}" for a, b in ((ME, P1), (P1, ME))
    }  # only the new key's two states
    assert all(_tok(4).hex() in line for line in adds)
    assert policy == [encryption.policy_update_line(ME, P1, 4789, netkeys.spi(ME, P1, 3))]
    assert gone_policies == []
    assert sorted(deletes) == sorted(
        encryption.state_delete_line(s) for s in ((ME, P1, netkeys.spi(ME, P1, 1)), (P1, ME, netkeys.spi(P1, ME, 1)))
    )
    enc.batches.clear()
    enc.program(encryption.plan(ME, [], [], 4789, netkeys.rotated(ring, _tok(4))))  # the network is gone
    adds, policy, nft_delete, gone_policies, deletes, swept, nft_delete_again = enc.batches
    assert adds == [] and policy == [] and nft_delete == nft_delete_again == ["nft delete"]
    assert gone_policies == [encryption.policy_delete_line(ME, P1, 4789)]
    assert len(deletes) == 6
    assert swept == []  # the set became empty: the kernel was listed again (and held nothing more)
    enc.batches.clear()
    enc.program(encryption.plan(ME, [], [], 4789, ring))
    assert enc.batches == []  # still nothing: no `ip` run


def test_a_node_without_esp_gets_no_task_on_an_encrypted_network() -> None:
    net = {"Spec": {"Name": "secure", "DriverConfiguration": {"Options": {"encrypted": ""}}}}
    plain = {"Spec": {"Name": "plain", "DriverConfiguration": {"Options": {}}}}
    task = {"NetworksAttachments": [{"Network": plain}, {"Network": net}]}
    f = EncryptionFilter()
    assert f.set_task(task) and f.key == ["secure"]
    assert not f.set_task({"NetworksAttachments": [{"Network": plain}]})
    f.set_task(task)
    able = NodeInfo(_node("a", {"EncryptedOverlay": True, "Reason": ""}), [])
    unable = NodeInfo(_node("b", {"EncryptedOverlay": False, "Reason": "no esp"}), [])
    assert f.check(able) and not f.check(unable) and not f.check(NodeInfo(_node("c", None), []))
    assert f.explain(2) == "no IPsec ESP with AES-GCM for encrypted networks on 2 nodes"


def test_a_failed_batch_makes_the_next_program_start_from_the_kernels_list(monkeypatch: pytest.MonkeyPatch) -> None:
    enc = RecordingEncryption()
    enc._apply(monkeypatch)
    ring = netkeys.initial_ring([_tok(1), _tok(2), _tok(3)])
    want = encryption.plan(ME, [P1], [4097], 4789, ring)

    def fail_on_adds(_ns: object, lines: list[str], force: bool = False) -> None:
        if lines and lines[0].startswith("xfrm state add"):
            raise OSError("ip xfrm: Error: File exists")
        enc.batches.append(list(lines))

    monkeypatch.setattr(encryption, "run_batch", fail_on_adds)
    with pytest.raises(OSError, match="File exists"):
        enc.program(want)
    enc._apply(monkeypatch)
    enc.batches.clear()
    half = sorted(want.states)[0]  # the failed batch had added one state: the kernel says so
    enc.kernel["state"] = _state_listing(*half, reqid=encryption.REQID)
    enc.program(want)
    assert enc.batches[0] == []  # it is wanted: nothing to delete...
    assert [line.split()[2] for line in enc.batches[1]] == ["update"] + ["add"] * 5  # ...it is re-keyed in place
    assert enc.batches[1][0].startswith(f"xfrm state update src {half[0]} dst {half[1]} proto esp spi 0x{half[2]:08x}")


class MetaStore:
    def __init__(self, meta: dict[str, Any] | None) -> None:
        self.meta = meta

    def get(self, kind: str, obj_id: str) -> dict[str, Any] | None:
        return self.meta if (kind, obj_id) == ("meta", netkey_manager.NETWORK_KEYS_ID) else None


def test_nodes_get_the_ring_only_while_an_encrypted_network_exists() -> None:
    from shoal.manager.assignments import network_keys

    first = netkey_manager.key_change(None, 0.0, 60.0)
    assert first is not None
    store = MetaStore(first.obj)
    plain = {"Spec": {"Name": "plain", "DriverConfiguration": {"Options": {}}}}
    secure = {"Spec": {"Name": "secure", "DriverConfiguration": {"Options": {"encrypted": ""}}}}
    assert network_keys(store, [plain]) == []  # type: ignore[arg-type]
    assert network_keys(store, [plain, secure]) == first.obj["Keys"]  # type: ignore[arg-type]
    assert network_keys(MetaStore(None), [secure]) == []  # type: ignore[arg-type]


def _underlay_packet_bytes(inner_ip_packet: int, encrypted: bool) -> int:
    """What a task's IP packet of this size becomes on the underlay, counted field by field (RFC 7348
    for VXLAN, RFC 4303 and 4106 for ESP), independently of the constants in net/model.py."""
    udp_payload = 8 + 14 + inner_ip_packet  # VXLAN header + inner Ethernet + the packet
    if not encrypted:
        return 20 + 8 + udp_payload
    esp_payload = 8 + udp_payload  # transport mode: the UDP header is protected too
    padded = esp_payload + 2  # pad length + next header...
    padded += -padded % 4  # ...aligned to 4 bytes
    return 20 + 4 + 4 + 8 + padded + 16  # IPv4 + SPI + sequence + IV + payload/trailer + 16-byte ICV


@pytest.mark.parametrize("encrypted", [False, True])
def test_the_overlay_mtu_is_the_largest_packet_that_is_not_fragmented_on_a_1500_underlay(encrypted: bool) -> None:
    mtu = overlay_mtu(encrypted)
    assert _underlay_packet_bytes(mtu, encrypted) <= 1500 < _underlay_packet_bytes(mtu + 1, encrypted)
    assert (mtu, encrypted) in ((1450, False), (1416, True))
    att = NetAttachment("n1", 4097, "10.0.1.0/24", "10.0.1.1", "10.0.1.5/24", encrypted=encrypted)
    assert att.mtu == mtu
    assert overlay.endpoint("/run/netns/1-n1", "t1", "/run/netns/task-t1", "eth0", att).mtu == mtu


def test_only_shoals_own_states_and_policies_are_picked_out_of_the_kernels_lists() -> None:
    states = (
        _state_listing(ME, P1, 0x11, encryption.REQID)
        + _state_listing(P1, ME, 0x12, encryption.REQID)
        + _state_listing(ME, P2, 0x13, 0xD0C4E3)  # Docker's reqid
        + _state_listing(ME, P2, 0x14, 1)  # someone else's
    )
    assert encryption.owned_states(states) == {(ME, P1, 0x11), (P1, ME, 0x12)}
    assert "ab" * KEY_BYTES not in repr(encryption.owned_states(states))
    policies = (
        _policy_listing(ME, P1, 4789, "0x5e0a1c/0xffffffff")
        + _policy_listing(ME, P2, 4790, "0x005e0a1c/0xffffffff")  # zero-padded by some iproute2 versions
        + _policy_listing(ME, P2, 4789, "0xd0c4e3/0xffffffff")  # Docker's mark
        + _policy_listing(ME, P2, 4789, "0x5e0a1c/0x00ffffff")  # another mask: not one shoal makes
        + _policy_listing(ME, P2, 4789, None)  # unmarked
        + _policy_listing(ME, P2, 500, "0x5e0a1c/0xffffffff", proto="tcp")
    )
    assert encryption.owned_policies(policies) == {(ME, P1, 4789), (ME, P2, 4790)}


def test_a_restart_after_a_crash_deletes_what_the_plan_does_not_want_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ring = netkeys.initial_ring([_tok(1), _tok(2), _tok(3)])
    want = encryption.plan(ME, [P1], [4097], 4789, ring)
    kept = sorted(want.states)[1]
    left = {(ME, P2, 0x77), (P2, ME, 0x78), kept}  # P2's network was removed while the agent was down
    enc = RecordingEncryption()
    enc._apply(monkeypatch)
    enc.kernel["state"] = "".join(_state_listing(*sid, reqid=encryption.REQID) for sid in sorted(left))
    enc.kernel["state"] += _state_listing(ME, P2, 0x99, reqid=1)  # not shoal's
    enc.kernel["policy"] = _policy_listing(ME, P2, 4789, "0x5e0a1c/0xffffffff") + _policy_listing(
        ME, P1, 4789, "0x5e0a1c/0xffffffff"
    )
    enc.kernel["policy"] += _policy_listing(ME, P2, 4789, "0xd0c4e3/0xffffffff")
    assert encryption.stale_lines(
        encryption.owned_states(enc.kernel["state"]), encryption.owned_policies(enc.kernel["policy"]), ME, want
    ) == [
        encryption.policy_delete_line(ME, P2, 4789),  # policies before their states
        encryption.state_delete_line((ME, P2, 0x77)),
        encryption.state_delete_line((P2, ME, 0x78)),
    ]
    enc.program(want)
    assert enc.batches[0] == encryption.stale_lines(
        encryption.owned_states(enc.kernel["state"]), encryption.owned_policies(enc.kernel["policy"]), ME, want
    )
    assert sum(line.startswith("xfrm state update") for line in enc.batches[1]) == 1
    # the whole set gone while the agent was down: everything of shoal's goes, the table too
    enc2 = RecordingEncryption()
    enc2._apply(monkeypatch)
    enc2.kernel = enc.kernel
    enc2.program(encryption.Plan({}, {}, frozenset(), 4789))
    swept, nft_delete = enc2.batches
    assert sorted(swept) == sorted(
        [encryption.state_delete_line(s) for s in left] + [encryption.policy_delete_line(ME, p, 4789) for p in (P1, P2)]
    )
    assert nft_delete == ["nft delete"] and not any("0x00000099" in line or "d0c4e3" in line for line in swept)
    enc2.batches.clear()
    enc2.program(encryption.Plan({}, {}, frozenset(), 4789))
    assert enc2.batches == []  # swept once: the next empty plan runs nothing


def test_a_kernel_without_xfrm_has_nothing_to_sweep_unless_something_is_wanted(monkeypatch: pytest.MonkeyPatch) -> None:
    enc = RecordingEncryption()
    enc._apply(monkeypatch)

    def no_xfrm(_ns: object, argv: list[str], **_: object) -> str:
        raise OSError("RTNETLINK answers: Protocol not supported")

    monkeypatch.setattr(encryption.ns, "exec_in", no_xfrm)
    enc.program(encryption.Plan({}, {}, frozenset(), 4789))
    assert enc.batches == []  # nothing listed, nothing deleted, no error
    ring = netkeys.initial_ring([_tok(1), _tok(2), _tok(3)])
    with pytest.raises(OSError, match="Protocol not supported"):
        RecordingEncryption().program(encryption.plan(ME, [P1], [4097], 4789, ring))
