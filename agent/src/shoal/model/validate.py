"""Validation and normalisation of user-supplied specs (API bodies, CLI flags, module args).

Every function either returns a complete, normalised copy or raises `SpecError` naming the
offending field, so a bad request never half-applies.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from shoal.errors import SpecError
from shoal.model.ids import format_duration, parse_duration
from shoal.model.objects import (
    DATA_PATH_PORT,
    DEFAULT_ADDR_POOL,
    DEFAULT_SUBNET_SIZE,
    NODE_AVAILABILITIES,
    NODE_ROLES,
    default_swarm_spec,
)

MIN_NODE_CERT_EXPIRY = 3600 * 1_000_000_000  # SwarmKit's ca.MinNodeCertExpiration (1h)


# --- scalar checks ------------------------------------------------------------------------------


def known_fields(where: str, value: Mapping[str, Any], known: Iterable[str]) -> dict[str, Any]:
    """`value` with its keys under their canonical names, matched as Go's encoding/json matches
    struct fields (Docker decodes every request body so): the exact name, else the one that
    differs only in case; when two keys name the same field the later one wins. Any other key
    is refused: shoal accepts nothing it would ignore. A `value` that is not an object is refused
    too (a list or a string where Docker expects an object is a 400, never a crash)."""
    if not isinstance(value, Mapping):
        raise SpecError(f"{where} must be an object, not {type(value).__name__}")
    names = tuple(known)
    folded = {name.lower(): name for name in names}
    out: dict[str, Any] = {}
    unknown: list[str] = []
    for key, item in value.items():
        name = key if key in names else folded.get(key.lower()) if isinstance(key, str) else None
        if name is None:
            unknown.append(str(key))
        else:
            out[name] = item
    if unknown:
        raise SpecError(f"unknown field {min(unknown)!r} in {where} (known fields: {', '.join(sorted(names))})")
    return out


def field(value: Mapping[str, Any], name: str) -> Any:
    """`value[name]` matched as `known_fields` matches (exact, else case-insensitive; last wins)."""
    found = None
    for key, item in value.items():
        if isinstance(key, str) and key.lower() == name.lower():
            found = item
    return found


def _object(where: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(f"{where} must be an object, not {type(value).__name__}")
    return value


def _int(where: str, value: Any, *, minimum: int | None = None) -> int:
    # JSON clients sometimes send 7.776e+15 for an integer; accept floats without a fraction.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{where} must be an integer, not {value!r}")
    if minimum is not None and value < minimum:
        raise SpecError(f"{where} must be at least {minimum}, not {value}")
    return value


def _duration(where: str, value: Any) -> int:
    """Nanoseconds from an integer (the API) or a Go duration string (CLI and modules)."""
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except SpecError as e:
            raise SpecError(f"{where}: {e.message}") from None
    return _int(where, value)


def _str(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise SpecError(f"{where} must be a string, not {value!r}")
    return value


def _bool(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"{where} must be true or false, not {value!r}")
    return value


def _choice(where: str, value: Any, choices: tuple[str, ...]) -> str:
    # Docker matches enum values case-insensitively (it upper-cases them into the protobuf enum).
    if isinstance(value, str) and value.lower() in choices:
        return value.lower()
    allowed = " or ".join(f'"{c}"' for c in choices)
    raise SpecError(f"invalid {where}: {value!r} (must be {allowed})")


def validate_labels(where: str, value: Any) -> dict[str, str]:
    """A str→str map; `null` is an empty map, as Go decodes it."""
    if value is None:
        return {}
    labels = _object(where, value)
    out: dict[str, str] = {}
    for k, v in labels.items():
        if not isinstance(k, str) or not k:
            raise SpecError(f"{where}: label keys must be non-empty strings, not {k!r}")
        if not isinstance(v, str):
            raise SpecError(f"{where}: label {k!r} must have a string value, not {v!r}")
        out[k] = v
    return out


def parse_label(text: str) -> tuple[str, str]:
    """A CLI label "k=v" → (k, v); "k" → (k, "") as `docker node update --label-add k` does."""
    key, _, value = text.partition("=")
    key = key.strip()
    if not key:
        raise SpecError(f"invalid label {text!r}: expected key=value or key")
    return key, value


def parse_labels(items: Iterable[str]) -> dict[str, str]:
    """Several CLI labels into a map (later ones win)."""
    return dict(parse_label(item) for item in items)


# --- NodeSpec -----------------------------------------------------------------------------------

_NODE_FIELDS = ("Name", "Labels", "Role", "Availability")


def validate_node_spec(spec: Any, current: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A normalised NodeSpec {Labels, Role, Availability[, Name]}.

    Role and Availability are required, as in Docker (`invalid Role: ""`), unless `current`
    (the node's present spec) supplies them: fields absent from `spec` keep their current value.
    """
    spec = known_fields("node spec", _object("node spec", spec), _NODE_FIELDS)
    base = dict(current or {})
    merged = {**base, **{k: v for k, v in spec.items() if v is not None or k == "Labels"}}
    out: dict[str, Any] = {"Labels": validate_labels("Labels", merged.get("Labels"))}
    if "Role" not in merged:
        raise SpecError('invalid Role: "" (must be "manager" or "worker")')
    out["Role"] = _choice("Role", merged["Role"], NODE_ROLES)
    if "Availability" not in merged:
        raise SpecError('invalid Availability: "" (must be "active", "pause" or "drain")')
    out["Availability"] = _choice("Availability", merged["Availability"], NODE_AVAILABILITIES)
    name = _str("Name", merged.get("Name") or "")
    if name:
        out["Name"] = name
    return out


