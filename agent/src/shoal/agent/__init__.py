"""The node agent: `base.py` (its parts and their wiring), `node.py` (init, join), `join.py` (the
join protocol), `roles.py` (promotion, demotion), `leave.py`, `addresses.py` (advertise/listen
addresses), `credentials.py` (certificate files)."""

from shoal.agent.autolock import SWARM_LOCKED
from shoal.agent.base import ALREADY_IN_SWARM, NOT_A_MANAGER, NOT_IN_SWARM
from shoal.agent.node import Agent

__all__ = ["ALREADY_IN_SWARM", "NOT_A_MANAGER", "NOT_IN_SWARM", "SWARM_LOCKED", "Agent"]
