"""IPsec ESP for encrypted overlays: can this node's kernel do it?

Encrypted overlays (`network create --opt encrypted`) wrap VXLAN in ESP transport mode with
AES-GCM (`rfc4106(gcm(aes))`), as Docker does. pyroute2 0.9 has no XFRM state/policy API, so the
states are programmed with iproute2's `ip xfrm`, fed on stdin (`ip -batch -`) so that no key is
ever on a command line (/proc/PID/cmdline is world-readable).

The probe adds one throwaway state (random key, documentation addresses) in a scratch network
namespace made for it and removed at once: never in the node's own namespace. Kernels without
ESP answer `Requested type not found`, without GCM `Requested AEAD algorithm not found`
(../shared/notes/dataplane.md); that answer is the reason a node gives in its description.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets

from shoal.net import ns
from shoal.net.model import ESP_ICV_BYTES

AEAD = "rfc4106(gcm(aes))"
ICV_BITS = ESP_ICV_BYTES * 8  # the overlay MTU leaves room for it (model.overlay_mtu)
KEY_BYTES = 20  # AES-128 key and the 4-byte salt, as Docker's keys for rfc4106
PROBE_NETNS = "shoal-xfrm-probe"


def state_add_line(src: str, dst: str, spi: int, key: bytes, reqid: int = 1, verb: str = "add") -> str:
    """One `ip -batch` line adding (or, `verb="update"`, re-keying in place) an ESP transport-mode
    state with AES-GCM (pure; holds the key)."""
    if verb not in ("add", "update"):
        raise ValueError(f"bad verb {verb}")
    if len(key) != KEY_BYTES:
        raise ValueError(f"an {AEAD} key is {KEY_BYTES} bytes, not {len(key)}")
    if not 0 < spi < 1 << 32:
        raise ValueError(f"bad SPI {spi}")
    return (
        f"xfrm state {verb} src {src} dst {dst} proto esp spi 0x{spi:08x} reqid {reqid} mode transport "
        f"aead '{AEAD}' 0x{key.hex()} {ICV_BITS}"
    )


def reason_from(stderr: str) -> str:
    """The kernel's answer, as a node reports it (the key never appears in iproute2's errors)."""
    text = " ".join(stderr.split())
    if "Requested type not found" in text:
        return "the kernel has no IPsec ESP (esp4/xfrm): " + text
    if "AEAD algorithm not found" in text:
        return f"the kernel has no {AEAD}: " + text
    return text or "ip xfrm failed"


@functools.lru_cache(maxsize=1)
def esp_support(netns_dir: str = "/run/netns") -> tuple[bool, str]:
    """(True, "") when this kernel can do ESP with AES-GCM, else (False, why). Probed once per process."""
    name = f"{PROBE_NETNS}-{os.getpid()}"
    try:
        path = ns.create(name, netns_dir)
    except OSError as exc:
        return False, f"could not make a scratch namespace to probe IPsec: {exc}"
    try:
        line = state_add_line("192.0.2.1", "192.0.2.2", 0x100, secrets.token_bytes(KEY_BYTES))
        ns.exec_in(path, ["ip", "-batch", "-"], stdin=line + "\n", timeout=20)
        return True, ""
    except FileNotFoundError:
        return False, "iproute2's ip is not installed"
    except OSError as exc:
        return False, reason_from(str(exc))
    finally:
        with contextlib.suppress(OSError):
            ns.remove(name, netns_dir)
