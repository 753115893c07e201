"""Docker's service templates: ContainerSpec.Hostname, Env values and mount sources may use Go
template placeholders, expanded for each task on its node (SwarmKit's template/context.go).

The placeholders Docker documents, and only those:
  {{.Service.ID}} {{.Service.Name}} {{.Service.Labels}} ({{index .Service.Labels "k"}})
  {{.Node.ID}} {{.Node.Hostname}} {{.Node.Platform.OS}} {{.Node.Platform.Architecture}}
  {{.Task.ID}} {{.Task.Name}} {{.Task.Slot}}
`check_container_templates` runs every template with a stand-in context at create/update, so a
misspelt placeholder or bad syntax is a 400 before anything is stored; `expand_task` renders them
when the task starts on its node. `expand_text` is the one call for any other templated field
(mount sources: runtime code that builds mounts calls it with the same task and node).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from shoal.errors import SpecError
from shoal.model.gotemplate import GoMap, TemplateError, render

NodeInfo = Mapping[str, Any]  # a Node's ID, Description.Hostname and Description.Platform


def template_context(task: Mapping[str, Any], node: NodeInfo) -> dict[str, Any]:
    annotations = task.get("ServiceAnnotations") or {}
    name = str(annotations.get("Name") or "")
    slot = task.get("Slot")
    unit = str(slot) if slot else str(task.get("NodeID") or node.get("ID") or "")
    platform = node.get("Platform") or {}
    return {
        "Service": {
            "ID": str(task.get("ServiceID") or ""),
            "Name": name,
            "Labels": GoMap({str(k): str(v) for k, v in (annotations.get("Labels") or {}).items()}),
        },
        "Node": {
            "ID": str(node.get("ID") or task.get("NodeID") or ""),
            "Hostname": str(node.get("Hostname") or ""),
            "Platform": {"OS": str(platform.get("OS") or ""), "Architecture": str(platform.get("Architecture") or "")},
        },
        # SwarmKit's naming.Task: <service>.<slot or node>.<task id>; Slot is the node for a global task
        "Task": {"ID": str(task.get("ID") or ""), "Name": f"{name}.{unit}.{task.get('ID') or ''}", "Slot": unit},
    }


def expand_text(text: str, task: Mapping[str, Any], node: NodeInfo) -> str:
    """`text` with its placeholders filled for `task` on `node`; TemplateError if it cannot be."""
    if "{{" not in text:
        return text
    return render(text, template_context(task, node))


def _expand_env(env: list[str], task: Mapping[str, Any], node: NodeInfo) -> list[str]:
    out = []
    for entry in env:
        key, sep, value = entry.partition("=")
        out.append(f"{key}{sep}{expand_text(value, task, node)}" if sep else entry)  # Docker templates values
    return out


def expand_task(task: Mapping[str, Any], node: NodeInfo) -> dict[str, Any]:
    """A copy of `task` whose ContainerSpec Hostname and Env are rendered (TemplateError if not)."""
    cspec = (task.get("Spec") or {}).get("ContainerSpec") or {}
    hostname, env = str(cspec.get("Hostname") or ""), [str(e) for e in cspec.get("Env") or []]
    if "{{" not in hostname and not any("{{" in e for e in env):
        return dict(task)
    out = dict(task)
    spec = copy.deepcopy(dict(task.get("Spec") or {}))
    spec["ContainerSpec"] = {
        **cspec,
        "Hostname": expand_text(hostname, task, node),
        "Env": _expand_env(env, task, node),
    }
    out["Spec"] = spec
    return out


_STAND_IN_NODE = {"ID": "nodeid", "Hostname": "hostname", "Platform": {"OS": "linux", "Architecture": "x86_64"}}


def check_template(where: str, text: str, service_spec: Mapping[str, Any]) -> None:
    """SpecError (400) if `text` does not parse or uses a placeholder Docker does not have."""
    if "{{" not in text:
        return
    task = {
        "ID": "taskid",
        "ServiceID": "serviceid",
        "Slot": 1,
        "ServiceAnnotations": {"Name": service_spec.get("Name") or "service", "Labels": service_spec.get("Labels")},
    }
    try:
        render(text, template_context(task, _STAND_IN_NODE))
    except TemplateError as e:
        raise SpecError(f"{where}: invalid template {text!r}: {e}") from None


def check_container_templates(service_spec: Mapping[str, Any]) -> None:
    """Every templated field of a validated ServiceSpec's ContainerSpec: Hostname, Env values and
    mount sources (rendered on the node by runtime/templates.expanded_mounts)."""
    where = "TaskTemplate.ContainerSpec"
    cspec = (service_spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
    check_template(f"{where}.Hostname", str(cspec.get("Hostname") or ""), service_spec)
    for i, mount in enumerate(cspec.get("Mounts") or []):
        check_template(f"{where}.Mounts[{i}].Source", str(mount.get("Source") or ""), service_spec)
    for entry in cspec.get("Env") or []:
        key, sep, value = str(entry).partition("=")
        if sep:
            check_template(f"{where}.Env[{key}]", value, service_spec)
