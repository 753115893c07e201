"""What a node does with its desired role from a session answer (agent/roles.py role_action)."""

from __future__ import annotations

import pytest

from shoal.agent.roles import role_action


@pytest.mark.parametrize(
    ("desired", "local", "member", "want"),
    [
        ("manager", "worker", False, "promote"),
        ("worker", "manager", False, "demote"),
        # the leader still has it in Raft: it removes it first, then the node steps down
        ("worker", "manager", True, None),
        # promoted, running as a manager, but the leader never recorded the join (a join call that timed
        # out in a slow VM): ask again
        ("manager", "manager", False, "rejoin"),
        ("manager", "manager", True, None),
        # an answer without the field (an older manager) is no reason to rejoin
        ("manager", "manager", None, None),
        ("worker", "worker", False, None),
        (None, "worker", None, None),
    ],
)
def test_role_action(desired: str | None, local: str, member: bool | None, want: str | None) -> None:
    assert role_action(desired, local, member) == want
