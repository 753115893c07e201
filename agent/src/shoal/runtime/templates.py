"""Rendering a task's Go-template placeholders on the node that runs it (model/task_templates.py).

The node's side of the context is this host's: its hostname and platform as the agent reports them
in its Node description (hostinfo.description reads the same), and the node ID the task was placed on.
"""

from __future__ import annotations

import platform
import socket
from collections.abc import Mapping
from typing import Any

from shoal.model.gotemplate import TemplateError
from shoal.model.mounts import volume_name_error
from shoal.model.task_templates import expand_task, expand_text
from shoal.runtime.base import TaskRejected


def this_node(task: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "ID": str(task.get("NodeID") or ""),
        "Hostname": socket.gethostname(),
        "Platform": {"OS": "linux", "Architecture": platform.machine()},
    }


def expanded(task: Mapping[str, Any]) -> dict[str, Any]:
    """`task` with Hostname and Env rendered for this node; TaskRejected (as Docker rejects the task)
    when a template cannot be (the manager checks them at create, so only an older spec can fail)."""
    try:
        return expand_task(task, this_node(task))
    except TemplateError as e:
        raise TaskRejected(f"failed to expand templates: {e}") from None


def expanded_mounts(task: Mapping[str, Any], mounts: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """`mounts` with each Source rendered for this node (Docker templates mount sources, as
    Hostname and Env: `data-{{.Task.Slot}}`). TaskRejected when a template cannot be rendered or
    renders to a name a volume cannot have (the manager could not check the rendered name)."""
    if not any("{{" in str(m.get("Source") or "") for m in mounts):
        return mounts
    node = this_node(task)
    out: list[Mapping[str, Any]] = []
    for m in mounts:
        source = str(m.get("Source") or "")
        if "{{" in source:
            try:
                source = expand_text(source, task, node)
            except TemplateError as e:
                raise TaskRejected(f"failed to expand templates: {e}") from None
            if m.get("Type") == "volume" and (err := volume_name_error(source)):
                raise TaskRejected(f'invalid mount config for type "volume": {err}')
            m = {**m, "Source": source}
        out.append(m)
    return out
