"""Deploy a converted Stack through the Engine API, validated whole before the first write.

1. read what exists (networks, services, and secrets/configs when the stack has any);
2. check every external object exists and every service spec with the server
   (`POST /shoal/services/validate`: the manager's own validation, port and network checks,
   nothing written), which also answers the spec as it would be stored;
3. compare that with each current service: only the changed ones are updated, an unchanged
   stack makes no write at all;
4. then write: networks, secrets, configs, services (create/update), and with `prune` remove the
   stack's services that are no longer in the files.

The API client is the caller's (`Transport`; the CLI's, which the Ansible module runs too); an error
answer is raised as a `ShoalError` carrying the answer's status and message.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from shoal.compose.convert import NAMESPACE_LABEL, Stack, StackObject
from shoal.compose.errors import ComposeError
from shoal.compose.source import KeyPath, Locator
from shoal.errors import ShoalError

VALIDATE_PATH = "/shoal/services/validate"


class Transport(Protocol):
    """An Engine API client: JSON in and out; an error raises with the server's message."""

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any: ...


# Which compose key a server refusal is about: the start of the server's field path → the key.
_FIELD_KEYS = (
    ("TaskTemplate.ContainerSpec.Mounts", ("volumes",)),
    ("TaskTemplate.ContainerSpec.HealthCheck", ("healthcheck",)),
    ("TaskTemplate.ContainerSpec.Secrets", ("secrets",)),
    ("TaskTemplate.ContainerSpec.Configs", ("configs",)),
    ("TaskTemplate.ContainerSpec.Sysctls", ("sysctls",)),
    ("TaskTemplate.ContainerSpec.StopGracePeriod", ("stop_grace_period",)),
    ("TaskTemplate.ContainerSpec.Command", ("entrypoint",)),
    ("TaskTemplate.ContainerSpec.Args", ("command",)),
    ("TaskTemplate.ContainerSpec.Env", ("environment",)),
    ("TaskTemplate.ContainerSpec.User", ("user",)),
    ("TaskTemplate.ContainerSpec.Capability", ("cap_add",)),
    ("TaskTemplate.ContainerSpec.Image", ("image",)),
    ("TaskTemplate.ContainerSpec.Hosts", ("extra_hosts",)),
    ("TaskTemplate.ContainerSpec.DNSConfig", ("dns",)),
    ("TaskTemplate.ContainerSpec.TTY", ("tty",)),
    ("TaskTemplate.ContainerSpec.OpenStdin", ("stdin_open",)),
    ("TaskTemplate.ContainerSpec.Groups", ("group_add",)),
    ("TaskTemplate.ContainerSpec.Isolation", ("isolation",)),
    ("TaskTemplate.ContainerSpec.Ulimits", ("ulimits",)),
    ("TaskTemplate.ContainerSpec.StopSignal", ("stop_signal",)),
    ("TaskTemplate.ContainerSpec.Hostname", ("hostname",)),
    ("TaskTemplate.ContainerSpec.Dir", ("working_dir",)),
    ("TaskTemplate.ContainerSpec.Labels", ("labels",)),
    ("TaskTemplate.LogDriver", ("logging",)),
    ("TaskTemplate.ContainerSpec", ()),
    ("TaskTemplate.Networks", ("networks",)),
    ("TaskTemplate.Resources", ("deploy", "resources")),
    ("TaskTemplate.RestartPolicy", ("deploy", "restart_policy")),
    ("TaskTemplate.Placement", ("deploy", "placement")),
    ("Mode", ("deploy", "mode")),
    ("UpdateConfig", ("deploy", "update_config")),
    ("RollbackConfig", ("deploy", "rollback_config")),
    ("EndpointSpec.Ports", ("ports",)),
    ("EndpointSpec", ("deploy", "endpoint_mode")),
    ("Labels", ("deploy", "labels")),
)
_WORDS = (
    ("mount", ("volumes",)),  # before "port": "not supported" has it
    ("health", ("healthcheck",)),
    ("port", ("ports",)),
    ("network", ("networks",)),
    ("mode change", ("deploy", "mode")),
)


def _key_of(message: str) -> tuple[str, ...]:
    for prefix, key in _FIELD_KEYS:
        if re.search(rf"(^|[\s'\"]){re.escape(prefix)}\b", message):
            return key
    lowered = message.lower()
    for word, key in _WORDS:
        if word in lowered:
            return key
    return ()


