"""ContainerSpec.Mounts: validation at the API, in the Docker Engine API's shape.

The rules and messages are moby's (volume/mounts/linux_parser.go: "invalid mount config for type
...") and SwarmKit's (controlapi: a duplicate target is refused); runc's refusal of a mount inside
/proc is checked here too, so it is a 400 instead of a task that fails on every node. What the
node does with a mount (bind, the `local` volume driver, tmpfs) is runtime/oci/mounts.py.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any

from shoal.errors import SpecError
from shoal.model.validate import _bool, _int, _object, _str, known_fields, validate_labels

MOUNT_TYPES = ("bind", "volume", "tmpfs")
MOUNT_TYPES_NOT_YET = ("npipe", "cluster", "image")
PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
CONSISTENCIES = ("", "default", "consistent", "cached", "delegated")  # ignored on Linux, as by Docker
LOCAL_DRIVER = "local"
# moby's volume/local: a name must also be a safe directory name
VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
VOLUME_NAME_MAX = 255  # the volume is a directory: a longer name is ENAMETOOLONG, not a volume
# the kernel's pseudo-filesystems: runc refuses /proc ("... cannot be mounted because it is inside
# /proc"); /sys is the node's, read-only in the task, and a bind over it would hide that
FORBIDDEN_PREFIXES = ("/proc", "/sys")

_MOUNT_FIELDS = (
    "Type",
    "Source",
    "Target",
    "ReadOnly",
    "Consistency",
    "BindOptions",
    "VolumeOptions",
    "TmpfsOptions",
    "ClusterOptions",
    "ImageOptions",
)
_BIND_FIELDS = ("Propagation", "NonRecursive", "CreateMountpoint", "ReadOnlyNonRecursive", "ReadOnlyForceRecursive")
_VOLUME_FIELDS = ("NoCopy", "Labels", "DriverConfig", "Subpath")
_TMPFS_FIELDS = ("SizeBytes", "Mode", "Options")


# moby's volume/local: the options of the local driver, and which need which (mount(8)'s -t, source, -o)
LOCAL_OPTIONS = ("type", "device", "o")
_LOCAL_REQUIRED = {"device": ("type",), "type": ("device",), "o": ("device", "type")}


def local_options_error(options: Mapping[str, str]) -> str | None:
    """moby's validateOpts of the local driver, with its messages (size quotas are not supported)."""
    for key in sorted(options):
        if key == "size":
            return 'invalid option: "size" (quotas are not supported by shoal; a tmpfs volume takes o=size=64m)'
        if key not in LOCAL_OPTIONS:
            return f"invalid option: {key!r}".replace("'", '"')
    for key, required in sorted(_LOCAL_REQUIRED.items()):
        for needed in required:
            if key in options and needed not in options:
                return f'missing required option: "{needed}"'
    return None


class MountConfigError(SpecError):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f'invalid mount config for type "{kind}": {reason}')


def volume_name_error(name: str) -> str | None:
    if len(name) > VOLUME_NAME_MAX:
        return f"volume name is too long: {len(name)} characters, at most {VOLUME_NAME_MAX}"
    if VOLUME_NAME_RE.match(name):
        return None
    return (
        f'"{name}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are '
        "allowed. If you intended to pass a host directory, use absolute path"
    )


def _absolute(kind: str, path: str) -> None:
    if not path.startswith("/"):
        raise MountConfigError(kind, f"invalid mount path: '{path}' mount path must be absolute")


def _target(kind: str, target: str) -> str:
    if not target:
        raise MountConfigError(kind, "field Target must not be empty")
    _absolute(kind, target)
    clean = posixpath.normpath(target)
    if clean == "/":
        raise MountConfigError(kind, "invalid specification: destination can't be '/'")
    for prefix in FORBIDDEN_PREFIXES:
        if clean == prefix or clean.startswith(prefix + "/"):
            raise MountConfigError(kind, f'"{clean}" cannot be mounted because it is inside {prefix}')
    return target


def _extra(kind: str, m: Mapping[str, Any], *names: str) -> None:
    for name in names:
        if m.get(name):
            raise MountConfigError(kind, f"field {name} must not be specified")


def _bind_options(where: str, value: Any) -> dict[str, Any]:
    b = known_fields(where, _object(where, value), _BIND_FIELDS)
    for name in ("ReadOnlyNonRecursive", "ReadOnlyForceRecursive"):
        if b.get(name):
            raise SpecError(f"{where}.{name} is not supported by shoal")
    out: dict[str, Any] = {}
    propagation = _str(f"{where}.Propagation", b.get("Propagation") or "")
    if propagation:
        if propagation not in PROPAGATIONS:
            raise SpecError(f"{where}.Propagation: invalid propagation mode {propagation!r}")
        out["Propagation"] = propagation
    for name in ("NonRecursive", "CreateMountpoint"):
        if b.get(name) is not None and _bool(f"{where}.{name}", b[name]):
            out[name] = True
    return out


