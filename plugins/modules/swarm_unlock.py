#!/usr/bin/python
# Copyright: shoal developers
# Apache License 2.0 (see galaxy.yml)
from __future__ import annotations

DOCUMENTATION = r"""
module: swarm_unlock
short_description: Unlock a locked shoal manager with the swarm's unlock key
version_added: 0.1.0
description:
  - With autolock on (M(shoal.swarm.swarm_init) O(shoal.swarm.swarm_init#module:autolock_managers)), a manager
    that restarts stays locked (no Raft, no cluster API) until it is given the unlock key, as
    C(shoal swarm unlock) does.
  - On a locked node, gives it the key; on a node that is not locked, changes nothing.
  - A wrong key fails with the agent's message and leaves the node locked.
author:
  - shoal developers (@shoal-swarm)
extends_documentation_fragment:
  - shoal.swarm.shoal
  - shoal.swarm.shoal.attributes
attributes:
  check_mode:
    support: full
    details: In check mode the key is not sent (so it is not checked either).
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  unlock_key:
    description:
      - The swarm's unlock key, C(SWMKEY-1-...), as RV(shoal.swarm.swarm_init#module:unlock_key) returned it.
      - Keep it in a vault (C(ansible-vault)); the module never logs it.
    type: str
    required: true
seealso:
  - module: shoal.swarm.swarm_init
"""

EXAMPLES = r"""
- name: Unlock the managers that restarted locked
  shoal.swarm.swarm_unlock:
    unlock_key: "{{ shoal_unlock_key }}"
  when: inventory_hostname in groups['managers']
"""

RETURN = r"""
state:
  description: The node's swarm state afterwards (C(locked) in check mode when it would be unlocked).
  returned: always
  type: str
  sample: active
actions:
  description: What was done (or would be done in check mode).
  returned: always
  type: list
  elements: str
  sample: [manager unlocked]
changes:
  description: Names of what changed.
  returned: always
  type: list
  elements: str
  sample: [state]
"""

from typing import Any  # noqa: E402

from ansible_collections.shoal.swarm.plugins.module_utils._shoal_api import ShoalAPIError  # noqa: E402
from ansible_collections.shoal.swarm.plugins.module_utils._shoal_runner import (  # noqa: E402
    ParamError,
    ShoalTask,
    run_task,
)

PREFIX = "SWMKEY-1-"


class UnlockTask(ShoalTask):
    @staticmethod
    def argument_spec() -> dict[str, Any]:
        return {"unlock_key": {"type": "str", "required": True, "no_log": True}}

    def validate(self) -> None:
        if not str(self.params["unlock_key"]).strip().startswith(PREFIX):
            raise ParamError(f"unlock_key must be a swarm unlock key ({PREFIX}...)")

    def run(self) -> dict[str, Any]:
        state = (self.api.info().get("Swarm") or {}).get("LocalNodeState", "inactive")
        if state == "inactive":
            self.fail("This node is not part of a swarm")
        if state != "locked":
            return self.result(state=state)
        self.record_state("manager unlocked", {"state": "locked"}, {"state": "active"})
        if self.check_mode:
            return self.result(state=state)
        try:
            self.api.post("/swarm/unlock", {"UnlockKey": self.params["unlock_key"].strip()})
        except ShoalAPIError as exc:
            self.actions, self.changes = [], []
            self.fail(exc.message, state=state)
        return self.result(state=(self.api.info().get("Swarm") or {}).get("LocalNodeState", ""))


def main() -> None:
    run_task(UnlockTask)


if __name__ == "__main__":
    main()