@dataclass
class Action:
    """One write: op create/update/remove on kind network/secret/config/service."""

    op: str
    kind: str
    name: str
    body: dict[str, Any] | None = None
    id: str = ""
    version: int = 0
    before: dict[str, Any] | None = None  # the current spec (update, remove)
    after: dict[str, Any] | None = None  # the spec as the manager will store it (create, update)
    short: str = ""  # the service's key in the compose file


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # services already as the files say
    warnings: list[str] = field(default_factory=list)  # what the user should know, nothing wrong

    def names(self, op: str, kind: str = "service") -> list[str]:
        return [a.name for a in self.actions if a.op == op and a.kind == kind]

    def diff(self) -> dict[str, Any]:
        """Ansible's before/after of the changed services, as the manager stores them (specs name
        secrets and configs, never hold their data)."""
        before = {a.name: a.before for a in self.actions if a.kind == "service" and a.before is not None}
        after = {a.name: a.after for a in self.actions if a.kind == "service" and a.after is not None}
        return {"before": before, "after": after}

    def summary(self) -> dict[str, Any]:
        """What `stack deploy --json` prints and the Ansible module returns."""
        out: dict[str, Any] = {"changed": bool(self.actions)}
        for op, key in (("create", "created"), ("update", "updated"), ("remove", "removed")):
            out[key] = self.names(op)
        for kind in ("network", "secret", "config"):
            out[f"{kind}s_created"] = self.names("create", kind)
        out["unchanged"] = sorted(self.unchanged)
        out["warnings"] = list(self.warnings)
        out["diff"] = self.diff()
        return out


def _list(
    api: Transport, path: str, namespace: str | None = None, optional: bool = False
) -> list[dict[str, Any]] | None:
    query = {"filters": json.dumps({"label": [f"{NAMESPACE_LABEL}={namespace}"]})} if namespace else None
    try:
        return list(api.request("GET", path, query=query) or [])
    except ShoalError as exc:
        if optional and exc.status in (404, 501):
            return None  # this agent has no such API
        raise


