"""shoald configuration: /etc/shoal/shoald.yml, overridden by command-line flags."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONFIG = Path("/etc/shoal/shoald.yml")
TASK_DRIVERS = ("oci", "sim")  # sim: tasks only recorded (scale tests, runtime/sim.py)
# drivers that existed once: refused with what to use instead, never silently replaced
REMOVED_TASK_DRIVERS = {
    "process": "the process driver (a Python supervisor per task) was removed: tasks run as OCI containers "
    "under conmon + runc (task_driver: oci, the default)",
}


class ConfigError(ValueError):
    pass


@dataclass
class Config:
    advertise_addr: str | None = None  # an IP or an interface name (as `docker swarm init --advertise-addr`)
    listen_addr: str = "0.0.0.0:2377"
    data_dir: Path = Path("/var/lib/shoal")
    run_dir: Path = Path("/run/shoal")
    cluster_port: int = 2377
    raft_port: int = 2378
    log_level: str = "info"
    heartbeat_period: float = 1.0
    # minimum Raft election timeout in seconds; the other Raft timeouts stretch with it (slow machines, VMs)
    election_timeout: float = 0.25
    # Raft journal entries between snapshots (pysyncobj's logCompactionMinEntries); tests lower it
    raft_snapshot_entries: int = 5000
    upstream_dns: list[str] = field(default_factory=list)
    # off by default, as dockerd's metrics-addr; the operator picks the (loopback) address
    metrics_addr: str | None = None
    # the visualizer page of a manager (token in ui_token_file); off by default
    ui_addr: str | None = None
    # service VIPs and the routing mesh: auto (IPVS where the kernel has ip_vs, else nftables), ipvs, nftables
    lb_backend: str = "auto"
    # registries reached without TLS checks (HOST[:PORT]); every other one needs a trusted CA
    # (system CAs or /etc/shoal/certs.d/HOST:PORT/ca.crt)
    insecure_registries: list[str] = field(default_factory=list)
    image_prune_max_bytes: int | None = None  # unused images go, least recently used first
    image_prune_max_age: float | None = None  # seconds an unused image may stay
    task_driver: str = "oci"  # OCI containers under conmon + runc/crun (agent/base.py default_driver)
    oci_runtime: str | None = None  # "runc" or "crun"; default: crun on a pure cgroup v2 host, else runc
    # TEST ONLY: a manager issues certificates valid NodeCertExpiry times this (0 < x <= 1), so tests
    # see renewals within minutes while the API keeps Docker's 1-hour minimum
    cert_expiry_scale: float = 1.0
    # the leader rotates the network encryption keys of encrypted overlays this often (seconds;
    # Docker's 12 h). Tests set seconds to see rotations.
    network_key_rotation: float = 43200.0
    # seconds between full collections of Python's garbage collector (gcpauses.py: automatic ones stop
    # at generation 1, a full one comes this often or when the heap doubled); 0 leaves them to CPython
    gc_full_period: float = 600.0
    # seconds a thread holds the GIL before another that waits may take it (sys.setswitchinterval,
    # daemon.tune_interpreter); CPython's is 5 ms
    gil_switch_interval: float = 0.001

    @property
    def socket_path(self) -> Path:
        return self.run_dir / "shoal.sock"

    @property
    def ui_token_file(self) -> Path:
        return self.data_dir / "ui.token"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "shoald.pid"


def _coerce(name: str, value: Any) -> Any:
    kinds = {f.name: f.type for f in fields(Config)}
    if name not in kinds:
        raise ConfigError(f"unknown setting {name!r} (known: {', '.join(sorted(kinds))})")
    if name == "task_driver" and str(value) in REMOVED_TASK_DRIVERS:
        raise ConfigError(f"task_driver: {REMOVED_TASK_DRIVERS[str(value)]}")
    try:
        if name in ("data_dir", "run_dir"):
            return Path(value)
        if name in ("cluster_port", "raft_port"):
            port = int(value)
            if not 0 < port < 65536:
                raise ValueError
            return port
        if name == "heartbeat_period":
            period = float(value)
            if not 0.05 <= period <= 60:
                raise ValueError
            return period
        if name == "log_level":
            level = str(value).lower()
            if level not in ("debug", "info", "warning", "error"):
                raise ValueError
            return level
        if name in ("metrics_addr", "ui_addr"):
            return None if value in (None, "") else _host_port(str(value), name)
        if name == "raft_snapshot_entries":
            entries = int(value)
            if not 10 <= entries <= 1_000_000:
                raise ValueError
            return entries
        if name == "election_timeout":
            timeout = float(value)
            if not 0.25 <= timeout <= 60:
                raise ValueError
            return timeout
        if name == "cert_expiry_scale":
            scale = float(value)
            if not 0 < scale <= 1:
                raise ValueError
            return scale
        if name == "network_key_rotation":
            seconds = float(value)
            if not 5 <= seconds <= 30 * 86400:
                raise ValueError
            return seconds
        if name == "gil_switch_interval":
            seconds = float(value)
            if not 0.0001 <= seconds <= 0.1:
                raise ValueError
            return seconds
        if name == "gc_full_period":
            seconds = float(value)
            if seconds != 0 and not 10 <= seconds <= 86400:
                raise ValueError
            return seconds
        if name == "lb_backend":
            backend = str(value).lower()
            if backend not in ("auto", "ipvs", "nftables"):
                raise ValueError
            return backend
        if name in ("upstream_dns", "insecure_registries"):
            if not isinstance(value, list):
                raise ValueError
            return [str(v) for v in value]
        if name == "task_driver":
            if str(value) not in TASK_DRIVERS:
                raise ValueError
            return str(value)
        if name == "oci_runtime":
            if value is not None and str(value) not in ("runc", "crun"):
                raise ValueError
            return None if value is None else str(value)
        if name in ("image_prune_max_bytes", "image_prune_max_age"):
            if value is None:
                return None
            number = int(value) if name == "image_prune_max_bytes" else float(value)
            if number < 0:
                raise ValueError
            return number
        return None if value is None else str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad value for {name}: {value!r}") from exc


def _host_port(value: str, name: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{name} must be host:port")
    return value


def load(path: Path | None, overrides: dict[str, Any] | None = None) -> Config:
    """Read the YAML file (missing default file = defaults), then apply non-None overrides."""
    raw: dict[str, Any] = {}
    if path is not None and path.exists():
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of settings")
        raw.update(loaded)
    elif path is not None and path != DEFAULT_CONFIG:
        raise ConfigError(f"{path}: no such file")
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    cfg = Config()
    for key, value in raw.items():
        setattr(cfg, key, _coerce(key, value))
    return cfg


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="configuration file (YAML)")
    parser.add_argument("--advertise-addr", dest="advertise_addr", help="address or interface to advertise")
    parser.add_argument("--listen-addr", dest="listen_addr", help="cluster API listen address (host:port)")
    parser.add_argument("--data-dir", dest="data_dir", help="state directory (default /var/lib/shoal)")
    parser.add_argument("--run-dir", dest="run_dir", help="runtime directory with the control socket")
    parser.add_argument("--log-level", dest="log_level", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--metrics-addr", dest="metrics_addr", help="serve Prometheus metrics on host:port (off)")
    parser.add_argument("--ui-addr", dest="ui_addr", help="serve the visualizer page on host:port (managers; off)")
    parser.add_argument("--heartbeat-period", dest="heartbeat_period", type=float, help="seconds (default 1)")
    parser.add_argument(
        "--election-timeout", dest="election_timeout", type=float, help="minimum Raft election timeout, s (0.25)"
    )
    parser.add_argument(
        "--cert-expiry-scale", dest="cert_expiry_scale", type=float, help="TEST ONLY: shortens NodeCertExpiry (0-1]"
    )
    parser.add_argument(
        "--network-key-rotation",
        dest="network_key_rotation",
        type=float,
        help="seconds between rotations of the network encryption keys (43200)",
    )
    parser.add_argument(
        "--raft-snapshot-entries", dest="raft_snapshot_entries", type=int, help="journal entries between snapshots"
    )
    parser.add_argument(
        "--gc-full-period",
        dest="gc_full_period",
        type=float,
        help="seconds between full garbage collections (600; 0: CPython's automatic ones)",
    )
    parser.add_argument(
        "--gil-switch-interval",
        dest="gil_switch_interval",
        type=float,
        help="seconds a thread may hold the GIL while another waits (0.001; CPython's own: 0.005)",
    )
    # no argparse choices: a removed driver gets its reason from _coerce, not "invalid choice"
    parser.add_argument("--task-driver", dest="task_driver", help=f"how tasks run ({', '.join(TASK_DRIVERS)})")


def from_args(args: argparse.Namespace) -> Config:
    keys = ("advertise_addr", "listen_addr", "data_dir", "run_dir", "log_level", "heartbeat_period", "task_driver")
    keys += ("metrics_addr", "ui_addr", "election_timeout", "raft_snapshot_entries", "cert_expiry_scale")
    keys += ("network_key_rotation", "gc_full_period", "gil_switch_interval")
    return load(args.config, {k: getattr(args, k) for k in keys})
