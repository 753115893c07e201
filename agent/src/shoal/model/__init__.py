"""shoal.model: pure helpers shared by the API, the CLI and the manager loops.

Objects are plain JSON-ready dicts in the Docker Engine API's shapes (not dataclasses), because
they travel unchanged through the Raft log, the HTTP API and the docker SDK.
"""

from shoal.errors import SpecError
from shoal.model.ids import (
    format_duration,
    format_rfc3339,
    new_id,
    now_rfc3339,
    parse_duration,
    parse_rfc3339,
    short_id,
)
from shoal.model.objects import (
    cluster_info,
    default_swarm_spec,
    join_addr,
    manager_status,
    new_cluster,
    new_node,
    split_addr,
)
from shoal.model.tlsinfo import tls_info
from shoal.model.validate import (
    parse_label,
    parse_labels,
    validate_labels,
    validate_node_spec,
    validate_swarm_spec,
)

__all__ = [
    "SpecError",
    "cluster_info",
    "default_swarm_spec",
    "format_duration",
    "format_rfc3339",
    "join_addr",
    "manager_status",
    "new_cluster",
    "new_id",
    "new_node",
    "now_rfc3339",
    "parse_duration",
    "parse_label",
    "parse_labels",
    "parse_rfc3339",
    "short_id",
    "split_addr",
    "tls_info",
    "validate_labels",
    "validate_node_spec",
    "validate_swarm_spec",
]
