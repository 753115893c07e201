"""The scheduler: pure placement decisions for the leader's loop (no I/O, no clock).

The orchestrator keeps NodeInfos (or passes Node dicts and tasks), calls `schedule` with
the PENDING tasks, and writes the result in one store batch: assigned tasks get NodeID and
Status.State "assigned" (Message ASSIGNED_MESSAGE), the others keep "pending" with
Status.Err = the reason. For global services it asks `eligible_nodes` where tasks belong.
The API calls `validate_placement` / `parse_constraints` to answer 400 on bad specs.
"""

from shoal.model.constraints import (
    Constraint,
    ConstraintError,
    node_matches,
    parse_constraint,
    parse_constraints,
    spread_descriptors,
    validate_placement,
)

from .filters import (
    ConstraintFilter,
    Filter,
    HostPortFilter,
    MaxReplicasFilter,
    Pipeline,
    PlatformFilter,
    ReadyFilter,
    ResourceFilter,
    default_filters,
    no_suitable_node,
)
from .nodeinfo import NodeInfo, TaskUse, build_node_infos, host_ports, is_active, on_node, reservations, task_use
from .strategy import ASSIGNED_MESSAGE, Decisions, eligible_nodes, schedule

__all__ = [
    "ASSIGNED_MESSAGE",
    "Constraint",
    "ConstraintError",
    "ConstraintFilter",
    "Decisions",
    "Filter",
    "HostPortFilter",
    "MaxReplicasFilter",
    "NodeInfo",
    "Pipeline",
    "PlatformFilter",
    "ReadyFilter",
    "ResourceFilter",
    "TaskUse",
    "build_node_infos",
    "default_filters",
    "eligible_nodes",
    "host_ports",
    "is_active",
    "no_suitable_node",
    "node_matches",
    "on_node",
    "parse_constraint",
    "parse_constraints",
    "reservations",
    "schedule",
    "spread_descriptors",
    "task_use",
    "validate_placement",
]