# --- SwarmSpec ----------------------------------------------------------------------------------


def _raft(where: str, value: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: _int(f"{where}.{k}", v, minimum=0) for k, v in value.items()}
    for tick in ("ElectionTick", "HeartbeatTick"):
        if out[tick] < 1:
            raise SpecError(f"{where}.{tick} must be at least 1")
    if out["ElectionTick"] <= out["HeartbeatTick"]:
        raise SpecError(f"{where}.ElectionTick must be greater than {where}.HeartbeatTick")
    return out


# The heartbeat periods every node honours (worker/session.py): a period outside them would be one
# that the leader's grace counts on and the nodes do not use.
MIN_HEARTBEAT_PERIOD = 50_000_000  # 50ms
MAX_HEARTBEAT_PERIOD = 24 * 3600 * 1_000_000_000  # 24h


def _dispatcher(where: str, value: Mapping[str, Any]) -> dict[str, Any]:
    period = _duration(f"{where}.HeartbeatPeriod", value["HeartbeatPeriod"])
    if period <= 0:
        raise SpecError(f"{where}.HeartbeatPeriod: heartbeat period must be positive")
    if not MIN_HEARTBEAT_PERIOD <= period <= MAX_HEARTBEAT_PERIOD:
        low, high = format_duration(MIN_HEARTBEAT_PERIOD), format_duration(MAX_HEARTBEAT_PERIOD)
        raise SpecError(f"{where}.HeartbeatPeriod: heartbeat period must be between {low} and {high}")
    return {"HeartbeatPeriod": period}


def _external_ca(where: str, value: Any) -> dict[str, Any]:
    ca = known_fields(where, _object(where, value), ("Protocol", "URL", "Options", "CACert"))
    out: dict[str, Any] = {"Protocol": _choice(f"{where}.Protocol", ca.get("Protocol", "cfssl"), ("cfssl",))}
    out["URL"] = _str(f"{where}.URL", ca.get("URL", ""))
    if not out["URL"]:
        raise SpecError(f"{where}.URL is required")
    if ca.get("Options") is not None:
        out["Options"] = validate_labels(f"{where}.Options", ca["Options"])
    if ca.get("CACert"):
        out["CACert"] = _str(f"{where}.CACert", ca["CACert"])
    return out


