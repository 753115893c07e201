"""From a Docker-API Task and its image to what the process runs (pure: no system calls).

Resolution follows Docker: ContainerSpec.Command replaces the image's Entrypoint (and drops its
Cmd), Args replace Cmd; env is the image's with the spec's entries replacing same-named ones;
the user is looked up in the root filesystem's passwd and group files like runc does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shoal.model.errors import SpecError
from shoal.model.ids import parse_duration
from shoal.runtime.base import RuntimeDriverError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_STOP_GRACE = 10.0  # seconds, Docker's default StopGracePeriod
MIN_MEMORY = 4 * 1024 * 1024  # Docker's historical minimum (4 MiB); the kernel needs some room
CPU_PERIOD_US = 100_000  # CFS period Docker uses for --cpus
DNS_ADDR = "127.0.0.11"  # the agent's embedded DNS inside every task namespace


def container_spec(task: Mapping[str, Any]) -> Mapping[str, Any]:
    return ((task.get("Spec") or {}).get("ContainerSpec")) or {}


def hostname_for(task: Mapping[str, Any]) -> str:
    return container_spec(task).get("Hostname") or str(task["ID"])[:12]


def netns_name(task_id: str) -> str:
    return f"task-{task_id[:12]}"


def resolve_argv(image_config: Mapping[str, Any], spec: Mapping[str, Any]) -> list[str]:
    command = list(spec.get("Command") or [])
    args = list(spec.get("Args") or [])
    if command:
        argv = command + args
    else:
        argv = list(image_config.get("Entrypoint") or []) + (args or list(image_config.get("Cmd") or []))
    if not argv:
        raise RuntimeDriverError("no command specified")
    return [str(a) for a in argv]


def merge_env(base: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """Docker's ReplaceOrAppendEnvValues: same key replaces, a bare `KEY` unsets it."""
    env = {e.partition("=")[0]: e for e in base}
    for entry in overrides:
        key, sep, _ = entry.partition("=")
        if sep:
            env[key] = entry  # a dict keeps the first position: replaced in place, as Docker does
        else:
            env.pop(key, None)
    return list(env.values())


def final_env(env: Sequence[str], hostname: str, home: str) -> list[str]:
    """Add what Docker always sets: PATH (if missing), HOSTNAME, HOME (if missing)."""
    keys = {e.partition("=")[0] for e in env}
    out = [] if "PATH" in keys else [f"PATH={DEFAULT_PATH}"]
    out += [f"HOSTNAME={hostname}", *[e for e in env if not e.startswith("HOSTNAME=")]]
    if "HOME" not in keys:
        out.append(f"HOME={home}")
    return out


def working_dir(image_config: Mapping[str, Any], spec: Mapping[str, Any]) -> str:
    cwd = spec.get("Dir") or image_config.get("WorkingDir") or "/"
    if not str(cwd).startswith("/"):
        raise SpecError(f"the working directory {cwd!r} is invalid, it needs to be an absolute path")
    return str(cwd)


def stop_grace(spec: Mapping[str, Any]) -> float:
    """Seconds; the API carries StopGracePeriod in nanoseconds (a Go duration string is taken too)."""
    grace = spec.get("StopGracePeriod")
    return DEFAULT_STOP_GRACE if grace is None else max(0.0, parse_duration(grace) / 1e9)


@dataclass(frozen=True)
class Limits:
    nano_cpus: int = 0
    memory_bytes: int = 0

    @property
    def any(self) -> bool:
        return bool(self.nano_cpus or self.memory_bytes)

    @property
    def cpu_quota_us(self) -> int:
        """CFS quota per CPU_PERIOD_US; the kernel refuses less than 1 ms."""
        return max(1000, self.nano_cpus * CPU_PERIOD_US // 1_000_000_000) if self.nano_cpus else -1


def limits_for(task: Mapping[str, Any]) -> Limits:
    limits = ((task.get("Spec") or {}).get("Resources") or {}).get("Limits") or {}
    nano = int(limits.get("NanoCPUs") or 0)
    mem = int(limits.get("MemoryBytes") or 0)
    if nano < 0:
        raise SpecError(f"invalid CPU limit {nano}: must not be negative")
    if mem < 0 or 0 < mem < MIN_MEMORY:
        raise SpecError(f"invalid memory limit {mem}: minimum memory limit allowed is 4MB")
    return Limits(nano_cpus=nano, memory_bytes=mem)


# --- users ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecUser:
    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = field(default=())
    home: str = "/"


def _rows(text: str, width: int) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        rows.append(parts + [""] * (width - len(parts)))
    return rows


def _int_or_none(value: str) -> int | None:
    return int(value) if value.isdigit() else None


def resolve_user(user: str, passwd: str, group: str) -> ExecUser:
    """runc's GetExecUser: `user` is "", NAME, UID, NAME:GROUP, UID:GID (any mix)."""
    user_arg, _, group_arg = (user or "").partition(":")
    uid_arg, gid_arg = _int_or_none(user_arg), _int_or_none(group_arg)
    users = []
    for name, _pw, uid, gid, _gecos, home, *_ in _rows(passwd, 7):
        if not uid.isdigit() or not gid.isdigit():
            continue
        if (user_arg == "" and int(uid) == 0) or (uid_arg is not None and int(uid) == uid_arg) or name == user_arg:
            users.append((name, int(uid), int(gid), home or "/"))
    uid_v, gid_v, home_v, groups_v = 0, 0, "/", ()
    if users:
        _, uid_v, gid_v, home_v = users[0]
    elif user_arg:
        if uid_arg is None:
            raise RuntimeDriverError(f"unable to find user {user_arg}: no matching entries in passwd file")
        uid_v = uid_arg
    if group_arg or users:
        matches = []
        for gname, _pw, gid, members, *_ in _rows(group, 4):
            if not gid.isdigit():
                continue
            if group_arg == "":
                hit = users[0][0] in members.split(",")
            else:
                hit = (gid_arg is not None and int(gid) == gid_arg) or gname == group_arg
            if hit:
                matches.append(int(gid))
        if group_arg:
            if matches:
                gid_v = matches[0]
            elif gid_arg is None:
                raise RuntimeDriverError(f"unable to find group {group_arg}: no matching entries in group file")
            else:
                gid_v = gid_arg
        else:
            groups_v = tuple(matches)
    return ExecUser(uid=uid_v, gid=gid_v, groups=groups_v, home=home_v)


# --- the per-task /etc files ------------------------------------------------------------------


def hosts_file(hostname: str, address: str | None = None) -> str:
    """Docker's /etc/hosts; the hostname maps to the task's address once it has one."""
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
        f"{address or '127.0.1.1'}\t{hostname}",
    ]
    return "\n".join(lines) + "\n"


def resolv_conf() -> str:
    return f"nameserver {DNS_ADDR}\noptions ndots:0\n"
