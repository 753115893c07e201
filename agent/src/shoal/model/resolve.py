"""One resolver for every object reference: full ID, then name, then unique ID prefix.

The order is SwarmKit's (daemon/cluster getNode/getService/getNetwork): an exact ID always wins,
a name beats a prefix, and a name or prefix that matches several objects is an error, never a guess.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from shoal.errors import NotFound, ShoalError

Obj = dict[str, Any]


def spec_names(obj: Obj) -> list[str]:
    name = (obj.get("Spec") or {}).get("Name")
    return [name] if name else []


def resolve(
    objects: Sequence[Obj],
    ref: str,
    kind: str,
    names: Callable[[Obj], list[str]] = spec_names,
    *,
    ambiguous: type[ShoalError] = NotFound,
) -> Obj:
    """The object `ref` names; NotFound if none, `ambiguous` if several match."""
    for obj in objects:
        if obj["ID"] == ref:
            return obj
    for candidates in (
        [o for o in objects if ref in names(o)],
        [o for o in objects if ref and o["ID"].startswith(ref)],
    ):
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            raise ambiguous(f"{kind} {ref} is ambiguous ({len(candidates)} matches found)")
    raise NotFound(f"{kind} {ref} not found")


def no_names(_obj: Obj) -> list[str]:
    return []
