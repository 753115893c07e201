"""What callers hand to the store (`Change`) and what it hands back to watchers (`Event`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shoal.store.errors import InvalidChange

KINDS = ("cluster", "node", "service", "task", "network", "meta", "secret", "config")
# Kinds whose Spec.Name is unique in the cluster (like SwarmKit's service, network, secret and
# config stores).
NAMED_KINDS = ("service", "network", "secret", "config")
OPS = ("create", "update", "delete", "check", "unchanged")
# Preconditions: change nothing, fail the whole batch when they do not hold (checked against the
# state before the batch, so put them first). "check": the object exists (at `expected_version`
# if set). "unchanged": no object of the kind was created or updated after log index
# `expected_version` (how "is this network in use?" stays true until the delete commits).
PRECONDITIONS = ("check", "unchanged")

# The shape a change travels in through the Raft log: plain tuples, so the log and snapshots do not
# depend on this module's class names (op, kind, obj, obj_id, expected_version).
WireChange = tuple[str, str, dict[str, Any] | None, str | None, int | None]


@dataclass(frozen=True)
class Change:
    """One object change of a batch.

    create: `obj` carries ID, CreatedAt and UpdatedAt, chosen before proposing (apply is deterministic).
    update: `obj` is the full new object; `expected_version`, if set, must equal the stored Version.Index.
    delete: `obj_id` (+ optional `expected_version`).
    check / unchanged: preconditions, see PRECONDITIONS (`Change.exists`, `Change.none_newer`).
    Apply sets Version.Index to the Raft log index of the batch.
    """

    op: str
    kind: str
    obj: dict[str, Any] | None = None
    obj_id: str | None = None
    expected_version: int | None = None

    def __post_init__(self) -> None:
        # Fail in the caller, before proposing: a malformed change is a bug, not a conflict.
        if self.op not in OPS:
            raise InvalidChange(f"unknown change op {self.op!r}")
        if self.kind not in KINDS:
            raise InvalidChange(f"unknown object kind {self.kind!r}")
        if self.expected_version is not None and (
            not isinstance(self.expected_version, int) or isinstance(self.expected_version, bool)
        ):
            raise InvalidChange("expected_version must be an integer")
        if self.op in ("create", "update"):
            if not isinstance(self.obj, dict) or not isinstance(self.obj.get("ID"), str) or not self.obj["ID"]:
                raise InvalidChange(f"{self.op} of a {self.kind} needs an object with a string ID")
            if self.obj_id is not None and self.obj_id != self.obj["ID"]:
                raise InvalidChange(f"obj_id {self.obj_id!r} does not match the object's ID {self.obj['ID']!r}")
        elif self.op == "unchanged":
            if self.expected_version is None or self.obj is not None or self.obj_id is not None:
                raise InvalidChange("an 'unchanged' precondition takes only a kind and an index")
        elif not isinstance(self.obj_id, str) or not self.obj_id:
            raise InvalidChange(f"{self.op} of a {self.kind} needs obj_id")

    @classmethod
    def exists(cls, kind: str, obj_id: str, version: int | None = None) -> Change:
        """Precondition: the object is still there (and still at `version`, if given)."""
        return cls(op="check", kind=kind, obj_id=obj_id, expected_version=version)

    @classmethod
    def none_newer(cls, kind: str, index: int) -> Change:
        """Precondition: no object of `kind` was created or updated after log index `index`."""
        return cls(op="unchanged", kind=kind, expected_version=index)

    @property
    def target_id(self) -> str | None:
        if self.obj is not None:
            return str(self.obj["ID"])
        return self.obj_id

    def to_wire(self) -> WireChange:
        return (self.op, self.kind, self.obj, self.target_id, self.expected_version)


@dataclass
class Event:
    """A change after it was applied. `obj` is the new object, or the deleted one."""

    kind: str
    action: str  # "create" | "update" | "delete"
    obj: dict[str, Any]
    index: int