def _ca_config(where: str, value: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    expiry = _duration(f"{where}.NodeCertExpiry", value["NodeCertExpiry"])
    if expiry < MIN_NODE_CERT_EXPIRY:
        minimum = format_duration(MIN_NODE_CERT_EXPIRY)
        raise SpecError(f"{where}.NodeCertExpiry: minimum certificate expiry time is: {minimum}")
    out["NodeCertExpiry"] = expiry
    # Root rotation and external CAs: checked for shape here; the API decides whether it supports them.
    if value.get("ExternalCAs"):
        cas = value["ExternalCAs"]
        if not isinstance(cas, list):
            raise SpecError(f"{where}.ExternalCAs must be a list")
        out["ExternalCAs"] = [_external_ca(f"{where}.ExternalCAs[{i}]", ca) for i, ca in enumerate(cas)]
    for key in ("SigningCACert", "SigningCAKey"):
        if value.get(key):
            out[key] = _str(f"{where}.{key}", value[key])
    if value.get("ForceRotate"):
        out["ForceRotate"] = _int(f"{where}.ForceRotate", value["ForceRotate"], minimum=0)
    return out


def _task_defaults(where: str, value: Mapping[str, Any]) -> dict[str, Any]:
    driver = value.get("LogDriver")
    if driver is None:
        return {}
    driver = known_fields(f"{where}.LogDriver", _object(f"{where}.LogDriver", driver), ("Name", "Options"))
    out: dict[str, Any] = {"Name": _str(f"{where}.LogDriver.Name", driver.get("Name", ""))}
    if driver.get("Options") is not None:
        out["Options"] = validate_labels(f"{where}.LogDriver.Options", driver["Options"])
    return {"LogDriver": out}


def _orchestration(where: str, value: Mapping[str, Any]) -> dict[str, Any]:
    # Negative means "never remove completed or failed tasks", so there is no minimum.
    limit = _int(f"{where}.TaskHistoryRetentionLimit", value["TaskHistoryRetentionLimit"])
    return {"TaskHistoryRetentionLimit": limit}


def _encryption(where: str, value: Mapping[str, Any]) -> dict[str, Any]:
    return {"AutoLockManagers": _bool(f"{where}.AutoLockManagers", value["AutoLockManagers"])}


_RAFT_FIELDS = ("SnapshotInterval", "KeepOldSnapshots", "LogEntriesForSlowFollowers", "ElectionTick", "HeartbeatTick")
_CA_FIELDS = ("NodeCertExpiry", "ExternalCAs", "SigningCACert", "SigningCAKey", "ForceRotate")

# section name → (known fields, checker of the section merged over its base)
_SECTIONS: dict[str, tuple[tuple[str, ...], Callable[[str, Mapping[str, Any]], dict[str, Any]]]] = {
    "Orchestration": (("TaskHistoryRetentionLimit",), _orchestration),
    "Raft": (_RAFT_FIELDS, _raft),
    "Dispatcher": (("HeartbeatPeriod",), _dispatcher),
    "CAConfig": (_CA_FIELDS, _ca_config),
    "TaskDefaults": (("LogDriver",), _task_defaults),
    "EncryptionConfig": (("AutoLockManagers",), _encryption),
}


# Docker merges a SwarmSpec into the current one field by field and reads 0 in these as "keep the
# current value" (convert.MergeSwarmSpecToGRPC): `docker swarm init` sends ElectionTick: 0.
_ZERO_KEEPS = ("SnapshotInterval", "LogEntriesForSlowFollowers", "ElectionTick", "HeartbeatTick", "HeartbeatPeriod")
_ZERO_KEEPS_BY_SECTION = {"Raft": _ZERO_KEEPS, "Dispatcher": _ZERO_KEEPS, "CAConfig": ("NodeCertExpiry",)}

# Settings shoal checks but does not act on yet. Docker honours a setting or rejects it, so a value
# other than the one in effect (the default) is refused; sending the current spec back still works.
NOT_YET_SUPPORTED = {
    "Raft": ("SnapshotInterval", "KeepOldSnapshots", "LogEntriesForSlowFollowers", "ElectionTick", "HeartbeatTick"),
    "CAConfig": ("ExternalCAs",),  # the other CA settings work (manager/control/ca_rotation.py)
    "TaskDefaults": ("LogDriver",),
}


def not_supported_yet(where: str, value: Any, in_effect: Any) -> SpecError:
    if isinstance(in_effect, bool) or in_effect in (None, ""):
        shown = "" if in_effect in (None, "") else f" (in effect: {str(in_effect).lower()})"
    else:
        shown = f" (in effect: {in_effect})"
    return SpecError(f"{where} {value!r} is not supported yet by shoal{shown}")


def _refuse_unsupported(spec: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
    for section, fields in NOT_YET_SUPPORTED.items():
        for name in fields:
            value = (spec.get(section) or {}).get(name)
            in_effect = (defaults.get(section) or {}).get(name)
            if value == in_effect or (in_effect is None and not value):
                continue
            if name in ("HeartbeatPeriod", "NodeCertExpiry"):
                value, in_effect = format_duration(value), format_duration(in_effect)
            raise not_supported_yet(f"{section}.{name}", value, in_effect)


def validate_swarm_spec(spec: Any, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A complete, normalised SwarmSpec: fields absent from `spec` (or null sections, or 0 where
    Docker reads 0 as "unchanged") keep their value in `base` — the current spec on update,
    Docker's defaults (`default_swarm_spec()`) on init. Durations may be given as Go strings
    ("5s") and come back as nanoseconds. Settings shoal does not implement yet must keep their
    value in effect (`NOT_YET_SUPPORTED`).
    """
    spec = known_fields(
        "swarm spec", _object("swarm spec", spec if spec is not None else {}), ("Name", "Labels", *_SECTIONS)
    )
    base_spec = copy.deepcopy(dict(base)) if base is not None else default_swarm_spec()
    defaults = default_swarm_spec()
    out: dict[str, Any] = {
        "Name": _str("Name", spec.get("Name") or base_spec.get("Name") or "default"),
        "Labels": validate_labels("Labels", spec["Labels"] if "Labels" in spec else base_spec.get("Labels")),
    }
    for section, (known, check) in _SECTIONS.items():
        given = spec.get(section)
        merged = {**defaults[section], **(base_spec.get(section) or {})}
        if given is not None:
            given = known_fields(section, _object(section, given), known)
            keeps = _ZERO_KEEPS_BY_SECTION.get(section, ())
            merged.update({k: v for k, v in given.items() if v is not None and not (k in keeps and v == 0)})
        out[section] = check(section, merged)
    _refuse_unsupported(out, defaults)
    return out


# --- swarm init and join requests ---------------------------------------------------------------

_INIT_FIELDS = (
    "ListenAddr",
    "AdvertiseAddr",
    "DataPathAddr",
    "DataPathPort",
    "ForceNewCluster",
    "Spec",
    "AutoLockManagers",
    "Availability",
    "DefaultAddrPool",
    "SubnetSize",
)
_JOIN_FIELDS = ("ListenAddr", "AdvertiseAddr", "DataPathAddr", "RemoteAddrs", "JoinToken", "Availability")


def _refuse_request_settings(where: str, req: Mapping[str, Any]) -> None:
    """The init/join settings shoal does not implement yet, at their zero or in-effect value only."""
    if _str(f"{where}.DataPathAddr", _opt_str(req.get("DataPathAddr"))):
        raise not_supported_yet("DataPathAddr", req["DataPathAddr"], "the advertise address")
    availability = _str(f"{where}.Availability", _opt_str(req.get("Availability")))
    if availability and _choice("Availability", availability, NODE_AVAILABILITIES) != "active":
        raise not_supported_yet("Availability", availability, "active")


def _opt_str(value: Any) -> Any:
    return "" if value is None else value


def _with_autolock(spec: dict[str, Any], autolock: bool) -> dict[str, Any]:
    """The init request's AutoLockManagers turns on the spec's, as dockerd passes it to SwarmKit."""
    if autolock:
        spec["EncryptionConfig"] = {**spec["EncryptionConfig"], "AutoLockManagers": True}
    return spec


def validate_init_request(body: Any, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A SwarmInitRequest checked and normalised: {ListenAddr, AdvertiseAddr, Spec (complete),
    DefaultAddrPool, SubnetSize}. The docker CLI always sends SubnetSize 24 and DataPathPort 0:
    those zero or in-effect values pass, any other is refused. AutoLockManagers true turns on
    Spec.EncryptionConfig.AutoLockManagers."""
    req = known_fields(
        "swarm init request", _object("swarm init request", body if body is not None else {}), _INIT_FIELDS
    )
    where = "swarm init request"
    _refuse_request_settings(where, req)
    port = validate_data_path_port(_int("DataPathPort", _opt(req.get("DataPathPort"), 0), minimum=0))
    if _bool("ForceNewCluster", _opt(req.get("ForceNewCluster"), False)):
        raise not_supported_yet("ForceNewCluster", True, False)
    autolock = _bool("AutoLockManagers", _opt(req.get("AutoLockManagers"), False))
    size = _int("SubnetSize", _opt(req.get("SubnetSize"), 0), minimum=0)
    pool, size = validate_default_addr_pool(req.get("DefaultAddrPool"), size)
    return {
        "ListenAddr": _str("ListenAddr", _opt_str(req.get("ListenAddr"))),
        "AdvertiseAddr": _str("AdvertiseAddr", _opt_str(req.get("AdvertiseAddr"))),
        "Spec": _with_autolock(
            validate_swarm_spec(req.get("Spec"), base if base is not None else default_swarm_spec()), autolock
        ),
        "DefaultAddrPool": pool,
        "SubnetSize": size,
        "DataPathPort": port,
    }


MIN_DATA_PATH_PORT, MAX_DATA_PATH_PORT = 1024, 49151
MAX_SUBNET_SIZE = 29  # Docker: 8 addresses, the smallest overlay that still has room for tasks


def validate_data_path_port(port: int) -> int:
    """Docker's check (daemon/cluster validateDataPathPort): 0 means the default, 4789."""
    if port == 0:
        return DATA_PATH_PORT
    if not MIN_DATA_PATH_PORT <= port <= MAX_DATA_PATH_PORT:
        raise SpecError(
            f"Datapath port number is not in valid range ({MIN_DATA_PATH_PORT}-{MAX_DATA_PATH_PORT}) : {port}"
        )
    return port


def validate_default_addr_pool(pool: Any, size: int) -> tuple[list[str], int]:
    """Docker's checks (daemon/cluster validateDefaultAddrPool) and shoal's: the pools as normalised
    IPv4 CIDRs (shoal's overlays are IPv4), none overlapping another, each large enough for one
    subnet of `size` (0 means 24, at most 29). No pool means Docker's 10.0.0.0/8; a size given
    without a pool applies to it."""
    if pool is None:
        pool = []
    if not isinstance(pool, list) or not all(isinstance(p, str) for p in pool):
        raise SpecError(f"DefaultAddrPool must be a list of subnets, not {pool!r}")
    size = size or DEFAULT_SUBNET_SIZE
    if size > MAX_SUBNET_SIZE:
        raise SpecError(f"subnet size is out of range: {size}")
    nets: list[ipaddress.IPv4Network] = []
    for given in pool or list(DEFAULT_ADDR_POOL):
        try:
            net = ipaddress.ip_network(given.strip(), strict=False)
        except ValueError as exc:
            raise SpecError(f"invalid base pool {given}: {exc}") from exc
        if net.version != 4:
            raise SpecError(f"invalid base pool {given}: shoal's overlay networks are IPv4 only")
        if size < net.prefixlen:
            raise SpecError(f"invalid CIDR: {given!r}. Subnet size is too small for pool: {size}")
        for other in nets:
            if net.overlaps(other):
                raise SpecError(f"invalid base pool {given}: it overlaps the pool {other}")
        nets.append(net)
    return [str(n) for n in nets], size


def validate_join_request(body: Any) -> dict[str, Any]:
    """A SwarmJoinRequest with canonical field names; the agent checks the token and addresses."""
    req = known_fields(
        "swarm join request", _object("swarm join request", body if body is not None else {}), _JOIN_FIELDS
    )
    _refuse_request_settings("swarm join request", req)
    return {
        "ListenAddr": _str("ListenAddr", _opt_str(req.get("ListenAddr"))),
        "AdvertiseAddr": _str("AdvertiseAddr", _opt_str(req.get("AdvertiseAddr"))),
        "RemoteAddrs": req.get("RemoteAddrs"),
        "JoinToken": req.get("JoinToken"),
    }


def _opt(value: Any, default: Any) -> Any:
    return default if value is None else value
