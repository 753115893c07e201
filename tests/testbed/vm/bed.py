"""The VM testbed: N Debian 12 VMs under QEMU (software emulation) on one bridge in a namespace.

Same verbs as the namespace testbed (testbed.bed.Testbed). Everything it makes is named `shoalvm-*`
(namespaces; the bridge and taps live inside them) or lives under .state/testbed-vm/, and the QEMU
pids are in the state file, so `down` removes all of it after a crash too. Nothing goes to the root
namespace; the VMs have no default route.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyroute2 import NetNS, netns

from testbed import procs
from testbed.bed import TestbedError
from testbed.inventory import render_ansible_cfg, render_inventory
from testbed.nsexec import call_in_netns
from testbed.vm import image as vm_image
from testbed.vm.layout import (
    BRIDGE,
    CONTROLLER_ADDR,
    CONTROLLER_NS,
    CONTROLLER_PORT,
    FABRIC_NS,
    PREFIX,
    QEMU,
    STATE_DIR,
    UNDERLAY,
    VM_MEMORY_MB,
    VM_OVERHEAD_MB,
    VmLayout,
    proxy_command,
    qemu_argv,
    vm_layout,
)

# A guest boots in ~2 minutes on an idle machine (notes/vm.md); others share the CPU.
SSH_DEADLINE_S = float(os.environ.get("SHOAL_VM_SSH_DEADLINE", "900"))

# Inventory variables for slow guests (software emulation is 15-25x slower than the host).
SLOW_GUEST_VARS = {
    # the VMs have no package source: the image has every package, the role must not try apt
    "agent_install_packages": False,
    # a guest gets a third of a core at best, under emulation: a heartbeat or a TLS handshake can take
    # seconds, and a node is down after three missed heartbeats
    "agent_heartbeat_period": 10.0,
    "agent_start_timeout": 300,
    # an API call that does real work in the agent (swarm init: keys and Raft; join: a certificate) took over
    # the modules' default 60 s with the machine busy (load 10-12)
    "shoal_api_timeout": 600,
    "agent_election_timeout": 5.0,
    # encrypted overlays' keys rotate every 30 s, so that verify_encrypted.yml sees rotations
    "agent_network_key_rotation": 30,
    "cluster_wait_timeout": 900,
    "stack_wait_timeout": 900,
}


@dataclass
class VmState:
    name: str
    index: int
    machine_id: str
    qemu_pid: int = 0
    clock_offset_s: int = 0


@dataclass
class VmBedState:
    managers: int = 1
    image: str = ""
    hosts: list[VmState] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> VmBedState | None:
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return cls(
            managers=raw.get("managers", 1),
            image=raw.get("image", ""),
            hosts=[VmState(**h) for h in raw.get("hosts", [])],
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        body = {"managers": self.managers, "image": self.image, "hosts": [vars(h) for h in self.hosts]}
        tmp.write_text(json.dumps(body, indent=2))
        tmp.replace(path)


def check_host(count: int, memory_mb: int = VM_MEMORY_MB, meminfo: str | None = None) -> None:
    """Refuse before anything starts: QEMU missing, or not enough free memory for `count` VMs."""
    for tool in (QEMU, "qemu-img"):
        if not shutil.which(tool):
            raise TestbedError(f"{tool} is not installed (make setup-vm installs qemu-system-x86 and qemu-utils)")
    if meminfo is None:
        meminfo = Path("/proc/meminfo").read_text()
    available_kb = next(int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemAvailable:"))
    needed_mb = count * (memory_mb + VM_OVERHEAD_MB)
    if available_kb // 1024 < needed_mb:
        raise TestbedError(
            f"{count} VMs need about {needed_mb} MB of free memory ({memory_mb} MB guest + {VM_OVERHEAD_MB} MB QEMU "
            f"each); this machine has {available_kb // 1024} MB available"
        )


class VmTestbed:
    __test__ = False
    backend = "vm"
    controller_ns = CONTROLLER_NS

    def __init__(self, state_dir: Path = STATE_DIR, log=sys.stderr) -> None:
        self.state_dir = state_dir
        self.state_file = state_dir / "state.json"
        self.ssh_dir = state_dir / "ssh"
        self.ansible_dir = state_dir / "ansible"
        self.log = log

    # ---- paths
    @property
    def inventory_path(self) -> Path:
        return self.state_dir / "inventory.yml"

    @property
    def ansible_cfg_path(self) -> Path:
        return self.state_dir / "ansible.cfg"

    @property
    def client_key(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    def state(self) -> VmBedState | None:
        return VmBedState.load(self.state_file)

    def hosts(self) -> list[VmLayout]:
        st = self.state()
        return [vm_layout(h.index, self.state_dir) for h in st.hosts] if st else []

    def host(self, name: str) -> VmLayout:
        for h in self.hosts():
            if h.name == name:
                return h
        raise TestbedError(f"no such VM: {name} (is the vm testbed up?)")

    def _vm_state(self, name: str) -> VmState:
        st = self.state()
        for h in st.hosts if st else []:
            if h.name == name:
                return h
        raise TestbedError(f"no such VM: {name} (is the vm testbed up?)")

    def _say(self, msg: str) -> None:
        print(f"testbed vm: {msg}", file=self.log, flush=True)

    # ---- up / down
    def healthy(self) -> bool:
        st = self.state()
        if not st or not st.hosts:
            return False
        live = set(netns.listnetns())
        return (
            FABRIC_NS in live
            and CONTROLLER_NS in live
            and all(procs.alive(h.qemu_pid) and self._answers(vm_layout(h.index).address, 22) for h in st.hosts)
        )

    def up(self, count: int = 3, managers: int = 1, clock_offsets: dict[int, int] | None = None) -> VmBedState:
        if count < 1:
            raise TestbedError("at least one host is needed")
        if not 1 <= managers <= count:
            raise TestbedError(f"managers must be between 1 and {count}")
        st = self.state()
        if st and len(st.hosts) == count and self.healthy():
            if st.managers != managers:
                st.managers = managers
                st.save(self.state_file)
                self._write_ansible_files(st)
            return st
        check_host(count)  # before anything is torn down or started
        self.down()
        try:
            return self._up(count, managers, clock_offsets or {})
        except BaseException:
            self.down()
            raise

    def _up(self, count: int, managers: int, clock_offsets: dict[int, int]) -> VmBedState:
        started = time.monotonic()
        image = vm_image.ensure_image(log=self.log)
        self._say(f"image {image.dir} ready after {time.monotonic() - started:.0f} s")
        for old in vm_image.prune_images(image):
            self._say(f"removed {old} (an earlier recipe)")
        layouts = [vm_layout(i, self.state_dir) for i in range(count)]
        st = VmBedState(
            managers=managers,
            image=str(image.dir),
            hosts=[
                VmState(
                    name=h.name,
                    index=h.index,
                    machine_id=secrets.token_hex(16),
                    clock_offset_s=clock_offsets.get(h.index, 0),
                )
                for h in layouts
            ],
        )
        st.save(self.state_file)  # from here on, down() cleans up whatever happens
        self.ssh_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(image.key, self.client_key)
        self.client_key.chmod(0o600)
        self.known_hosts.write_text("")
        self._build_network(layouts)
        booting = time.monotonic()
        for layout, hstate in zip(layouts, st.hosts, strict=True):
            hstate.qemu_pid = self._start_vm(layout, image, hstate)
            st.save(self.state_file)
        for layout in layouts:
            self._wait_ssh(layout, booting + SSH_DEADLINE_S)
            self._say(f"{layout.name} answers ssh after {time.monotonic() - booting:.0f} s")
        self._write_ansible_files(st)
        return st

    def down(self) -> None:
        st = self.state()
        roots: list[int] = []
        for h in st.hosts if st else []:
            roots.append(h.qemu_pid)
            roots.append(procs.read_pidfile(vm_layout(h.index, self.state_dir).pidfile) or 0)
        ours = [n for n in netns.listnetns() if n.startswith(PREFIX)]
        for name in ours:
            roots += procs.pids_in_netns(Path("/run/netns") / name)
        # QEMU stops on SIGTERM at once (the disks are throwaway overlays)
        procs.stop(procs.descendants([p for p in roots if procs.alive(p)]), grace=5.0)
        for name in ours:
            try:
                netns.remove(name)
            except OSError as exc:
                raise TestbedError(f"could not remove namespace {name}: {exc}") from exc
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)

    # ---- pieces of up()
    def _build_network(self, layouts: list[VmLayout]) -> None:
        for name in (FABRIC_NS, CONTROLLER_NS):
            netns.create(name)
        with NetNS(FABRIC_NS) as fabric:
            fabric.link("add", ifname=BRIDGE, kind="bridge")
            bridge = fabric.link_lookup(ifname=BRIDGE)[0]
            fabric.link("set", index=bridge, state="up")
            fabric.link("set", index=fabric.link_lookup(ifname="lo")[0], state="up")
            fabric.link("add", ifname=CONTROLLER_PORT, kind="veth", peer={"ifname": "eth0", "net_ns_fd": CONTROLLER_NS})
            port = fabric.link_lookup(ifname=CONTROLLER_PORT)[0]
            fabric.link("set", index=port, master=bridge, state="up")
            for h in layouts:
                fabric.link("add", ifname=h.tap, kind="tuntap", mode="tap")
                tap = fabric.link_lookup(ifname=h.tap)[0]
                fabric.link("set", index=tap, master=bridge, state="up")
        with NetNS(CONTROLLER_NS) as ctl:
            eth = ctl.link_lookup(ifname="eth0")[0]
            ctl.addr("add", index=eth, address=CONTROLLER_ADDR, prefixlen=UNDERLAY.prefixlen)
            ctl.link("set", index=eth, state="up")
            ctl.link("set", index=ctl.link_lookup(ifname="lo")[0], state="up")

    def _start_vm(self, layout: VmLayout, image: vm_image.Image, hstate: VmState) -> int:
        layout.state_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(image.base), str(layout.overlay)],
            check=True,
            capture_output=True,
        )
        argv = qemu_argv(layout, image.kernel, image.initrd, hstate.machine_id, clock_offset_s=hstate.clock_offset_s)
        # the taps are in the fabric namespace: QEMU opens its tap there
        result = subprocess.run(
            ["ip", "netns", "exec", FABRIC_NS, *argv], capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
        if result.returncode != 0:
            raise TestbedError(f"QEMU for {layout.name} did not start: {result.stderr.strip()}")
        pid = procs.read_pidfile(layout.pidfile)
        if not procs.alive(pid):
            raise TestbedError(f"QEMU for {layout.name} exited at once; serial console:\n{self.serial_tail(layout)}")
        assert pid is not None
        return pid

    def serial_tail(self, layout: VmLayout, lines: int = 30) -> str:
        try:
            text = layout.serial_log.read_text(errors="replace")
        except OSError:
            return "(no serial console output)"
        return "\n".join(text.replace("\r", "").splitlines()[-lines:])

    def _answers(self, address: str, port: int, timeout: float = 15.0) -> bool:
        def probe() -> bool:
            try:
                with socket.create_connection((address, port), timeout=timeout) as conn:
                    conn.settimeout(timeout)
                    return conn.recv(4).startswith(b"SSH") if port == 22 else True
            except OSError:
                return False

        try:
            return call_in_netns(CONTROLLER_NS, probe, timeout + 5)
        except (FileNotFoundError, TimeoutError):
            return False

    def _wait_ssh(self, layout: VmLayout, deadline: float) -> None:
        pid = self._vm_state(layout.name).qemu_pid
        while time.monotonic() < deadline:
            if not procs.alive(pid):
                raise TestbedError(
                    f"{layout.name}: QEMU exited; the end of its serial console:\n{self.serial_tail(layout)}"
                )
            if self._answers(layout.address, 22) and self._ssh_ok(layout.name):
                return
            time.sleep(2)
        raise TestbedError(
            f"{layout.name} ({layout.address}) does not answer ssh after {SSH_DEADLINE_S:.0f} s; "
            f"the end of its serial console ({layout.serial_log}):\n{self.serial_tail(layout)}"
        )

    def _ssh_ok(self, name: str) -> bool:
        try:
            return self.run(name, ["true"], timeout=60).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def _write_ansible_files(self, st: VmBedState) -> None:
        layouts = [vm_layout(h.index, self.state_dir) for h in st.hosts]
        self.ansible_dir.mkdir(parents=True, exist_ok=True)
        self.inventory_path.write_text(
            render_inventory(
                layouts,  # type: ignore[arg-type]
                st.managers,
                self.client_key,
                self.known_hosts,
                proxy=proxy_command(),
                extra_vars=SLOW_GUEST_VARS,
            )
        )
        self.ansible_cfg_path.write_text(
            render_ansible_cfg(self.inventory_path, self.ansible_dir, persist_s=300, connect_timeout_s=120)
        )

    # ---- using the hosts
    def _ssh_base(self) -> list[str]:
        return [
            "ip",
            "netns",
            "exec",
            CONTROLLER_NS,
            "ssh",
            "-i",
            str(self.client_key),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=30",
            # a handshake costs ~2 s against an emulated CPU: keep one connection per VM
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={self.ssh_dir}/cm-%h",
            "-o",
            "ControlPersist=120s",
        ]

    def exec_argv(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> list[str]:
        envs = [f"{k}={shlex.quote(v)}" for k, v in (env or {}).items()]
        remote = " ".join(["env", *envs, shlex.join(argv)]) if envs else shlex.join(argv)
        return [*self._ssh_base(), f"root@{self.host(name).address}", remote]

    def ssh_argv(self, name: str, argv: list[str]) -> list[str]:
        return [*self._ssh_base(), f"root@{self.host(name).address}", *argv]

    def run(
        self, name: str, argv: list[str], *, check: bool = False, timeout: float = 120, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.exec_argv(name, argv),
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    # ---- agents (systemd in the VM) and faults
    def agent_log_hint(self, name: str) -> str:
        return f"journalctl -u shoald on {name}"

    def start_agent(self, name: str, extra: list[str] | None = None) -> int:
        if extra:
            raise TestbedError("the vm backend runs shoald as the systemd unit: no extra arguments")
        result = self.run(name, ["systemctl", "start", "shoald"])
        if result.returncode != 0:
            raise TestbedError(f"systemctl start shoald on {name}: {result.stderr.strip()}")
        pid = self.agent_pid(name)
        if not pid:
            raise TestbedError(f"shoald on {name} is not running after systemctl start")
        return pid

    def agent_pid(self, name: str) -> int | None:
        result = self.run(name, ["systemctl", "show", "--property=MainPID", "--value", "shoald"])
        with contextlib.suppress(ValueError):
            pid = int(result.stdout.strip())
            return pid or None
        return None

    def stop_agent(self, name: str, kill: bool = False, grace: float = 10.0) -> bool:
        if not self.agent_pid(name):
            return False
        # kill: SIGKILL to the main process, as a crash; systemd restarts it (Restart=on-failure)
        argv = (
            ["systemctl", "kill", "--signal=KILL", "--kill-whom=main", "shoald"]
            if kill
            else ["systemctl", "stop", "shoald"]
        )
        result = self.run(name, argv)
        if result.returncode != 0:
            raise TestbedError(f"{' '.join(argv)} on {name}: {result.stderr.strip()}")
        return True

    def set_link(self, name: str, up: bool) -> None:
        layout = self.host(name)
        with NetNS(FABRIC_NS) as fabric:
            fabric.link("set", index=fabric.link_lookup(ifname=layout.tap)[0], state="up" if up else "down")

    def link_up(self, name: str) -> bool:
        layout = self.host(name)
        with NetNS(FABRIC_NS) as fabric:
            link = fabric.get_links(fabric.link_lookup(ifname=layout.tap)[0])[0]
            return bool(link["flags"] & 1)

    def reboot(self, name: str) -> float:
        """A real reboot (systemctl reboot in the guest; QEMU restarts it). Returns seconds until ssh answers."""
        layout = self.host(name)
        started = time.monotonic()
        machine = self.run(name, ["cat", "/proc/sys/kernel/random/boot_id"], check=True).stdout.strip()
        # the command returns or the connection drops: either way the guest goes down
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.run(name, ["systemctl", "reboot"], timeout=30)
        # the connection master talks to the old boot: close it
        subprocess.call([*self._ssh_base(), "-O", "exit", f"root@{layout.address}"], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + SSH_DEADLINE_S
        while time.monotonic() < deadline:
            time.sleep(3)
            if not self._answers(layout.address, 22):
                continue
            try:
                result = self.run(name, ["cat", "/proc/sys/kernel/random/boot_id"], timeout=60)
            except subprocess.TimeoutExpired:
                continue
            if result.returncode == 0 and result.stdout.strip() not in ("", machine):
                return time.monotonic() - started
        raise TestbedError(f"{name} did not come back after reboot; serial console:\n{self.serial_tail(layout)}")

    def status(self) -> list[dict[str, object]]:
        st = self.state()
        rows = []
        for h in st.hosts if st else []:
            layout = vm_layout(h.index, self.state_dir)
            running = procs.alive(h.qemu_pid)
            sshd = running and self._answers(layout.address, 22)
            rows.append(
                {
                    "name": h.name,
                    "address": layout.address,
                    "host": running,
                    "sshd": sshd,
                    "agent": self.agent_pid(h.name) if sshd else None,
                    "link": self.link_up(h.name) if running else None,
                    "role": "manager" if h.index < st.managers else "worker",
                }
            )
        return rows
