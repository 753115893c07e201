"""Encrypted overlays, the pure parts built so far: the `ip xfrm` line, the kernel's reason as a
node reports it, and `network create --opt encrypted` refused with the nodes' reasons."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.errors import SpecError
from shoal.manager.control.networks import refuse_encrypted
from shoal.manager.manager import dataplane_description
from shoal.net.xfrm import KEY_BYTES, reason_from, state_add_line


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
    # every kernel could: still refused (the xfrm programming is not built yet), never made unencrypted
    with pytest.raises(SpecError, match="network option 'encrypted' '' is not supported yet"):
        refuse_encrypted(nodes[:1], "")


def test_the_dataplane_field_is_kept_only_in_its_shape() -> None:
    assert dataplane_description({"EncryptedOverlay": False, "Reason": "r" * 500}) == {
        "EncryptedOverlay": False,
        "Reason": "r" * 300,
    }
    assert dataplane_description({"EncryptedOverlay": "yes"}) is None
    assert dataplane_description(None) is None
