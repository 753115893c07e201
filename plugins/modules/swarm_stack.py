#!/usr/bin/python
# Copyright: shoal developers
# Apache License 2.0 (see galaxy.yml)
from __future__ import annotations

DOCUMENTATION = r"""
module: swarm_stack
short_description: Deploy or remove a stack of services from compose files, as docker stack deploy
version_added: 0.1.0
description:
  - Deploys the services, networks, secrets and configs of one or more compose files as the stack O(name),
    each named C(NAME_x) and labelled C(com.docker.stack.namespace=NAME), like C(docker stack deploy).
  - The compose files are handled by the shoal agent's own C(shoal stack deploy) on the managed host (the same
    loader, schema validation and conversion as the CLI), so a file behaves the same from Ansible and the CLI.
  - The whole stack is validated by the manager before anything is written; a service whose spec is unchanged
    is not updated, so the module is idempotent.
  - With O(state=absent), removes the stack's services, networks, secrets and configs, like C(docker stack rm).
author:
  - shoal developers (@shoal-swarm)
extends_documentation_fragment:
  - shoal.swarm.shoal
  - shoal.swarm.shoal.attributes
attributes:
  check_mode:
    support: full
    details: The stack is loaded and validated by the manager; RV(created), RV(updated) and RV(removed) say what
      would change.
  diff_mode:
    support: full
    details: The specs of the services that change, before and after (as the manager stores them).
  idempotent:
    support: full
options:
  name:
    description: The stack's name (the prefix of its objects' names).
    type: str
    required: true
  state:
    description: V(present) deploys the files; V(absent) removes the stack.
    type: str
    choices: [present, absent]
    default: present
  compose:
    description:
      - The compose files, in order (later ones override earlier ones, as C(-c) repeated).
      - Each element is a path on the managed host, or an inline compose definition (a dictionary). Relative
        paths inside an inline definition (C(env_file), a secret's C(file)) are taken from the directory of the
        first file given by path; give absolute ones when there is none.
      - Required with O(state=present).
    type: list
    elements: raw
  prune:
    description: Remove the stack's services that are no longer in the files.
    type: bool
    default: false
  with_registry_auth:
    description: Send the registry credentials of the host's C(config.json) to the agents that pull the images.
    type: bool
    default: false
  resolve_image:
    description: Pin images to their registry digest V(always), only when the file's image V(changed), or V(never).
    type: str
    choices: [always, changed, never]
    default: always
  env:
    description: Variables for the files' C(${VAR}) interpolation (over the environment and C(.env)).
    type: dict
  wait:
    description:
      - Wait until every service created or updated has converged (its desired tasks run with the current spec;
        jobs are not waited for).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for the stack's services to converge.
    type: int
    default: 120
  shoal_cli:
    description:
      - The C(shoal) command on the managed host. By default the agent's (C(/opt/shoal/venv/bin/shoal), where the
        P(shoal.swarm.agent#role) role installs it), else C(shoal) on the PATH.
    type: path
notes:
  - Compose files are validated against the Compose Specification's JSON schema that Debian's C(docker-compose)
    package ships; the P(shoal.swarm.agent#role) role installs it on the hosts.
"""

EXAMPLES = r"""
- name: Deploy the app from two compose files
  shoal.swarm.swarm_stack:
    name: app
    compose:
      - /srv/app/compose.yml
      - /srv/app/compose.prod.yml
    prune: true

- name: Deploy an inline definition
  shoal.swarm.swarm_stack:
    name: web
    compose:
      - services:
          nodejs:
            image: shoal/hello
            ports: ["80:8080"]
            deploy:
              replicas: 2

- name: Remove the stack
  shoal.swarm.swarm_stack:
    name: web
    state: absent
"""

