"""Placement constraints and spread preferences, parsed and matched against Node dicts.

Shaped after SwarmKit's manager/constraint: `KEY==VALUE` / `KEY!=VALUE`, all of them
ANDed, values compared case-insensitively, label names case-sensitive. Unlike SwarmKit,
an unknown key is an error here (not a silent "never matches") so that the API can
answer 400 before a service is stored with a constraint nobody can satisfy.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shoal.errors import SpecError

NODE_LABEL_PREFIX = "node.labels."
ENGINE_LABEL_PREFIX = "engine.labels."
OPERATORS = ("==", "!=")

# Same character sets Docker accepts, so that a spec valid for Docker is valid here.
_KEY_RE = re.compile(r"^[a-z_][a-z0-9\-_.]+$", re.IGNORECASE)
_VALUE_RE = re.compile(r"^[a-z0-9:\-_\s.*()?+\[\]\\^$|/]+$", re.IGNORECASE)


class ConstraintError(SpecError):
    """A constraint or placement preference the scheduler cannot use: a 400 (and a ValueError,
    as SpecError is, for the callers that catch it as one)."""


def dig(d: Mapping[str, Any] | None, *keys: str) -> Any:
    """Walk nested dicts; a missing or null level gives None (Docker omits empty fields)."""
    for k in keys:
        if not d:
            return None
        d = d.get(k)
    return d


def _text(v: Any) -> str:
    return v if isinstance(v, str) else ""


def node_label(node: Mapping[str, Any], name: str) -> str:
    return _text((dig(node, "Spec", "Labels") or {}).get(name))


def engine_label(node: Mapping[str, Any], name: str) -> str:
    return _text((dig(node, "Description", "Engine", "Labels") or {}).get(name))


Getter = Callable[[Mapping[str, Any]], str]

_FIXED_KEYS: dict[str, Getter] = {
    "node.id": lambda n: _text(n.get("ID")),
    "node.hostname": lambda n: _text(dig(n, "Description", "Hostname")),
    # Spec.Role is the role the cluster wants the node to have; Docker matches on it too.
    "node.role": lambda n: _text(dig(n, "Spec", "Role")),
    "node.platform.os": lambda n: _text(dig(n, "Description", "Platform", "OS")),
    "node.platform.arch": lambda n: _text(dig(n, "Description", "Platform", "Architecture")),
}


def attribute_getter(key: str) -> Getter | None:
    """The function reading `key` from a Node dict, or None for an unknown key."""
    low = key.lower()
    if low in _FIXED_KEYS:
        return _FIXED_KEYS[low]
    for prefix, lookup in ((NODE_LABEL_PREFIX, node_label), (ENGINE_LABEL_PREFIX, engine_label)):
        if len(key) > len(prefix) and low.startswith(prefix):
            name = key[len(prefix) :]  # label names keep their case

            def get(n: Mapping[str, Any], _name: str = name, _lookup: Callable[..., str] = lookup) -> str:
                return _lookup(n, _name)

            return get
    return None


@dataclass(frozen=True, slots=True)
class Constraint:
    key: str
    operator: str  # "==" or "!="
    value: str
    _get: Getter = field(repr=False, compare=False)
    _folded: str = field(repr=False, compare=False)

    def matches(self, node: Mapping[str, Any]) -> bool:
        equal = self._get(node).casefold() == self._folded
        return equal if self.operator == "==" else not equal

    def __str__(self) -> str:
        return f"{self.key}{self.operator}{self.value}"


def parse_constraint(expr: str) -> Constraint:
    def bad(why: str) -> ConstraintError:
        return ConstraintError(f'invalid constraint "{expr}": {why}')

    if not isinstance(expr, str):
        raise ConstraintError(f"invalid constraint {expr!r}: not a string")
    for op in OPERATORS:  # "==" first, as Docker: "a==b!=c" is key "a", value "b!=c" (invalid)
        if op not in expr:
            continue
        key, value = (part.strip() for part in expr.split(op, 1))
        if not _KEY_RE.match(key):
            raise bad(f"key '{key}' is invalid")
        if not _VALUE_RE.match(value):
            raise bad(f"value '{value}' is invalid")
        getter = attribute_getter(key)
        if getter is None:
            raise bad("unknown key")
        return Constraint(key, op, value, getter, value.casefold())
    raise bad("expected one operator from " + ", ".join(OPERATORS))


def parse_constraints(exprs: Iterable[str] | None) -> list[Constraint]:
    """Parse `Placement.Constraints`; raises ConstraintError on the first bad expression."""
    return [parse_constraint(e) for e in exprs or ()]


def node_matches(constraints: Iterable[Constraint], node: Mapping[str, Any]) -> bool:
    return all(c.matches(node) for c in constraints)


def spread_descriptors(preferences: Iterable[Mapping[str, Any]] | None) -> list[str]:
    """The spread descriptors the scheduler honours, in precedence order.

    As SwarmKit, descriptors other than node/engine labels are ignored at scheduling time
    (validate_placement rejects them at the API).
    """
    out = []
    for pref in preferences or ():
        d = _text(dig(pref, "Spread", "SpreadDescriptor"))
        if attribute_getter(d) is not None and d.lower().startswith((NODE_LABEL_PREFIX, ENGINE_LABEL_PREFIX)):
            out.append(d)
    return out


def validate_placement(placement: Mapping[str, Any] | None) -> None:
    """Check a TaskSpec.Placement for the API; raises ConstraintError with a 400-ready message."""
    if not placement:
        return
    if not isinstance(placement, Mapping):
        raise ConstraintError("invalid placement: must be an object")
    constraints = placement.get("Constraints")
    if constraints is not None and not isinstance(constraints, list):
        raise ConstraintError("invalid placement: Constraints must be a list of strings")
    parse_constraints(constraints)
    for pref in placement.get("Preferences") or ():
        d = dig(pref, "Spread", "SpreadDescriptor") if isinstance(pref, Mapping) else None
        if not isinstance(d, str) or not d:
            raise ConstraintError(
                f"invalid placement preference {pref!r}: only Spread with a SpreadDescriptor is supported"
            )
        if not spread_descriptors([pref]):
            raise ConstraintError(
                f'invalid placement preference "spread={d}": '
                "can only spread over node.labels.<key> or engine.labels.<key>"
            )
    max_replicas = placement.get("MaxReplicas", 0)
    if isinstance(max_replicas, bool) or not isinstance(max_replicas, int) or max_replicas < 0:
        raise ConstraintError(f"invalid placement: MaxReplicas must be a non-negative integer, not {max_replicas!r}")
    for p in placement.get("Platforms") or ():
        if not isinstance(p, Mapping):
            raise ConstraintError(f"invalid placement platform {p!r}: must be an object with OS and Architecture")
