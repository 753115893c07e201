"""Names, addresses and paths of the testbed (pure; no side effects)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

PREFIX = "shoal-"
FABRIC_NS = f"{PREFIX}fabric"
CONTROLLER_NS = f"{PREFIX}ctl"
BRIDGE = "underlay"
UNDERLAY = ipaddress.ip_network("10.213.0.0/24")
CONTROLLER_ADDR = "10.213.0.1"
FIRST_HOST_OFFSET = 10
MAX_HOSTS = 90  # .10 .. .99 stay inside the /24 and keep names two digits wide

REPO_ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = REPO_ROOT / ".state" / "testbed"
VENV_BIN = REPO_ROOT / ".venv" / "bin"

# Private per-host folders: (path inside the host, folder name under the host's state dir).
PRIVATE_DIRS = (
    ("/etc/shoal", "etc"),
    ("/var/lib/shoal", "var"),
    ("/opt/shoal", "opt"),
)


@dataclass(frozen=True)
class HostLayout:
    index: int
    name: str
    netns: str
    address: str
    fabric_port: str
    state_dir: Path

    @property
    def run_shoal_dir(self) -> Path:
        """The host's /run/shoal seen from the root namespace (socket and pidfiles)."""
        return self.state_dir / "run"

    @property
    def socket_path(self) -> Path:
        return self.run_shoal_dir / "shoal.sock"

    @property
    def agent_pidfile(self) -> Path:
        return self.run_shoal_dir / "shoald.pid"

    @property
    def agent_log(self) -> Path:
        return self.state_dir / "var" / "shoald.log"


def host_name(index: int) -> str:
    return f"swarm{index:02d}"


def host_layout(index: int, state_dir: Path = STATE_DIR) -> HostLayout:
    if not 0 <= index < MAX_HOSTS:
        raise ValueError(f"host index {index} out of range 0..{MAX_HOSTS - 1}")
    name = host_name(index)
    address = str(UNDERLAY.network_address + FIRST_HOST_OFFSET + index)
    return HostLayout(
        index=index,
        name=name,
        netns=f"{PREFIX}{name}",
        address=address,
        # interface names are limited to 15 characters
        fabric_port=f"v-{name}",
        state_dir=state_dir / "hosts" / name,
    )


def proxy_command() -> str:
    """ssh ProxyCommand that reaches the underlay from the controller namespace (no root route)."""
    return f"ip netns exec {CONTROLLER_NS} nc %h %p"