RETURN = r"""
created:
  description: The services created (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [app_web]
updated:
  description: The services updated (or that would be).
  returned: always
  type: list
  elements: str
removed:
  description: The services removed (or that would be), by O(prune) or O(state=absent).
  returned: always
  type: list
  elements: str
unchanged:
  description: The stack's services already as the files say.
  returned: always
  type: list
  elements: str
networks_created:
  description: The networks created (or that would be).
  returned: always
  type: list
  elements: str
"""

import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from ansible_collections.shoal.swarm.plugins.module_utils._shoal_runner import (  # noqa: E402
    ParamError,
    ShoalTask,
    run_task,
)

AGENT_CLI = "/opt/shoal/venv/bin/shoal"
NAMESPACE_LABEL = "com.docker.stack.namespace"
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


class StackTask(ShoalTask):
    rules = {"required_if": [("state", "present", ("compose",))]}
    state_options = {"present": ("compose", "prune", "with_registry_auth", "env")}
    bounds = {"wait_timeout": (0, None)}

    @staticmethod
    def argument_spec() -> dict[str, Any]:
        return {
            "name": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "compose": {"type": "list", "elements": "raw"},
            "prune": {"type": "bool", "default": False},
            "with_registry_auth": {"type": "bool", "default": False},
            "resolve_image": {"type": "str", "choices": ["always", "changed", "never"], "default": "always"},
            "env": {"type": "dict"},
            "wait": {"type": "bool", "default": True},
            "wait_timeout": {"type": "int", "default": 120},
            "shoal_cli": {"type": "path"},
        }

    def validate(self) -> None:
        if not NAME_RE.match(self.params["name"]):
            raise ParamError(f"invalid stack name {self.params['name']!r}")
        for i, item in enumerate(self.params["compose"] or []):
            if not isinstance(item, str | dict):
                raise ParamError(f"compose[{i}] must be a path or a compose definition (a dictionary)")

    # ---- the agent's CLI
    def cli(self) -> list[str]:
        given = self.params["shoal_cli"]
        path = given or (AGENT_CLI if os.access(AGENT_CLI, os.X_OK) else self.module.get_bin_path("shoal"))
        if not path:
            raise ParamError(f"the shoal command was not found ({AGENT_CLI} or on the PATH): is the agent installed?")
        return [path, "-H", f"unix://{self.params['socket_path']}"]

    def shoal(self, args: list[str]) -> tuple[int, str, str]:
        env = {str(k): str(v) for k, v in (self.params["env"] or {}).items()}
        return self.module.run_command([*self.cli(), *args], environ_update=env)

    # ---- present
    def files(self, tmp: str) -> tuple[list[str], dict[str, str]]:
        """Paths for `-c`: inline definitions written as JSON (a YAML file, one key a line)."""
        paths, names = [], {}
        for i, item in enumerate(self.params["compose"]):
            if isinstance(item, dict):
                path = os.path.join(tmp, f"definition-{i}.json")
                with open(path, "w", encoding="utf-8") as f:
                    json.dump(item, f, indent=2)
                names[path] = f"definition[{i}]"
                item = path
            paths.append(item)
        return paths, names

    def present(self) -> dict[str, Any]:
        tmp = tempfile.mkdtemp(prefix="shoal-stack-")
        try:
            paths, names = self.files(tmp)
            args = ["stack", "deploy", "--json", "--resolve-image", self.params["resolve_image"]]
            args += ["--dry-run"] * self.check_mode + ["--prune"] * self.params["prune"]
            args += ["--with-registry-auth"] * self.params["with_registry_auth"]
            for p in paths:
                args += ["-c", p]
            rc, out, err = self.shoal([*args, self.params["name"]])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        for path, name in names.items():
            err = err.replace(path, name)
        for block in err.strip().split("\n\n"):
            if block.startswith(("Ignoring", "WARNING: ")) or "variable is not set" in block:
                self.warn(block.strip())
        if rc != 0:
            skip = ("Ignoring", "Would", "WARNING: ")
            lines = [line for line in err.strip().splitlines() if line and not line.startswith(skip)]
            self.fail(lines[-1] if lines else f"shoal stack deploy failed (exit {rc})", stderr=err)
        summary = json.loads(out.strip().splitlines()[-1])
        verb = {"created": "create", "updated": "update", "removed": "remove"}
        for key, op in verb.items():
            self.actions += [f"{op} service {n}" for n in summary[key]]
        self.actions += [f"create network {n}" for n in summary["networks_created"]]
        self.actions += [f"create {k} {n}" for k in ("secret", "config") for n in summary[f"{k}s_created"]]
        self.changes = sorted(set(summary["created"] + summary["updated"] + summary["removed"]))
        self.diff = summary["diff"]
        if self.params["wait"] and not self.check_mode:
            for name in summary["created"] + summary["updated"]:
                self.wait_converged(name)
        return self.result(**{k: summary[k] for k in (*verb, "unchanged", "networks_created")})

    # ---- waiting, as swarm_service waits: no rolling update under way, every desired task runs the
    # current spec (the API's _up-to-date filter) and no other task runs; twice the same tasks in a row
    def converged(self, name: str) -> tuple[bool, list[str], str]:
        found = list(self.api.get("/services", filters={"name": [name]}, status=True) or [])
        service = next((s for s in found if s["Spec"]["Name"] == name), None)
        if service is None:
            self.fail(f"service {name} disappeared while waiting for it to converge")
        mode = service["Spec"].get("Mode") or {}
        if "ReplicatedJob" in mode or "GlobalJob" in mode:
            return True, [], ""
        filters = {"service": [service["ID"]], "_up-to-date": ["true"], "desired-state": ["running"]}
        tasks = self.api.get("/tasks", filters=filters) or []
        status = service.get("ServiceStatus") or {}
        desired, running_all = int(status.get("DesiredTasks") or 0), int(status.get("RunningTasks") or 0)
        running = sum(1 for t in tasks if (t.get("Status") or {}).get("State") == "running")
        rolling = (service.get("UpdateStatus") or {}).get("State") in ("updating", "rollback_started")
        done = not rolling and running == len(tasks) == desired == running_all and (desired > 0 or "Global" not in mode)
        return done, sorted(t["ID"] for t in tasks), f"{running} of {desired} task(s) running with the current spec"

    def wait_converged(self, name: str) -> None:
        deadline = time.monotonic() + self.params["wait_timeout"]
        settled = None
        while True:
            done, ids, progress = self.converged(name)
            if done and settled == ids:
                return
            settled = ids if done else None
            if time.monotonic() >= deadline:
                self.fail(f"timed out after {self.params['wait_timeout']} s waiting for service {name}: {progress}")
            time.sleep(0.25 if done else 0.5)

    # ---- absent
    def absent(self) -> dict[str, Any]:
        name = self.params["name"]
        filters = {"label": [f"{NAMESPACE_LABEL}={name}"]}
        services = sorted(s["Spec"]["Name"] for s in self.api.get("/services", filters=filters) or [])
        networks = sorted(n["Name"] for n in self.api.get("/networks", filters=filters) or [])
        if services or networks:
            self.actions += [f"remove service {s}" for s in services] + [f"remove network {n}" for n in networks]
            self.changes = services + networks
            self.diff = {"before": {"services": services, "networks": networks}, "after": {}}
            if not self.check_mode:
                removal = self.shoal(["stack", "rm", name])  # (rc, stdout, stderr)
                if removal[0] != 0:
                    self.fail(removal[2].strip() or f"shoal stack rm failed (exit {removal[0]})")
        none: list[str] = []
        return self.result(created=none, updated=none, removed=services, unchanged=none, networks_created=none)

    def run(self) -> dict[str, Any]:
        return self.present() if self.params["state"] == "present" else self.absent()


def main() -> None:
    run_task(StackTask)


if __name__ == "__main__":
    main()
