"""The replicated state machine, as pure data and pure functions.

Everything here runs on every replica with the same inputs in the same order, so it must be
deterministic: no clocks, no randomness, no iteration over unordered sets. The Raft glue
(`machine.py`) passes the log index in; IDs and timestamps were chosen by the proposer.

Stored objects are never mutated in place: an update replaces the dict. Readers can therefore take
references under the lock and copy them outside it.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any

from shoal.store.changes import KINDS, NAMED_KINDS, OPS, PRECONDITIONS, Event, WireChange

# How many request ids each replica remembers to recognise a retried command. Part of the replicated
# semantics (every replica evicts the same ids), so it is a constant, not a setting.
RECENT_REQUESTS = 10_000
SNAPSHOT_FORMAT = 1

# ("ok", index) or ("err", error class name, message); plain tuples so snapshots stay class-free.
Outcome = tuple[Any, ...]


class _Reject(Exception):
    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


def spec_name(obj: dict[str, Any] | None) -> str | None:
    spec = obj.get("Spec") if obj else None
    name = spec.get("Name") if isinstance(spec, dict) else None
    return name if isinstance(name, str) and name else None


class StoreState:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS}
        self.names: dict[str, dict[str, str]] = {kind: {} for kind in NAMED_KINDS}
        self.recent: OrderedDict[str, Outcome] = OrderedDict()
        self.epoch = 0
        self.epoch_leader: str | None = None
        self.epoch_term = 0
        self.last_index = 0  # log index of the last command applied here

    # ---- batches
    def apply_batch(
        self, index: int, request_id: str, changes: list[WireChange], expected_epoch: int | None
    ) -> tuple[Outcome, list[Event]]:
        """Validate every change against the current state, then apply all of them, or none."""
        self.last_index = max(self.last_index, index)
        seen = self.recent.get(request_id)
        if seen is not None:
            return seen, []  # a retried command: same answer, no second apply
        try:
            if expected_epoch is not None and expected_epoch != self.epoch:
                raise _Reject("StaleEpoch", f"stale epoch {expected_epoch}: the current epoch is {self.epoch}")
            pending, names, events = self._validate(index, changes)
        except _Reject as rej:
            outcome: Outcome = ("err", rej.error, rej.message)
            self._remember(request_id, outcome)
            return outcome, []
        for (kind, obj_id), obj in pending.items():
            if obj is None:
                self.objects[kind].pop(obj_id, None)
            else:
                self.objects[kind][obj_id] = obj
        for (kind, name), owner in names.items():
            if owner is None:
                self.names[kind].pop(name, None)
            else:
                self.names[kind][name] = owner
        outcome = ("ok", index)
        self._remember(request_id, outcome)
        return outcome, events

    def _validate(
        self, index: int, changes: list[WireChange]
    ) -> tuple[dict[tuple[str, str], dict[str, Any] | None], dict[tuple[str, str], str | None], list[Event]]:
        # `pending` and `names` overlay the state so that later changes of a batch see earlier ones;
        # their final values are what the batch leaves behind.
        pending: dict[tuple[str, str], dict[str, Any] | None] = {}
        names: dict[tuple[str, str], str | None] = {}
        events: list[Event] = []
        seen_objs: set[int] = set()

        def current(kind: str, obj_id: str) -> dict[str, Any] | None:
            if (kind, obj_id) in pending:
                return pending[(kind, obj_id)]
            return self.objects[kind].get(obj_id)

        def name_owner(kind: str, name: str) -> str | None:
            if (kind, name) in names:
                return names[(kind, name)]
            return self.names[kind].get(name)

        if not isinstance(changes, list):
            raise _Reject("InvalidChange", "a batch is a list of changes")
        for change in changes:
            if not isinstance(change, tuple) or len(change) != 5:
                raise _Reject("InvalidChange", "malformed change")
            op, kind, obj, obj_id, expected = change
            if op not in OPS or kind not in KINDS:
                raise _Reject("InvalidChange", f"unknown change {op!r} of kind {kind!r}")
            if op in PRECONDITIONS:
                self._check_precondition(op, kind, obj_id, expected)
                continue
            if op != "delete":
                if not isinstance(obj, dict) or not isinstance(obj.get("ID"), str):
                    raise _Reject("InvalidChange", f"{op} of a {kind} needs an object with a string ID")
                obj_id = obj["ID"]
            if not isinstance(obj_id, str) or not obj_id:
                raise _Reject("InvalidChange", f"{op} of a {kind} needs an ID")
            old = current(kind, obj_id)
            if op == "create" and old is not None:
                raise _Reject("AlreadyExists", f"{kind} {obj_id} already exists")
            if op != "create":
                if old is None:
                    raise _Reject("NotFound", f"{kind} {obj_id} not found")
                stored = (old.get("Version") or {}).get("Index")
                if expected is not None and expected != stored:
                    raise _Reject(
                        "VersionConflict",
                        f"update out of sequence: {kind} {obj_id} is at version {stored}, not {expected}",
                    )
            if kind in NAMED_KINDS:
                old_name, new_name = spec_name(old), spec_name(obj if op != "delete" else None)
                if new_name is not None and new_name != old_name:
                    owner = name_owner(kind, new_name)
                    if owner is not None and owner != obj_id:
                        raise _Reject("NameConflict", f'{kind} name "{new_name}" is already in use')
                if old_name is not None and old_name != new_name:
                    names[(kind, old_name)] = None
                if new_name is not None:
                    names[(kind, new_name)] = obj_id
            if op == "delete":
                assert old is not None  # NotFound above otherwise
                pending[(kind, obj_id)] = None
                events.append(Event(kind, op, old, index))
                continue
            assert obj is not None
            if id(obj) in seen_objs:  # the same dict twice in one pickled batch: store separate copies
                obj = copy.deepcopy(obj)
            seen_objs.add(id(obj))
            obj["Version"] = {"Index": index}
            pending[(kind, obj_id)] = obj
            events.append(Event(kind, op, obj, index))
        return pending, names, events

    def _check_precondition(self, op: str, kind: str, obj_id: Any, expected: Any) -> None:
        """A precondition holds against the state before the batch, or the batch is refused."""
        if op == "unchanged":
            if not isinstance(expected, int):
                raise _Reject("InvalidChange", "an 'unchanged' precondition needs an index")
            for obj in self.objects[kind].values():
                if (obj.get("Version") or {}).get("Index", 0) > expected:
                    raise _Reject("VersionConflict", f"a {kind} changed after index {expected}: read again")
            return
        if not isinstance(obj_id, str) or not obj_id:
            raise _Reject("InvalidChange", f"check of a {kind} needs an ID")
        old = self.objects[kind].get(obj_id)
        if old is None:
            raise _Reject("NotFound", f"{kind} {obj_id} not found")
        stored = (old.get("Version") or {}).get("Index")
        if expected is not None and expected != stored:
            raise _Reject("VersionConflict", f"{kind} {obj_id} changed: it is at version {stored}, not {expected}")

    def _remember(self, request_id: str, outcome: Outcome) -> None:
        self.recent[request_id] = outcome
        while len(self.recent) > RECENT_REQUESTS:
            self.recent.popitem(last=False)

    # ---- epoch fencing
    def bump_epoch(self, index: int, leader: str, term: int) -> bool:
        """A new leader announces itself; only a higher term moves the epoch (an old leader's
        announcement committed late by its successor changes nothing)."""
        self.last_index = max(self.last_index, index)
        if term <= self.epoch_term:
            return False
        self.epoch += 1
        self.epoch_leader = leader
        self.epoch_term = term
        return True

    # ---- snapshots
    def to_dict(self) -> dict[str, Any]:
        # References, not copies: the caller pickles it right away on the tick thread (or in a fork).
        return {
            "format": SNAPSHOT_FORMAT,
            "objects": self.objects,
            "recent": list(self.recent.items()),
            "epoch": {"Epoch": self.epoch, "Leader": self.epoch_leader, "Term": self.epoch_term},
            "last_index": self.last_index,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoreState:
        if data.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unknown store snapshot format {data.get('format')!r}")
        state = cls()
        for kind, objs in data["objects"].items():
            state.objects.setdefault(kind, {}).update(objs)
        for kind in NAMED_KINDS:
            for obj_id, obj in state.objects[kind].items():
                name = spec_name(obj)
                if name is not None:
                    state.names[kind][name] = obj_id
        state.recent = OrderedDict((rid, tuple(out)) for rid, out in data["recent"])
        epoch = data["epoch"]
        state.epoch, state.epoch_leader, state.epoch_term = epoch["Epoch"], epoch["Leader"], epoch["Term"]
        state.last_index = data["last_index"]
        return state


def diff_events(old: StoreState, new: StoreState, index: int) -> list[Event]:
    """The events that turn `old` into `new`: what watchers see when a snapshot replaces the state."""
    events: list[Event] = []
    for kind in KINDS:
        before, after = old.objects.get(kind, {}), new.objects.get(kind, {})
        for obj_id, obj in before.items():
            if obj_id not in after:
                events.append(Event(kind, "delete", obj, index))
        for obj_id, obj in after.items():
            prev = before.get(obj_id)
            if prev is None:
                events.append(Event(kind, "create", obj, index))
            elif prev != obj:
                events.append(Event(kind, "update", obj, index))
    return events
