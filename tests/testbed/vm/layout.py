"""Names, addresses, paths and the QEMU command line of the VM testbed (pure; no side effects).

Same underlay as the namespace testbed (10.213.0.0/24, swarm00 = 10.213.0.10, controller .1), inside
namespaces of its own: both testbeds can be up at once. The prefix is `shoalvm-`, not `shoal-`: the
namespace testbed's `down` removes every `shoal-*` namespace and what runs in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from testbed.layout import CONTROLLER_ADDR, REPO_ROOT, UNDERLAY, host_layout

PREFIX = "shoalvm-"
FABRIC_NS = f"{PREFIX}fabric"  # the bridge, the VMs' taps and the QEMU processes
CONTROLLER_NS = f"{PREFIX}ctl"  # 10.213.0.1: ssh, Ansible's ProxyCommand, curl, the registry
BRIDGE = "underlay"
CONTROLLER_PORT = "v-ctl"
STATE_DIR = REPO_ROOT / ".state" / "testbed-vm"
LOCK_PATH = "/run/lock/shoal-testbed-vm.lock"

QEMU = "qemu-system-x86_64"
VM_MEMORY_MB = 1024
# host memory one VM costs beyond its guest RAM (QEMU with a 128 MB translation cache, notes/vm.md)
VM_OVERHEAD_MB = 256


@dataclass(frozen=True)
class VmLayout:
    index: int
    name: str
    address: str
    tap: str
    mac: str
    state_dir: Path

    @property
    def overlay(self) -> Path:
        return self.state_dir / "disk.qcow2"

    @property
    def serial_log(self) -> Path:
        return self.state_dir / "serial.log"

    @property
    def pidfile(self) -> Path:
        return self.state_dir / "qemu.pid"


def vm_layout(index: int, state_dir: Path = STATE_DIR) -> VmLayout:
    base = host_layout(index)  # same names and addresses as the namespace testbed
    return VmLayout(
        index=index,
        name=base.name,
        address=base.address,
        tap=f"t-{base.name}",
        mac=f"52:54:00:d5:00:{FIRST_MAC_BYTE + index:02x}",
        state_dir=state_dir / "hosts" / base.name,
    )


FIRST_MAC_BYTE = 0x10


def kernel_cmdline(layout: VmLayout, machine_id: str) -> str:
    mask = str(UNDERLAY.netmask)
    return " ".join(
        [
            "root=/dev/vda",
            "rw",
            "console=ttyS0",
            "net.ifnames=0",
            f"systemd.hostname={layout.name}",
            f"systemd.machine_id={machine_id}",
            # no gateway: the VM has no default route (systemd-network-generator turns this into networkd's)
            f"ip={layout.address}:::{mask}::eth0:off",
            "quiet",
            "mitigations=off",
        ]
    )


def qemu_argv(
    layout: VmLayout,
    kernel: Path,
    initrd: Path,
    machine_id: str,
    memory_mb: int = VM_MEMORY_MB,
    clock_offset_s: int = 0,
) -> list[str]:
    """QEMU in software emulation (KVM here is nested PVM and unusable: notes/vm.md)."""
    rtc = "base=utc" if not clock_offset_s else f"base={_rtc_base(clock_offset_s)}"
    return [
        QEMU,
        "-name",
        layout.name,
        "-accel",
        "tcg,thread=multi,tb-size=128",
        "-cpu",
        "max",
        "-m",
        str(memory_mb),
        "-smp",
        "1",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-serial",
        f"file:{layout.serial_log}",
        "-drive",
        f"file={layout.overlay},if=virtio,format=qcow2,cache=unsafe",
        "-netdev",
        f"tap,id=n0,ifname={layout.tap},script=no,downscript=no",
        "-device",
        f"virtio-net-pci,netdev=n0,mac={layout.mac}",
        "-device",
        "virtio-rng-pci",
        "-rtc",
        rtc,
        "-kernel",
        str(kernel),
        "-initrd",
        str(initrd),
        "-append",
        kernel_cmdline(layout, machine_id),
        "-pidfile",
        str(layout.pidfile),
        "-daemonize",
    ]


def _rtc_base(offset_s: int) -> str:
    import datetime

    when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset_s)
    return when.strftime("%Y-%m-%dT%H:%M:%S")


def proxy_command() -> str:
    return f"ip netns exec {CONTROLLER_NS} nc %h %p"


__all__ = ["CONTROLLER_ADDR", "UNDERLAY"]