def _volume_options(where: str, value: Any) -> dict[str, Any]:
    v = known_fields(where, _object(where, value), _VOLUME_FIELDS)
    if v.get("Subpath"):
        raise SpecError(f"{where}.Subpath is not supported by shoal")
    out: dict[str, Any] = {}
    if v.get("NoCopy") is not None and _bool(f"{where}.NoCopy", v["NoCopy"]):
        out["NoCopy"] = True
    labels = validate_labels(f"{where}.Labels", v.get("Labels"))
    if labels:
        out["Labels"] = labels
    if v.get("DriverConfig") is not None:
        dc_where = f"{where}.DriverConfig"
        dc = known_fields(dc_where, _object(dc_where, v["DriverConfig"]), ("Name", "Options"))
        name = _str(f"{where}.DriverConfig.Name", dc.get("Name") or "")
        if name not in ("", LOCAL_DRIVER):
            raise SpecError(f"{where}.DriverConfig.Name {name!r} is not supported by shoal (only the local driver)")
        options = validate_labels(f"{where}.DriverConfig.Options", dc.get("Options"))
        if err := local_options_error(options):
            raise SpecError(f"{dc_where}.Options: {err}")
        if name or options:
            out["DriverConfig"] = {**({"Name": name} if name else {}), **({"Options": options} if options else {})}
    return out


def _tmpfs_options(where: str, value: Any) -> dict[str, Any]:
    t = known_fields(where, _object(where, value), _TMPFS_FIELDS)
    if t.get("Options"):
        raise SpecError(f"{where}.Options is not supported by shoal")
    out: dict[str, Any] = {}
    size = _int(f"{where}.SizeBytes", t.get("SizeBytes") or 0)
    if size < 0:
        raise MountConfigError("tmpfs", "invalid tmpfs size: must not be negative")
    if size:
        out["SizeBytes"] = size
    mode = _int(f"{where}.Mode", t.get("Mode") or 0, minimum=0)
    if mode > 0o7777:
        raise SpecError(f"{where}.Mode: invalid file mode {mode:o}")
    if mode:
        out["Mode"] = mode
    return out


def validate_mount(where: str, value: Any) -> dict[str, Any]:
    m = known_fields(where, _object(where, value), _MOUNT_FIELDS)
    kind = _str(f"{where}.Type", m.get("Type") or "")
    if kind in MOUNT_TYPES_NOT_YET:
        raise SpecError(f"{where}.Type {kind!r} is not supported by shoal (bind, volume and tmpfs are)")
    if kind not in MOUNT_TYPES:
        raise SpecError(f'invalid mount config for type "{kind}": mount type unknown')
    _extra(kind, m, "ClusterOptions", "ImageOptions")
    source = _str(f"{where}.Source", m.get("Source") or "")
    target = _target(kind, _str(f"{where}.Target", m.get("Target") or ""))
    out: dict[str, Any] = {"Type": kind, "Source": source, "Target": target}
    if m.get("ReadOnly") is not None and _bool(f"{where}.ReadOnly", m["ReadOnly"]):
        out["ReadOnly"] = True
    consistency = _str(f"{where}.Consistency", m.get("Consistency") or "")
    if consistency not in CONSISTENCIES:
        raise SpecError(f"{where}.Consistency: invalid consistency {consistency!r}")
    if consistency:
        out["Consistency"] = consistency
    if kind == "bind":
        _extra(kind, m, "VolumeOptions", "TmpfsOptions")
        if not source:
            raise MountConfigError(kind, "field Source must not be empty")
        _absolute(kind, source)
        if m.get("BindOptions") is not None:
            bind = _bind_options(f"{where}.BindOptions", m["BindOptions"])
            if bind:
                out["BindOptions"] = bind
    elif kind == "volume":
        _extra(kind, m, "BindOptions", "TmpfsOptions")
        # a templated name ({{.Task.Slot}}) is checked once rendered, on the node
        if source and "{{" not in source and (err := volume_name_error(source)):
            raise MountConfigError(kind, err)
        if m.get("VolumeOptions") is not None:
            vol = _volume_options(f"{where}.VolumeOptions", m["VolumeOptions"])
            if vol:
                out["VolumeOptions"] = vol
    else:
        _extra(kind, m, "BindOptions", "VolumeOptions", "Source")
        if m.get("TmpfsOptions") is not None:
            tmpfs = _tmpfs_options(f"{where}.TmpfsOptions", m["TmpfsOptions"])
            if tmpfs:
                out["TmpfsOptions"] = tmpfs
    return out


def validate_mounts(where: str, value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError(f"{where} must be a list")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        mount = validate_mount(f"{where}[{i}]", item)
        target = posixpath.normpath(mount["Target"])
        if target in seen:
            raise SpecError(f"invalid mount target, duplicate mount point: {mount['Target']}")
        seen.add(target)
        out.append(mount)
    return out
