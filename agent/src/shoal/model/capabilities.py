"""Linux capability names and Docker's default set, as ContainerSpec.CapabilityAdd/Drop use them."""

from __future__ import annotations

from collections.abc import Sequence

from shoal.errors import SpecError

# moby's oci.DefaultCapabilities()
DEFAULT_CAPS = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
ALL_CAPS = (
    *("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL"),
    *("CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE"),
    *("CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER"),
    *("CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT"),
    *("CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME"),
    *("CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL"),
    *("CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM"),
    *("CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"),
)


def capabilities(add: Sequence[str] = (), drop: Sequence[str] = ()) -> list[str]:
    """Docker's TweakCapabilities: default set, then drops, then adds; "ALL" works on either
    side; names with or without the CAP_ prefix, any case."""

    def norm(names: Sequence[str], where: str) -> list[str]:
        out = []
        for name in names:
            cap = str(name).upper()
            cap = cap if cap == "ALL" or cap.startswith("CAP_") else "CAP_" + cap
            if cap != "ALL" and cap not in ALL_CAPS:
                raise SpecError(f"{where}: unknown capability: {name!r}")
            out.append(cap)
        return out

    adds, drops = norm(add, "CapabilityAdd"), norm(drop, "CapabilityDrop")
    if "ALL" in adds:
        return [c for c in ALL_CAPS if c not in drops or c in adds]
    caps = [] if "ALL" in drops else [c for c in DEFAULT_CAPS if c not in drops]
    caps += [c for c in adds if c not in caps]
    return caps
