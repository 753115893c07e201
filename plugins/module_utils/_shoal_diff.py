# Copyright: shoal developers
# Apache License 2.0 (see galaxy.yml)
"""Desired vs current specs: what differs, whether anything changes, and the diff to show.

Shaped after community.docker's ``DifferenceTracker``: every difference is recorded as
(name, parameter = the wanted value, active = the value in place); ``changes`` lists the names.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any


class DifferenceTracker:
    def __init__(self) -> None:
        self._diff: list[dict[str, Any]] = []

    def add(self, name: str, parameter: Any = None, active: Any = None) -> None:
        self._diff.append({"name": name, "parameter": parameter, "active": active})

    def merge(self, other: DifferenceTracker) -> None:
        self._diff.extend(other._diff)

    @property
    def empty(self) -> bool:
        return not self._diff

    def has_difference_for(self, name: str) -> bool:
        return any(item["name"] == name for item in self._diff)

    def get_before_after(self) -> tuple[dict[str, Any], dict[str, Any]]:
        before = {item["name"]: item["active"] for item in self._diff}
        after = {item["name"]: item["parameter"] for item in self._diff}
        return before, after

    @property
    def changes(self) -> list[str]:
        return [item["name"] for item in self._diff]


def values_differ(wanted: Any, current: Any, unordered: bool = False) -> bool:
    """Whether ``wanted`` asks for something else than ``current``.

    Mappings compare key by key and recursively (a missing key equals None), lists in order
    unless ``unordered``; scalars by equality.
    """
    if isinstance(wanted, Mapping):
        if not isinstance(current, Mapping):
            return True
        keys = set(wanted) | set(current)
        return any(values_differ(wanted.get(k), current.get(k), unordered) for k in keys)
    if isinstance(wanted, (list, tuple)):
        if not isinstance(current, (list, tuple)) or len(wanted) != len(current):
            return True
        if unordered:
            remaining = list(current)
            for item in wanted:
                match = next((i for i, c in enumerate(remaining) if not values_differ(item, c, True)), None)
                if match is None:
                    return True
                remaining.pop(match)
            return False
        return any(values_differ(wanted[i], current[i], unordered) for i in range(len(wanted)))
    return wanted != current


class Comparison:
    """The outcome of ``compare``: ``changed``, ``changes``, ``diff`` and the merged ``after`` view."""

    def __init__(self, before: dict[str, Any], after: dict[str, Any], tracker: DifferenceTracker) -> None:
        self.before = before
        self.after = after
        self.tracker = tracker

    @property
    def changed(self) -> bool:
        return not self.tracker.empty

    @property
    def changes(self) -> list[str]:
        return self.tracker.changes

    @property
    def diff(self) -> dict[str, Any]:
        return {"before": self.before, "after": self.after}

    def result(self) -> dict[str, Any]:
        """The keys every module returns: changed, changes, diff."""
        return {"changed": self.changed, "changes": self.changes, "diff": self.diff}


def compare(
    current: Mapping[str, Any],
    desired: Mapping[str, Any],
    unordered: Iterable[str] = (),
) -> Comparison:
    """Compare the user's ``desired`` view with the ``current`` one, field by field.

    A desired value of None means "leave as is". ``diff.before`` is the current view, ``diff.after``
    the view once the change is applied, so that ``--diff`` shows context around what changes.
    """
    unordered = set(unordered)
    tracker = DifferenceTracker()
    before = copy.deepcopy(dict(current))
    after = copy.deepcopy(dict(current))
    for name, wanted in desired.items():
        if wanted is None:
            continue
        have = current.get(name)
        if values_differ(wanted, have, name in unordered):
            tracker.add(name, parameter=copy.deepcopy(wanted), active=copy.deepcopy(have))
            after[name] = copy.deepcopy(wanted)
    return Comparison(before, after, tracker)
