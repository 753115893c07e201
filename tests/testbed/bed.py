"""The testbed: N hosts made of network/mount/UTS namespaces, an sshd each, one underlay bridge."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyroute2 import NetNS, netns

from testbed import procs, registry
from testbed.inventory import render_ansible_cfg, render_inventory, ssh_common_args
from testbed.layout import (
    BRIDGE,
    CONTROLLER_ADDR,
    CONTROLLER_NS,
    FABRIC_NS,
    PREFIX,
    PRIVATE_DIRS,
    STATE_DIR,
    UNDERLAY,
    VENV_BIN,
    HostLayout,
    host_layout,
)
from testbed.nsexec import call_in_netns

SSHD = "/usr/sbin/sshd"


class TestbedError(RuntimeError):
    pass


@dataclass
class HostState:
    name: str
    index: int
    holder_pid: int = 0
    sshd_pid: int = 0


@dataclass
class BedState:
    managers: int = 1
    hosts: list[HostState] = field(default_factory=list)
    created_dirs: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> BedState | None:
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return cls(
            managers=raw.get("managers", 1),
            hosts=[HostState(**h) for h in raw.get("hosts", [])],
            created_dirs=raw.get("created_dirs", []),
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {"managers": self.managers, "hosts": [vars(h) for h in self.hosts], "created_dirs": self.created_dirs},
                indent=2,
            )
        )
        tmp.replace(path)


class Testbed:
    __test__ = False  # not a pytest class

    def __init__(self, state_dir: Path = STATE_DIR) -> None:
        self.state_dir = state_dir
        self.state_file = state_dir / "state.json"
        self.ssh_dir = state_dir / "ssh"
        self.ansible_dir = state_dir / "ansible"

    # ---- paths the tests and Ansible use
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

    def state(self) -> BedState | None:
        return BedState.load(self.state_file)

    def hosts(self) -> list[HostLayout]:
        st = self.state()
        return [host_layout(h.index, self.state_dir) for h in st.hosts] if st else []

    def host(self, name: str) -> HostLayout:
        for h in self.hosts():
            if h.name == name:
                return h
        raise TestbedError(f"no such testbed host: {name} (is the testbed up?)")

    def holder_pid(self, name: str) -> int:
        st = self.state()
        for h in st.hosts if st else []:
            if h.name == name and procs.alive(h.holder_pid):
                return h.holder_pid
        raise TestbedError(f"host {name} is not running (is the testbed up?)")

    # ---- up / down
    def healthy(self) -> bool:
        st = self.state()
        if not st or not st.hosts:
            return False
        live = set(netns.listnetns())
        return all(
            procs.alive(h.holder_pid) and procs.alive(h.sshd_pid) and f"{PREFIX}{h.name}" in live for h in st.hosts
        )

    def up(self, count: int = 3, managers: int = 1) -> BedState:
        if count < 1:
            raise TestbedError("at least one host is needed")
        if not 1 <= managers <= count:
            raise TestbedError(f"managers must be between 1 and {count}")
        st = self.state()
        if st and self.healthy() and len(st.hosts) == count:
            if st.managers != managers:
                st.managers = managers
                st.save(self.state_file)
                self._write_ansible_files(st)
            return st
        self.down()
        try:
            return self._up(count, managers)
        except BaseException:
            self.down()  # never leave half a testbed behind
            raise

    def _up(self, count: int, managers: int) -> BedState:
        layouts = [host_layout(i, self.state_dir) for i in range(count)]
        st = BedState(managers=managers, hosts=[HostState(name=h.name, index=h.index) for h in layouts])
        st.created_dirs = self._ensure_mountpoints()
        st.save(self.state_file)  # from here on, down() can clean up whatever happens
        self._ensure_ssh_keys()
        self._build_network(layouts)
        for layout, hstate in zip(layouts, st.hosts, strict=True):
            hstate.holder_pid = self._start_holder(layout)
            st.save(self.state_file)
        for layout, hstate in zip(layouts, st.hosts, strict=True):
            self._wait_holder(layout, hstate.holder_pid)
            hstate.sshd_pid = self._start_sshd(layout, hstate.holder_pid)
            st.save(self.state_file)
        for layout in layouts:
            self._wait_port(layout.address, 22)
        registry.start(self.state_dir, layouts)  # 10.213.0.1:5000, trusted by every host
        self._write_ansible_files(st)
        return st

    def down(self) -> None:
        registry.stop(self.state_dir)
        st = self.state()
        roots: list[int] = []
        if st:
            for h in st.hosts:
                layout = host_layout(h.index, self.state_dir)
                roots += [h.holder_pid, h.sshd_pid, procs.read_pidfile(layout.agent_pidfile) or 0]
        ours = [n for n in netns.listnetns() if n.startswith(PREFIX)]
        for name in ours:
            roots += procs.pids_in_netns(Path("/run/netns") / name)
        procs.stop(procs.descendants([p for p in roots if procs.alive(p)]))
        remove_task_cgroups()
        for name in ours:
            try:
                netns.remove(name)
            except OSError as exc:
                raise TestbedError(f"could not remove namespace {name}: {exc}") from exc
        if st:
            for path in st.created_dirs:
                # not empty or gone: leave what is not ours
                with contextlib.suppress(OSError):
                    os.rmdir(path)
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)

    # ---- pieces of up()
    def _ensure_mountpoints(self) -> list[str]:
        created = []
        for path, _ in PRIVATE_DIRS:
            if not os.path.isdir(path):
                os.makedirs(path)
                created.append(path)
        return created

    def _ensure_ssh_keys(self) -> None:
        self.ssh_dir.mkdir(parents=True, exist_ok=True)
        for key in (self.client_key, self.ssh_dir / "host_ed25519"):
            if not key.exists():
                subprocess.run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "shoal-testbed", "-f", str(key)], check=True
                )
        (self.ssh_dir / "authorized_keys").write_text(self.client_key.with_suffix(".pub").read_text())
        self.known_hosts.touch()

    def _build_network(self, layouts: list[HostLayout]) -> None:
        for name in [FABRIC_NS, CONTROLLER_NS] + [h.netns for h in layouts]:
            netns.create(name)
        prefixlen = UNDERLAY.prefixlen
        with NetNS(FABRIC_NS) as fabric:
            fabric.link("add", ifname=BRIDGE, kind="bridge")
            bridge = fabric.link_lookup(ifname=BRIDGE)[0]
            fabric.link("set", index=bridge, state="up")
            ports = [("v-ctl", CONTROLLER_NS)] + [(h.fabric_port, h.netns) for h in layouts]
            for port, peer_ns in ports:
                # created inside the fabric: the root namespace never holds a testbed link
                fabric.link("add", ifname=port, kind="veth", peer={"ifname": "eth0", "net_ns_fd": peer_ns})
                idx = fabric.link_lookup(ifname=port)[0]
                fabric.link("set", index=idx, master=bridge, state="up")
        for ns, addr in [(CONTROLLER_NS, CONTROLLER_ADDR)] + [(h.netns, h.address) for h in layouts]:
            with NetNS(ns) as ipr:
                eth = ipr.link_lookup(ifname="eth0")[0]
                ipr.addr("add", index=eth, address=addr, prefixlen=prefixlen)
                ipr.link("set", index=eth, state="up")
                ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")

    def _start_holder(self, layout: HostLayout) -> int:
        """A sleeping process that owns the host's mount and UTS namespaces."""
        sd = layout.state_dir
        for _, sub in PRIVATE_DIRS:
            (sd / sub).mkdir(parents=True, exist_ok=True)
        layout.run_shoal_dir.mkdir(parents=True, exist_ok=True)
        ready = sd / "ready"
        ready.unlink(missing_ok=True)
        binds = "\n".join(f"mount --bind {sd / sub} {path}" for path, sub in PRIVATE_DIRS)
        cgroups = "\n".join(cgroup_mount_steps())
        script = f"""set -e
hostname {layout.name}
mount -t tmpfs -o mode=0755 shoal-run /run
mkdir -p /run/shoal /run/sshd /run/netns
mount --bind {layout.run_shoal_dir} /run/shoal
{binds}
{cgroups}
touch {ready}
exec sleep infinity
"""
        log = open(sd / "holder.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                layout.netns,
                "unshare",
                "--mount",
                "--uts",
                "--propagation",
                "private",
                "--",
                "/bin/sh",
                "-c",
                script,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        return proc.pid

    def _wait_holder(self, layout: HostLayout, pid: int, timeout: float = 10.0) -> None:
        ready = layout.state_dir / "ready"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready.exists() and _cmdline(pid).startswith("sleep"):
                return
            if not procs.alive(pid):
                break
            time.sleep(0.01)
        log = (layout.state_dir / "holder.log").read_text(errors="replace")
        raise TestbedError(f"host {layout.name} did not come up: {log.strip()}")

    def _start_sshd(self, layout: HostLayout, holder: int) -> int:
        config = layout.state_dir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress {layout.address}:22",
                    f"HostKey {self.ssh_dir / 'host_ed25519'}",
                    f"AuthorizedKeysFile {self.ssh_dir / 'authorized_keys'}",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",  # authorized_keys lives in the project tree (notes #12)
                    "PidFile /run/sshd.pid",
                    "PrintMotd no",
                    "AcceptEnv LANG LC_*",
                    "Subsystem sftp /usr/lib/openssh/sftp-server",
                    "",
                ]
            )
        )
        log = open(layout.state_dir / "sshd.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            ["nsenter", "-t", str(holder), "-n", "-m", "-u", "--", SSHD, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        return proc.pid

    def _wait_port(self, address: str, port: int, timeout: float = 10.0) -> None:
        def probe() -> bool:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    with socket.create_connection((address, port), timeout=0.5):
                        return True
                except OSError:
                    time.sleep(0.02)
            return False

        if not call_in_netns(CONTROLLER_NS, probe, timeout + 5):
            raise TestbedError(f"nothing listens on {address}:{port} after {timeout} s")

    def _write_ansible_files(self, st: BedState) -> None:
        layouts = [host_layout(h.index, self.state_dir) for h in st.hosts]
        self.ansible_dir.mkdir(parents=True, exist_ok=True)
        inventory = render_inventory(
            layouts, st.managers, self.client_key, self.known_hosts, extra_vars=registry.inventory_vars()
        )
        self.inventory_path.write_text(inventory)
        self.ansible_cfg_path.write_text(render_ansible_cfg(self.inventory_path, self.ansible_dir))

    # ---- using the hosts
    def exec_argv(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> list[str]:
        """argv that runs `argv` inside host `name` with the project's venv first on PATH."""
        path = f"{VENV_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        envs = [f"{k}={v}" for k, v in (env or {}).items()]
        return [
            "nsenter",
            "-t",
            str(self.holder_pid(name)),
            "-n",
            "-m",
            "-u",
            "--",
            "env",
            f"PATH={path}",
            f"HOSTNAME={name}",
            *envs,
            *argv,
        ]

    def run(
        self, name: str, argv: list[str], *, check: bool = False, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.exec_argv(name, argv), capture_output=True, text=True, check=check, timeout=timeout, input=input
        )

    def ssh_argv(self, name: str, argv: list[str]) -> list[str]:
        layout = self.host(name)
        common = ssh_common_args(self.known_hosts).replace("'", "")
        opts: list[str] = []
        for part in common.split(" -o "):
            opts += ["-o", part.removeprefix("-o ").strip()]
        return ["ssh", "-i", str(self.client_key), "-o", "BatchMode=yes", *opts, f"root@{layout.address}", *argv]

    # ---- agents and faults
    def start_agent(self, name: str, extra: list[str] | None = None) -> int:
        layout = self.host(name)
        pid = procs.read_pidfile(layout.agent_pidfile)
        if procs.alive(pid):
            raise TestbedError(f"shoald already runs on {name} (pid {pid})")
        log = open(layout.agent_log, "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            self.exec_argv(name, [str(VENV_BIN / "shoald"), *observability_flags(extra or []), *(extra or [])]),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        layout.agent_pidfile.write_text(f"{proc.pid}\n")
        return proc.pid

    def agent_pid(self, name: str) -> int | None:
        pid = procs.read_pidfile(self.host(name).agent_pidfile)
        return pid if procs.alive(pid) else None

    def stop_agent(self, name: str, kill: bool = False, grace: float = 10.0) -> bool:
        pid = self.agent_pid(name)
        if not pid:
            return False
        if kill:
            os.kill(pid, 9)
            deadline = time.monotonic() + 5
            while procs.alive(pid) and time.monotonic() < deadline:
                time.sleep(0.01)
        else:
            procs.stop([pid], grace=grace)
        self.host(name).agent_pidfile.unlink(missing_ok=True)
        return True

    def set_link(self, name: str, up: bool) -> None:
        layout = self.host(name)
        with NetNS(FABRIC_NS) as fabric:
            fabric.link("set", index=fabric.link_lookup(ifname=layout.fabric_port)[0], state="up" if up else "down")

    def link_up(self, name: str) -> bool:
        layout = self.host(name)
        with NetNS(FABRIC_NS) as fabric:
            link = fabric.get_links(fabric.link_lookup(ifname=layout.fabric_port)[0])[0]
            return bool(link["flags"] & 1)

    def status(self) -> list[dict[str, object]]:
        st = self.state()
        rows = []
        for h in st.hosts if st else []:
            layout = host_layout(h.index, self.state_dir)
            rows.append(
                {
                    "name": h.name,
                    "address": layout.address,
                    "netns": layout.netns,
                    "host": procs.alive(h.holder_pid),
                    "sshd": procs.alive(h.sshd_pid),
                    "agent": self.agent_pid(h.name),
                    "link": self.link_up(h.name) if procs.alive(h.holder_pid) else None,
                    "role": "manager" if h.index < st.managers else "worker",
                }
            )
        return rows


def remove_task_cgroups(root: Path = Path("/sys/fs/cgroup")) -> None:
    """The oci driver's tasks get `shoal/<task-id>` cgroups from runc, removed by `runc delete`
    when a task is removed; tasks killed with their hosts never get there: remove what is empty."""
    for group in root.glob("*/shoal/*"):
        with contextlib.suppress(OSError):
            group.rmdir()
    for parent in root.glob("*/shoal"):
        with contextlib.suppress(OSError):
            parent.rmdir()


def cgroup_mount_steps(mounts: str | None = None) -> list[str]:
    """Shell steps giving a host the machine's cgroup hierarchies, as a real host has them.

    `ip netns exec` mounts a fresh /sys without /sys/fs/cgroup; mounting a v1 hierarchy again with
    the same options attaches the same hierarchy. The mounts live in the host's mount namespace.
    """
    if mounts is None:
        mounts = Path("/proc/self/mounts").read_text()
    steps = []
    for line in mounts.splitlines():
        _, point, fstype, opts, *_ = line.split()
        if fstype in ("cgroup", "cgroup2"):
            steps.append(f"mkdir -p {point} && mount -t {fstype} -o {opts} {fstype} {point}")
    if steps and not any(s.endswith(" /sys/fs/cgroup") for s in steps):
        steps.insert(0, "mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup")
    return steps


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


# Every testbed agent serves Prometheus metrics on Docker's documented example address, and the
# visualizer page (managers; loopback inside each host's own network namespace).
METRICS_ADDR = "127.0.0.1:9323"
UI_ADDR = "127.0.0.1:8088"


def observability_flags(extra: list[str]) -> list[str]:
    flags = []
    if not any(a.startswith("--metrics-addr") for a in extra):
        flags += ["--metrics-addr", METRICS_ADDR]
    if not any(a.startswith("--ui-addr") for a in extra):
        flags += ["--ui-addr", UI_ADDR]
    return flags
