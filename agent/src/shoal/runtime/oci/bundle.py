"""A task's OCI runtime config (`config.json`) from its resolved plan (pure: no system calls).

Shaped after what Docker (moby's oci/defaults.go and daemon/oci_linux.go) hands to runc: its
default capabilities, masked and read-only /proc paths, /dev, /dev/pts, /dev/shm, /dev/mqueue,
a read-only /sys; the task's network namespace is the one shoal prepared (joined by path), the
mount, UTS, IPC and PID namespaces are its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shoal.model.capabilities import ALL_CAPS, DEFAULT_CAPS, capabilities

OCI_VERSION = "1.0.2-dev"
INIT_PATH = "/dev/init"  # where podman binds catatonit when --init is asked
MASKED_PATHS = (
    *("/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats"),
    *("/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"),
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
ETC_FILES = ("hostname", "hosts", "resolv.conf")
CPU_PERIOD_US = 100_000
__all__ = ["ALL_CAPS", "DEFAULT_CAPS", "Plan", "Resources", "capabilities", "config", "resources_for"]


@dataclass(frozen=True)
class Resources:
    memory_limit: int = 0
    memory_reservation: int = 0
    nano_cpus: int = 0
    cpu_shares: int = 0
    pids_limit: int = 0

    def to_oci(self) -> dict[str, Any]:
        out: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
        memory = {}
        if self.memory_limit:
            memory["limit"] = self.memory_limit
        if self.memory_reservation:
            memory["reservation"] = self.memory_reservation
        if memory:
            out["memory"] = memory
        cpu: dict[str, int] = {}
        if self.nano_cpus:
            cpu["period"] = CPU_PERIOD_US
            cpu["quota"] = max(1000, self.nano_cpus * CPU_PERIOD_US // 1_000_000_000)
        if self.cpu_shares:
            cpu["shares"] = self.cpu_shares
        if cpu:
            out["cpu"] = cpu
        if self.pids_limit:
            out["pids"] = {"limit": self.pids_limit}
        return out


def resources_for(task: Mapping[str, Any]) -> Resources:
    """Resources.Limits (memory, CPUs, pids) and Reservations (memory as a soft limit, CPUs as
    shares relative to Docker's 1024 per CPU) of a Docker-API task."""
    res = (task.get("Spec") or {}).get("Resources") or {}
    limits, reservations = res.get("Limits") or {}, res.get("Reservations") or {}
    reserved_cpus = int(reservations.get("NanoCPUs") or 0)
    return Resources(
        memory_limit=int(limits.get("MemoryBytes") or 0),
        memory_reservation=int(reservations.get("MemoryBytes") or 0),
        nano_cpus=int(limits.get("NanoCPUs") or 0),
        cpu_shares=max(2, reserved_cpus * 1024 // 1_000_000_000) if reserved_cpus else 0,
        pids_limit=int(limits.get("Pids") or 0),
    )


@dataclass(frozen=True)
class Plan:
    """Everything config.json says about one task, resolved from its spec and image."""

    task_id: str
    argv: list[str]
    env: list[str]
    cwd: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    hostname: str
    netns_path: str
    task_dir: str  # holds hostname, hosts, resolv.conf
    rootfs: str = "rootfs"  # the overlay mount point, relative to the bundle
    readonly: bool = False
    caps: tuple[str, ...] = DEFAULT_CAPS
    init: str | None = None  # host path of catatonit/tini when ContainerSpec.Init is true
    host_binds: tuple[str, ...] = ()  # host paths bound read-only at the same place
    cgroups_path: str = ""
    resources: Resources = field(default_factory=Resources)
    # ContainerSpec.Mounts as OCI mounts, DNS/hosts/sysctls/ulimits (runtime/oci/mounts.py, runtime/taskopts.py)
    user_mounts: tuple[dict[str, Any], ...] = ()
    sysctl: Mapping[str, str] = field(default_factory=dict)
    rlimits: tuple[dict[str, Any], ...] = ()
    file_binds: tuple[tuple[str, str], ...] = ()  # (container path, host path): secrets, configs


def _mount(dest: str, kind: str, source: str, options: Sequence[str]) -> dict[str, Any]:
    return {"destination": dest, "type": kind, "source": source, "options": list(options)}


def mounts(plan: Plan) -> list[dict[str, Any]]:
    out = [
        _mount("/proc", "proc", "proc", ("nosuid", "noexec", "nodev")),
        _mount("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
        _mount(
            "/dev/pts", "devpts", "devpts", ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5")
        ),
        _mount("/dev/shm", "tmpfs", "shm", ("nosuid", "noexec", "nodev", "mode=1777", "size=65536k")),
        _mount("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
        _mount("/sys", "sysfs", "sysfs", ("nosuid", "noexec", "nodev", "ro")),
        _mount("/sys/fs/cgroup", "cgroup", "cgroup", ("nosuid", "noexec", "nodev", "relatime", "ro")),
    ]
    for path in plan.host_binds:
        out.append(_mount(path, "bind", path, ("rbind", "ro", "nosuid", "nodev")))
    # the agent rewrites these in place (a bind pins the inode): writable binds, as Docker's
    for name in ETC_FILES:
        out.append(_mount(f"/etc/{name}", "bind", f"{plan.task_dir}/{name}", ("rbind", "rprivate")))
    for dest, source in plan.file_binds:  # files on the task's tmpfs (runtime/secretfiles.py)
        out.append(_mount(dest, "bind", source, ("rbind", "ro", "nosuid", "nodev", "noexec", "rprivate")))
    if plan.init:
        out.append(_mount(INIT_PATH, "bind", plan.init, ("bind", "ro", "nosuid", "nodev")))
    out.extend(dict(m) for m in plan.user_mounts)  # last: the user's mounts may cover any of the above
    return out


def process_args(plan: Plan) -> list[str]:
    # catatonit/tini as PID 1 reaps zombies and forwards signals to the command
    return [INIT_PATH, "--", *plan.argv] if plan.init else list(plan.argv)


def config(plan: Plan) -> dict[str, Any]:
    caps = list(plan.caps)
    process: dict[str, Any] = {
        "terminal": False,
        "user": {"uid": plan.uid, "gid": plan.gid, **({"additionalGids": list(plan.groups)} if plan.groups else {})},
        "args": process_args(plan),
        "env": list(plan.env),
        "cwd": plan.cwd,
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": False,
    }
    if plan.rlimits:
        process["rlimits"] = [dict(r) for r in plan.rlimits]
    linux: dict[str, Any] = {
        "resources": plan.resources.to_oci(),
        "namespaces": [
            {"type": "pid"},
            {"type": "network", "path": plan.netns_path},
            {"type": "ipc"},
            {"type": "uts"},
            {"type": "mount"},
        ],
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
    }
    if plan.sysctl:
        linux["sysctl"] = dict(plan.sysctl)
    if plan.cgroups_path:
        linux["cgroupsPath"] = plan.cgroups_path
    return {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": plan.rootfs, "readonly": plan.readonly},
        "hostname": plan.hostname,
        "mounts": mounts(plan),
        "linux": linux,
    }
