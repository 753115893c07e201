#!/usr/bin/python
# Copyright: shoal developers
# Apache License 2.0 (see galaxy.yml)
from __future__ import annotations

DOCUMENTATION = r"""
module: swarm_image
short_description: Pull, load or remove an image on a shoal node
version_added: 0.1.0
description:
  - Makes sure the node's image store holds (or no longer holds) an image, as C(docker pull),
    C(docker load) and C(docker rmi) do on the node the task runs on. Services pull their images
    themselves; this pre-pulls (or loads, for hosts without a registry) so that tasks start at once.
  - With O(state=present) and O(source=pull), an image already present is left alone unless
    O(force_source) asks the registry again (then the task reports a change only when the tag now names other bits).
author:
  - shoal developers (@shoal-swarm)
extends_documentation_fragment:
  - shoal.swarm.shoal
  - shoal.swarm.shoal.attributes
attributes:
  check_mode:
    support: full
    details: Reports what it would pull, load or remove, without contacting the registry.
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  name:
    description:
      - The image reference, C([REGISTRY[:PORT]/]NAME[:TAG][@DIGEST]) (tag V(latest) when none is given).
    type: str
    required: true
  state:
    description: V(present) pulls or loads the image when it is missing; V(absent) removes it from the node.
    type: str
    choices: [present, absent]
    default: present
  source:
    description: Where a missing image comes from, the registry (V(pull)) or an archive on the host (V(load)).
    type: str
    choices: [pull, load]
    default: pull
  load_path:
    description:
      - Path on the managed host of a C(docker save) (docker-archive) or OCI archive that contains O(name).
      - Required when O(source=load).
    type: path
  force_source:
    description: Pull even when the image is present (asks the registry what the tag names now).
    type: bool
    default: false
  force_absent:
    description: With O(state=absent), remove the image even when a task of the node uses it.
    type: bool
    default: false
  registry_username:
    description: User name for the registry of O(name), when it needs one.
    type: str
  registry_password:
    description: Password (or token) for the registry. Never logged nor returned.
    type: str
requirements:
  - The shoal agent running on the managed host.
seealso:
  - module: shoal.swarm.swarm_service
"""

EXAMPLES = r"""
- name: Pre-pull the app's image on every node
  shoal.swarm.swarm_image:
    name: 10.213.0.1:5000/kalise/nodejs-web-app:latest
    registry_username: "{{ registry_user }}"
    registry_password: "{{ registry_password }}"

- name: Load an image saved with docker save on hosts without a registry
  shoal.swarm.swarm_image:
    name: web:1.2
    source: load
    load_path: /tmp/web-1.2.tar

- name: Remove an old image
  shoal.swarm.swarm_image:
    name: web:1.1
    state: absent
"""

RETURN = r"""
image:
  description: The image as C(docker image inspect) shows it (C(GET /images/{name}/json)); empty when absent.
  returned: always
  type: dict
  sample: {"Id": "sha256:155593a8...", "RepoTags": ["web:1.2"], "Config": {"Entrypoint": ["/app"]}}
actions:
  description: What the module did (or would do in check mode).
  returned: always
  type: list
  elements: str
  sample: ["Pulled image 10.213.0.1:5000/kalise/nodejs-web-app:latest"]
changes:
  description: V(state) when the image was pulled, loaded or removed; V(id) when a forced pull got other bits.
  returned: always
  type: list
  elements: str
  sample: [state]
"""

from typing import Any  # noqa: E402

from ansible_collections.shoal.swarm.plugins.module_utils._shoal_api import (  # noqa: E402
    ShoalAPIError,
    ShoalClient,
)
from ansible_collections.shoal.swarm.plugins.module_utils._shoal_registry import (  # noqa: E402
    encode_auth,
    registry_domain,
    repository,
    tagged,
)
from ansible_collections.shoal.swarm.plugins.module_utils._shoal_runner import ShoalTask, run_task  # noqa: E402

PULL_TIMEOUT = 1800  # seconds: a large image over a slow link


