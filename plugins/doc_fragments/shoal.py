# Copyright: shoal developers
# Apache License 2.0 (see galaxy.yml)
from __future__ import annotations


class ModuleDocFragment:
    # How the modules reach the shoal agent on the managed host.
    DOCUMENTATION = r"""
options:
  socket_path:
    description:
      - The shoal agent's local control socket on the managed host.
      - The modules talk to the agent of the host they run on (use C(delegate_to) to run them on a manager).
    type: path
    default: /run/shoal/shoal.sock
  timeout:
    description:
      - Seconds to wait for one answer of the agent.
    type: int
    default: 60
notes:
  - The modules need the shoal agent (C(shoald)) running on the managed host; install it with the
    P(shoal.swarm.agent#role) role. They use only the Python standard library on the host.
requirements:
  - shoald (the shoal agent) on the managed host
"""

    # The attributes every module documents.
    ATTRIBUTES = r"""
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode with the same arguments, the second invocation indicates no change.
      - This assumes that the system controlled or queried by the module has not changed in a relevant way.
  action_group:
    description: Use C(group/shoal.swarm.shoal) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - shoal.swarm.shoal
"""
