"""`ContainerSpec.Secrets` and `ContainerSpec.Configs`: shape checks, resolution, file targets.

Shapes are Docker's SecretReference {SecretID, SecretName, File{Name, UID, GID, Mode}} and
ConfigReference {ConfigID, ConfigName, File, Runtime}; the rules SwarmKit's
(validateSecretRefsSpec, checkSecretExistence): a target file name, no two references on one
target, every reference naming an existing object ("secret not found: x"). `Runtime` configs
(credential specs, a Windows feature) are refused.

Where the file lands inside a task: a secret's relative target under /run/secrets, a config's
under / (Docker's defaults: `/run/secrets/<name>`, `/<name>`); an absolute target as given.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shoal.errors import SpecError
from shoal.model.secret import CONFIG, SECRET, Kind, is_kind
from shoal.model.validate import _int, _str, known_fields

Obj = dict[str, Any]
DEFAULT_MODE = 0o444
SECRETS_DIR = "/run/secrets"
_FILE_FIELDS = ("Name", "UID", "GID", "Mode")


@dataclass(frozen=True)
class RefKind:
    kind: Kind
    spec_field: str  # "Secrets" / "Configs" in ContainerSpec
    id_field: str
    name_field: str
    base_dir: str  # where a relative target lands inside the task
    extra_fields: tuple[str, ...] = ()


SECRET_REFS = RefKind(SECRET, "Secrets", "SecretID", "SecretName", SECRETS_DIR)
CONFIG_REFS = RefKind(CONFIG, "Configs", "ConfigID", "ConfigName", "/", ("Runtime",))
REF_KINDS = (SECRET_REFS, CONFIG_REFS)


def _target(where: str, value: Any) -> str:
    name = _str(f"{where}.Name", value)
    parts = [p for p in name.split("/") if p]
    if not name or not parts or any(p in (".", "..") for p in parts):
        raise SpecError(f"{where}: malformed file reference, invalid target file name {name!r}")
    return name


def _id_string(where: str, value: Any) -> str:
    text = "0" if value in (None, "") else _str(where, value)
    if not text.isdigit():
        raise SpecError(f"{where} must be a numeric user or group ID, not {text!r}")
    return text


def _file(where: str, value: Any, default_name: str) -> Obj:
    f = known_fields(where, value if value is not None else {}, _FILE_FIELDS)
    mode = DEFAULT_MODE if f.get("Mode") is None else _int(f"{where}.Mode", f["Mode"], minimum=0)
    if mode > 0o777:
        raise SpecError(f"{where}.Mode must be a permission mode (at most 0777), not {mode:#o}")
    return {
        "Name": _target(where, f.get("Name") or default_name),
        "UID": _id_string(f"{where}.UID", f.get("UID")),
        "GID": _id_string(f"{where}.GID", f.get("GID")),
        "Mode": mode,
    }


def _one_ref(rk: RefKind, where: str, value: Any) -> Obj:
    ref = known_fields(where, value, (rk.id_field, rk.name_field, "File", *rk.extra_fields))
    if ref.get("Runtime") not in (None, {}):
        raise SpecError(f"{where}.Runtime is not supported by shoal (runtime configs are not implemented)")
    ref_id = _str(f"{where}.{rk.id_field}", ref.get(rk.id_field) or "")
    name = _str(f"{where}.{rk.name_field}", ref.get(rk.name_field) or "")
    if not ref_id and not name:
        raise SpecError(f"{where}: a {rk.kind.name} reference needs {rk.id_field} or {rk.name_field}")
    return {rk.id_field: ref_id, rk.name_field: name, "File": _file(f"{where}.File", ref.get("File"), name)}


def validate_refs(where: str, container: Mapping[str, Any]) -> Obj:
    """{"Secrets": [...], "Configs": [...]} for a ContainerSpec, each key only when it has items
    (so a spec without them reads as it did before shoal had them)."""
    out: Obj = {}
    targets: dict[str, str] = {}
    for rk in REF_KINDS:
        value = container.get(rk.spec_field)
        if value is None or value == []:
            continue
        if not isinstance(value, list):
            raise SpecError(f"{where}.{rk.spec_field} must be a list, not {type(value).__name__}")
        refs = [_one_ref(rk, f"{where}.{rk.spec_field}[{i}]", v) for i, v in enumerate(value)]
        for ref in refs:
            path = target_path(rk, ref)
            label = ref[rk.name_field] or ref[rk.id_field]
            if path in targets:
                raise SpecError(
                    f"{rk.kind.name} references '{targets[path]}' and '{label}' have a conflicting target: '{path}'"
                )
            targets[path] = label
        out[rk.spec_field] = refs
    return out


def target_path(rk: RefKind, ref: Mapping[str, Any]) -> str:
    name = ref["File"]["Name"]
    return posixpath.normpath(name if name.startswith("/") else posixpath.join(rk.base_dir, name))


def resolve_refs(container: Mapping[str, Any], objects: Iterable[Mapping[str, Any]]) -> tuple[Obj, list[str]]:
    """The ContainerSpec with every reference's ID and name filled from the store, and the IDs it
    uses (for the commit's preconditions). An ID that is not there, or whose name differs from the
    one given, is "secret not found: name" as in SwarmKit."""
    objects = list(objects)
    out = dict(container)
    used: list[str] = []
    for rk in REF_KINDS:
        refs = container.get(rk.spec_field)
        if not refs:
            continue
        mine = [o for o in objects if is_kind(o, rk.kind)]
        resolved, missing = [], []
        for ref in refs:
            obj = _find(mine, ref[rk.id_field], ref[rk.name_field])
            if obj is None:
                missing.append(ref[rk.name_field] or ref[rk.id_field])
                continue
            resolved.append({**ref, rk.id_field: obj["ID"], rk.name_field: obj["Spec"]["Name"]})
            used.append(obj["ID"])
        if missing:
            noun = rk.kind.name if len(missing) == 1 else rk.kind.plural
            raise SpecError(f"{noun} not found: {', '.join(missing)}")
        out[rk.spec_field] = resolved
    return out, sorted(set(used))


def _find(objects: Sequence[Mapping[str, Any]], ref_id: str, name: str) -> Mapping[str, Any] | None:
    for obj in objects:
        if ref_id and obj["ID"] == ref_id:
            return obj if not name or obj["Spec"]["Name"] == name else None
        if not ref_id and obj["Spec"]["Name"] == name:
            return obj
    return None


def used_ids(container: Mapping[str, Any], rk: RefKind) -> set[str]:
    return {r[rk.id_field] for r in container.get(rk.spec_field) or [] if r.get(rk.id_field)}
