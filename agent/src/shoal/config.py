"""shoald configuration: /etc/shoal/shoald.yml, overridden by command-line flags."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONFIG = Path("/etc/shoal/shoald.yml")


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
    upstream_dns: list[str] = field(default_factory=list)
    # service VIPs and the routing mesh: auto (IPVS where the kernel has ip_vs, else nftables), ipvs, nftables
    lb_backend: str = "auto"

    @property
    def socket_path(self) -> Path:
        return self.run_dir / "shoal.sock"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "shoald.pid"


def _coerce(name: str, value: Any) -> Any:
    kinds = {f.name: f.type for f in fields(Config)}
    if name not in kinds:
        raise ConfigError(f"unknown setting {name!r} (known: {', '.join(sorted(kinds))})")
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
        if name == "election_timeout":
            timeout = float(value)
            if not 0.25 <= timeout <= 60:
                raise ValueError
            return timeout
        if name == "lb_backend":
            backend = str(value).lower()
            if backend not in ("auto", "ipvs", "nftables"):
                raise ValueError
            return backend
        if name == "upstream_dns":
            return [str(v) for v in value]
        return None if value is None else str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad value for {name}: {value!r}") from exc


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
    parser.add_argument("--heartbeat-period", dest="heartbeat_period", type=float, help="seconds (default 1)")


def from_args(args: argparse.Namespace) -> Config:
    keys = ("advertise_addr", "listen_addr", "data_dir", "run_dir", "log_level", "heartbeat_period")
    return load(args.config, {k: getattr(args, k) for k in keys})
