"""A node's task list as increments: the wire format shared by the managers and the nodes.

Each assignments answer carried the node's whole task list, every task object in full, and it was
re-sent whenever the node's network state alone changed: while 5,000 tasks started on 200
simulated nodes, parsing those lists was a good part of the fleet's CPU (docs/scale.md). As
SwarmKit's assignments stream sends `AssignmentChange`s, a node that asks for increments
(`"TaskIncrements": true`) gets `TaskParts` instead of `Tasks`:

    {"From": TASKS_VERSION | null, "Set": [task, ...], "Del": [task ID, ...]}

A task-list version is the first part of the answer's signature ("TASKS.NET", the digest of the
node's task IDs and their stable hashes): the same on every manager. `From` null is the whole list
(the node holds none, or a version the manager answering does not keep); otherwise `Set` holds
the tasks that are new or changed in a field the node acts on since `From` (the version the node
sent as its `Since`), and `Del` the IDs no longer assigned. A task changed only in its status is
not re-sent: the node keeps its earlier copy, exactly as it did when the signature (which ignores
status reports) did not change.
"""

from __future__ import annotations

from typing import Any

Task = dict[str, Any]


def tasks_version(signature: str | None) -> str | None:
    """The task-list part of an assignments signature ("TASKS.NET")."""
    return signature.split(".")[0] if signature else None


def change(old: dict[str, str] | None, since: str | None, tasks: list[Task], hashes: dict[str, str]) -> dict[str, Any]:
    """`TaskParts` for a node that holds `old` ({task ID: stable hash} of version `since`; None: a
    version unknown here) and must hold `tasks`, whose stable hashes are `hashes`."""
    if old is None or since is None:
        return {"From": None, "Set": tasks, "Del": []}
    return {
        "From": since,
        "Set": [t for t in tasks if old.get(t["ID"]) != hashes[t["ID"]]],
        "Del": sorted(tid for tid in old if tid not in hashes),
    }


class HeldTasks:
    """The task list a node holds (as of `version`); applies `TaskParts`."""

    def __init__(self) -> None:
        self.version: str | None = None
        self.tasks: dict[str, Task] = {}

    def apply(self, parts: dict[str, Any], version: str | None) -> list[Task] | None:
        """The node's whole task list after `parts` (now held as `version`), or None when the
        change does not follow the version held: nothing is held then, and the node must ask for
        the whole list (an empty `Since`); its executor must not act on a partial list."""
        since = parts.get("From")
        sets = [t for t in parts.get("Set") or [] if isinstance(t, dict) and isinstance(t.get("ID"), str)]
        if since is None:
            tasks = {t["ID"]: t for t in sets}
        elif self.version is not None and since == self.version:
            tasks = dict(self.tasks)
            for tid in parts.get("Del") or []:
                tasks.pop(tid, None)
            tasks.update((t["ID"], t) for t in sets)
        else:
            self.version, self.tasks = None, {}
            return None
        self.version, self.tasks = version, tasks
        return list(tasks.values())