class Deployer:
    def __init__(self, api: Transport, stack: Stack, locator: Locator) -> None:
        self.api = api
        self.stack = stack
        self.loc = locator
        self.ids: dict[str, str] = {}  # existing secrets' and configs' IDs by name

    def fail(self, path: KeyPath, what: str) -> ComposeError:
        return self.loc.error(path, what)

    def _objects(
        self, kind: str, objs: dict[str, StackObject], existing: list[dict[str, Any]] | None, plan: Plan
    ) -> list[Action]:
        """Externals must exist; others are created when missing. An existing secret or config is
        left as it is, as the docker CLI's update of it does (only labels may change: rotation is a
        new name); when the file's data differs from a config's, a warning says so (a secret's
        data is never read back, so it cannot be compared)."""
        actions = []
        if existing is None and objs:
            first = next(iter(objs.values()))
            raise self.fail(first.path, f"{kind}s are not supported by this shoal agent (no /{kind}s API)")
        by_name = {o["Spec"]["Name"] if "Spec" in o else o.get("Name"): o for o in existing or []}
        for o in existing or []:
            self.ids[(o.get("Spec") or {}).get("Name", "")] = str(o.get("ID") or "")
        for obj in objs.values():
            if obj.name in by_name:
                if not obj.external and kind != "network":
                    stored = (by_name[obj.name].get("Spec") or {}).get("Data")
                    if stored is not None and stored != obj.body.get("Data"):
                        plan.warnings.append(
                            f"{kind} {obj.name} exists with other data than {self.loc.where(obj.path)}: "
                            f"it is kept as it is (a {kind} cannot change; rotate it under a new name)"
                        )
                continue
            if obj.external:
                if kind == "network":
                    raise self.fail(
                        obj.path,
                        f"network {obj.name!r} is declared as external, but could not be "
                        "found. You need to create a swarm-scoped network before the stack is deployed",
                    )
                raise self.fail(obj.path, f"{kind} {obj.name!r} is declared as external, but could not be found")
            actions.append(Action("create", kind, obj.name, obj.body))
        return actions

    def _validated(self, short: str, spec: dict[str, Any], new: dict[str, list[str]]) -> dict[str, Any]:
        try:
            answer = self.api.request("POST", VALIDATE_PATH, body={"Spec": spec, **new})
        except ShoalError as exc:
            if exc.status >= 500:
                raise
            if exc.status == 404 and "page not found" in exc.message.lower():
                raise self.fail((), f"this shoal agent cannot validate stacks ({VALIDATE_PATH}): upgrade it") from None
            raise self.fail(("services", short, *_key_of(exc.message)), exc.message) from None
        return dict(answer["Spec"])

    def plan(
        self,
        prune: bool = False,
        prepare: Callable[[dict[str, Any], dict[str, Any] | None], None] | None = None,
    ) -> Plan:
        """Everything checked, nothing written. `prepare(spec, current)` may pin the image."""
        st = self.stack
        networks = _list(self.api, "/networks") or []
        plan = Plan()
        plan.actions += self._objects("network", st.networks, networks, plan)
        if st.secrets:
            plan.actions += self._objects("secret", st.secrets, _list(self.api, "/secrets", optional=True), plan)
        if st.configs:
            plan.actions += self._objects("config", st.configs, _list(self.api, "/configs", optional=True), plan)
        # what the stack creates before its services: the manager counts these as present
        new = {
            f"New{kind.capitalize()}s": [a.name for a in plan.actions if a.kind == kind]
            for kind in ("network", "secret", "config")
        }
        services = {s["Spec"]["Name"]: s for s in _list(self.api, "/services") or []}
        for short, spec in st.services.items():
            spec = _with_ids(spec, self.ids)
            current = services.get(spec["Name"])
            if prepare is not None:
                prepare(spec, current)
            validated = self._validated(short, spec, new)
            if current is None:
                plan.actions.append(Action("create", "service", spec["Name"], spec, after=validated, short=short))
            elif validated != current["Spec"]:
                plan.actions.append(
                    Action(
                        "update",
                        "service",
                        spec["Name"],
                        spec,
                        current["ID"],
                        current["Version"]["Index"],
                        before=current["Spec"],
                        after=validated,
                        short=short,
                    )
                )
            else:
                plan.unchanged.append(spec["Name"])
        if prune:
            wanted = {s["Name"] for s in st.services.values()}
            for name, svc in sorted(services.items()):
                if (svc["Spec"].get("Labels") or {}).get(NAMESPACE_LABEL) == st.namespace and name not in wanted:
                    plan.actions.append(Action("remove", "service", name, id=svc["ID"], before=svc["Spec"]))
        return plan

    def apply(
        self,
        plan: Plan,
        headers: Callable[[dict[str, Any]], Mapping[str, str]] | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        """The writes, in Docker's order; `headers(spec)` gives X-Registry-Auth when asked for."""
        say = say or (lambda _line: None)
        ids = dict(self.ids)
        for a in plan.actions:
            if a.kind == "service":
                continue
            say(f"Creating {a.kind} {a.name}")
            answer = self.api.request("POST", f"/{a.kind}s/create", body=a.body)
            ids[a.name] = str((answer or {}).get("ID") or (answer or {}).get("Id") or "")
        for a in plan.actions:
            if a.kind != "service":
                continue
            if a.op == "remove":
                say(f"Removing service {a.name}")
                self.api.request("DELETE", f"/services/{a.id}")
                continue
            assert a.body is not None
            body = _with_ids(a.body, ids)
            extra = dict(headers(body)) if headers else {}
            if a.op == "create":
                say(f"Creating service {a.name}")
                self.api.request("POST", "/services/create", body=body, headers=extra)
            else:
                say(f"Updating service {a.name} (id: {a.id})")
                self.api.request(
                    "POST", f"/services/{a.id}/update", body=body, query={"version": a.version}, headers=extra
                )


def _with_ids(spec: dict[str, Any], created: Mapping[str, str]) -> dict[str, Any]:
    """Secret and config references get the IDs of the objects just created (the docker CLI
    looks them up the same way after creating them)."""
    spec = copy.deepcopy(spec)
    container = spec["TaskTemplate"]["ContainerSpec"]
    for key, id_key, name_key in (("Secrets", "SecretID", "SecretName"), ("Configs", "ConfigID", "ConfigName")):
        for ref in container.get(key) or []:
            if not ref.get(id_key):
                ref[id_key] = created.get(ref[name_key], "")
    return spec