def current(api: ShoalClient, name: str) -> dict[str, Any]:
    try:
        return api.get(f"/images/{name}/json") or {}
    except ShoalAPIError as exc:
        if exc.status == 404:
            return {}
        raise


def auth_header(params: dict[str, Any]) -> dict[str, str]:
    """Docker's X-Registry-Auth, only when credentials are given (a pull without them is anonymous)."""
    if not params.get("registry_username"):
        return {}
    domain = registry_domain(params["name"])
    return {"X-Registry-Auth": encode_auth(params["registry_username"], params.get("registry_password") or "", domain)}


def split_reference(name: str) -> tuple[str, str]:
    """(repository, tag or digest) as /images/create takes them (fromImage, tag)."""
    if "@" in name:
        named, digest = name.split("@", 1)
        return named, digest  # a tag before the digest stays with the name, as the pull records it
    repo = repository(name)
    return repo, tagged(name)[len(repo) + 1 :]


class ImageTask(ShoalTask):
    rules = {"required_if": [("source", "load", ("load_path",))]}

    @staticmethod
    def argument_spec() -> dict[str, Any]:
        return {
            "name": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "source": {"type": "str", "choices": ["pull", "load"], "default": "pull"},
            "load_path": {"type": "path"},
            "force_source": {"type": "bool", "default": False},
            "force_absent": {"type": "bool", "default": False},
            "registry_username": {"type": "str"},
            "registry_password": {"type": "str", "no_log": True},
        }

    # check mode with force_source on a present image: the registry is not asked, so whether the
    # tag now names other bits is unknown; the action says so but the task reports no change
    unknown: bool = False

    @property
    def name(self) -> str:
        return self.params["name"]

    @property
    def changed(self) -> bool:
        return bool(self.actions) and not self.unknown

    def run(self) -> dict[str, Any]:
        before = current(self.api, self.name)
        if self.params["state"] == "absent":
            after = self.absent(before)
        elif self.params["source"] == "load":
            after = self.load(before)
        elif not before or self.params["force_source"]:
            after = self.pull(before)
        else:
            after = before
        self.diff = {
            "before": {"name": self.name, "id": before.get("Id", "")} if before else {},
            "after": {"name": self.name, "id": after.get("Id", "(pulled)")} if after or self.changed else {},
        }
        return self.result(image=after)

    def absent(self, before: dict[str, Any]) -> dict[str, Any]:
        if before:
            self.act(f"Removed image {self.name}", "state")
            if not self.check_mode:
                self.api.delete(f"/images/{self.name}", force=self.params["force_absent"] or None)
        return {}

    def load(self, before: dict[str, Any]) -> dict[str, Any]:
        if before:
            return before
        path = self.params["load_path"]
        self.act(f"Loaded image {self.name} from {path}", "state")
        if self.check_mode:
            return before
        try:
            with open(path, "rb") as archive:
                self.api.stream("POST", "/images/load", raw_body=archive, timeout=PULL_TIMEOUT)
        except OSError as exc:
            self.fail(f"cannot read {path}: {exc}")
        after = current(self.api, self.name)
        if not after:
            self.fail(f"{path} does not contain {self.name}")
        return after

    def pull(self, before: dict[str, Any]) -> dict[str, Any]:
        if self.check_mode:
            self.unknown = bool(before)
            if before:
                self.act(f"Would ask the registry about {self.name}", None)
            else:
                self.act(f"Would pull image {self.name}", "state")
            return before
        repo, tag = split_reference(self.name)
        self.api.stream(
            "POST",
            "/images/create",
            query={"fromImage": repo, "tag": tag},
            extra_headers=auth_header(self.params),
            timeout=PULL_TIMEOUT,
        )
        after = current(self.api, self.name)
        if after.get("Id") != before.get("Id"):
            self.act(f"Pulled image {self.name}", "id" if before else "state")
        return after

    def act(self, action: str, change: str | None) -> None:
        """An action and what it changes (None: unknown until the registry is asked)."""
        self.actions.append(action)
        if change is not None:
            self.changes.append(change)


def main() -> None:
    run_task(ImageTask)


if __name__ == "__main__":
    main()
