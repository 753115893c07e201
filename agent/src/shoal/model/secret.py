"""Secrets and configs (Docker's `Secret`, `Config`): spec validation, objects, and client views.

Pure: IDs and timestamps come from the caller. The rules are SwarmKit's (api/validation and
controlapi/secret.go, config.go): names of at most 64 `[a-zA-Z0-9-_.]` characters starting and
ending with a letter or digit, data base64 in the API and at most 500 KB (secrets) or 1000 KB
(configs), only Labels may change after create. Secret data is never part of a view.

Each is a store kind of its own, named as the Kind (`secret`, `config`: `STORE_KINDS`), so the
store's name index keeps names unique; objects also carry the `Kind` marker, so a list of both
kinds (a service's references) still tells them apart.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shoal.errors import SpecError
from shoal.model.validate import _str, known_fields, validate_labels

STORE_KINDS = ("secret", "config")
_NAME_RE = re.compile(r"^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$")
MAX_NAME = 64

Obj = dict[str, Any]


@dataclass(frozen=True)
class Kind:
    """What differs between secrets and configs."""

    name: str  # "secret" or "config": the `Kind` marker, and the word in messages
    max_size: int
    fields: tuple[str, ...]
    shows_data: bool  # configs return their Data on inspect and list, secrets never do

    @property
    def plural(self) -> str:
        return self.name + "s"


SECRET = Kind("secret", 500 * 1024, ("Name", "Labels", "Data", "Driver", "Templating"), shows_data=False)
CONFIG = Kind("config", 1000 * 1024, ("Name", "Labels", "Data", "Templating"), shows_data=True)
KINDS = {k.name: k for k in (SECRET, CONFIG)}


def validate_name(kind: Kind, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise SpecError("name must be provided")
    if len(value) > MAX_NAME or not _NAME_RE.match(value):
        raise SpecError(
            f"invalid {kind.name} name {value!r}: only {MAX_NAME} [a-zA-Z0-9-_.] characters allowed, "
            "and the start and end character must be [a-zA-Z0-9]"
        )
    return value


def decode_data(kind: Kind, value: Any) -> bytes:
    """The payload from its base64 form; size as SwarmKit checks it (at least 1 byte, below the limit)."""
    if value is None:
        value = ""
    text = _str("Data", value)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SpecError(f"{kind.name} Data must be standard base64 (RFC 4648)") from None
    if not 0 < len(data) < kind.max_size:
        raise SpecError(f"{kind.name} data must be larger than 0 and less than {kind.max_size // 1024} KB")
    return data


def _refuse_driver(where: str, value: Any) -> None:
    """Drivers (external secret stores, config templating) are not implemented: refused, not ignored."""
    if value is None or value == {} or (isinstance(value, Mapping) and not value.get("Name")):
        return
    raise SpecError(f"{where} is not supported by shoal ({where.split('.')[-1].lower()} drivers are not implemented)")


def validate_spec(kind: Kind, body: Any) -> Obj:
    """A complete spec from a create body: {Name, Labels, Data} (Data still base64)."""
    spec = known_fields(f"{kind.name} spec", body if body is not None else {}, kind.fields)
    for name in ("Driver", "Templating"):
        if name in kind.fields:
            _refuse_driver(f"{kind.name} spec.{name}", spec.get(name))
    data = decode_data(kind, spec.get("Data"))
    return {
        "Name": validate_name(kind, spec.get("Name")),
        "Labels": validate_labels("Labels", spec.get("Labels")),
        "Data": base64.b64encode(data).decode(),
    }


def validate_update(kind: Kind, current: Obj, body: Any) -> Obj:
    """The new spec of an update: only Labels may change (SwarmKit's rule). An absent Data, Name
    or driver means "unchanged", as the docker CLI and SDK send the spec they read (no Data)."""
    spec = known_fields(f"{kind.name} spec", body if body is not None else {}, kind.fields)
    for name in ("Driver", "Templating"):
        if name in kind.fields:
            _refuse_driver(f"{kind.name} spec.{name}", spec.get(name))
    old = current["Spec"]
    if spec.get("Name") not in (None, "", old["Name"]):
        raise SpecError(f"only updates to Labels are allowed (the {kind.name}'s name cannot change)")
    if spec.get("Data") not in (None, "") and decode_data(kind, spec["Data"]) != base64.b64decode(old["Data"]):
        raise SpecError(f"only updates to Labels are allowed (the {kind.name}'s data cannot change)")
    return {**old, "Labels": validate_labels("Labels", spec.get("Labels"))}


def new_object(kind: Kind, obj_id: str, spec: Obj, now: str) -> Obj:
    return {"ID": obj_id, "Kind": kind.name, "Version": {"Index": 0}, "CreatedAt": now, "UpdatedAt": now, "Spec": spec}


def updated_object(current: Obj, spec: Obj, now: str) -> Obj:
    return {**current, "Spec": spec, "UpdatedAt": now}


def is_kind(obj: Mapping[str, Any], kind: Kind) -> bool:
    return obj.get("Kind") == kind.name


def view(kind: Kind, obj: Mapping[str, Any]) -> Obj:
    """What `GET /secrets` and `/configs` answer: no marker, and for secrets no Data."""
    spec = {k: v for k, v in obj["Spec"].items() if kind.shows_data or k != "Data"}
    return {
        "ID": obj["ID"],
        "Version": dict(obj["Version"]),
        "CreatedAt": obj["CreatedAt"],
        "UpdatedAt": obj["UpdatedAt"],
        "Spec": spec,
    }
