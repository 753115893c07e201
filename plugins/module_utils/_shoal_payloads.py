# Copyright: shoal developers
# Apache License 2.0 (see galaxy.yml)
"""What swarm_secret and swarm_config share (after community.docker's docker_secret and docker_config).

The swarm never returns a secret's data, so whether it changed is decided by a digest of the data
kept in the ``ansible_key`` label, as community.docker does. Data cannot change in place: a
changed one is removed and created again, or with ``rolling_versions`` created as the next version
``NAME_vN`` (label ``ansible_version``), keeping ``versions_to_keep`` old ones. Labels change in
place (the swarm lets only labels change). Diffs and results carry the data's state, never the data.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, ClassVar

from ansible.module_utils.common.text.converters import to_bytes
from ansible_collections.shoal.swarm.plugins.module_utils._shoal_api import ShoalAPIError, label_map
from ansible_collections.shoal.swarm.plugins.module_utils._shoal_runner import ParamError, ShoalTask

DIGEST_LABEL = "ansible_key"
VERSION_LABEL = "ansible_version"
HIDDEN = "(data not shown)"
MAX_SIZE = {"secret": 500 * 1024, "config": 1000 * 1024}  # the swarm's limits (SwarmKit's)


def payload_argument_spec() -> dict[str, Any]:
    return {
        "name": {"type": "str", "required": True},
        "data": {"type": "str", "no_log": True},
        "data_is_b64": {"type": "bool", "default": False},
        "data_src": {"type": "path"},
        "labels": {"type": "dict"},
        "force": {"type": "bool", "default": False},
        "rolling_versions": {"type": "bool", "default": False},
        "versions_to_keep": {"type": "int", "default": 5},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    }


def read_payload(params: dict[str, Any]) -> bytes:
    if params.get("data_src") is not None:
        try:
            with open(params["data_src"], "rb") as f:
                return f.read()
        except OSError as exc:
            raise ParamError(f"data_src {params['data_src']}: {exc.strerror or exc}") from None
    data = params.get("data") or ""
    if params["data_is_b64"]:
        try:
            return base64.b64decode(data, validate=True)
        except ValueError:
            raise ParamError("data is not valid base64 (data_is_b64=true)") from None
    return to_bytes(data, errors="surrogate_or_strict")


def digest(data: bytes) -> str:
    return hashlib.sha224(data).hexdigest()  # community.docker's choice, so labels mean the same


class PayloadTask(ShoalTask):
    kind: ClassVar[str] = "secret"  # or "config"
    rules: ClassVar[dict[str, Any]] = {
        "mutually_exclusive": [["data", "data_src"]],
        "required_if": [["state", "present", ["data", "data_src"], True]],
    }
    bounds: ClassVar[dict[str, tuple[float | None, float | None]]] = {"versions_to_keep": (1, None)}

    argument_spec = staticmethod(payload_argument_spec)

    @property
    def path(self) -> str:
        return f"/{self.kind}s"

    def validate(self) -> None:
        self.data = read_payload(self.params) if self.params["state"] == "present" else b""
        limit = MAX_SIZE[self.kind]
        if self.params["state"] == "present" and not 0 < len(self.data) < limit:
            # checked before an old one is removed to make room for it
            raise ParamError(f"{self.kind} data must be larger than 0 and less than {limit // 1024} KB")

    # ---- reads
    def versions(self) -> list[dict[str, Any]]:
        """With rolling_versions: every NAME_vN made by this module, oldest first; else the one named NAME."""
        name = self.params["name"]
        if not self.params["rolling_versions"]:
            found = self.api.get(self.path, filters={"names": [name]}) or []
            return [o for o in found if o["Spec"]["Name"] == name]
        found = self.api.get(self.path, filters={"name": [f"{name}_v"]}) or []
        mine = [
            o
            for o in found
            if (o["Spec"].get("Labels") or {}).get(VERSION_LABEL, "").isdigit()
            and o["Spec"]["Name"] == f"{name}_v{o['Spec']['Labels'][VERSION_LABEL]}"
        ]
        return sorted(mine, key=lambda o: int(o["Spec"]["Labels"][VERSION_LABEL]))

    def result(self, obj: dict[str, Any] | None = None, **facts: Any) -> dict[str, Any]:  # type: ignore[override]
        obj = obj or {}
        ident = {f"{self.kind}_id": obj.get("ID", ""), f"{self.kind}_name": (obj.get("Spec") or {}).get("Name", "")}
        return super().result(**ident, **facts)

    # ---- views for the diff: never the data
    def view(self, obj: dict[str, Any] | None) -> dict[str, Any]:
        if obj is None:
            return {"state": "absent"}
        labels = dict(obj["Spec"].get("Labels") or {})
        labels.pop(DIGEST_LABEL, None)
        labels.pop(VERSION_LABEL, None)
        return {"state": "present", "name": obj["Spec"]["Name"], "labels": labels, "data": HIDDEN}

    def run(self) -> dict[str, Any]:
        versions = self.versions()
        current = versions[-1] if versions else None
        if self.params["state"] == "absent":
            return self.absent(versions)
        return self.present(versions, current)

    def wanted_labels(self, version: int | None) -> dict[str, str]:
        labels = label_map(self.params.get("labels"))
        labels[DIGEST_LABEL] = digest(self.data)
        if version is not None:
            labels[VERSION_LABEL] = str(version)
        return labels

    def present(self, versions: list[dict[str, Any]], current: dict[str, Any] | None) -> dict[str, Any]:
        name = self.params["name"]
        labels_of = (current or {}).get("Spec", {}).get("Labels") or {}
        data_changed = current is None or labels_of.get(DIGEST_LABEL) != digest(self.data) or self.params["force"]
        if not data_changed:
            wanted = self.wanted_labels(int(labels_of[VERSION_LABEL]) if self.params["rolling_versions"] else None)
            if self.params.get("labels") is None or wanted == labels_of:
                self.diff = {"before": self.view(current), "after": self.view(current)}
                return self.result(current)
            return self.relabel(current, wanted)  # type: ignore[arg-type]
        version = (int(labels_of.get(VERSION_LABEL, "0")) + 1) if self.params["rolling_versions"] else None
        new_name = f"{name}_v{version}" if version is not None else name
        after = {"state": "present", "name": new_name, "labels": label_map(self.params.get("labels")), "data": HIDDEN}
        before = self.view(current)
        if current is not None:
            before["data"] = HIDDEN + (" (forced)" if self.params["force"] else " (changed)")
        self.diff = {"before": before, "after": after}
        self.actions.append(f"{self.kind} {'created' if current is None else 'replaced'}")
        self.changes += ["state"] if current is None else ["data"]
        if self.check_mode:
            return self.result(current)
        body = {"Name": new_name, "Labels": self.wanted_labels(version), "Data": base64.b64encode(self.data).decode()}
        removed = current is not None and not self.params["rolling_versions"]
        if removed:
            self.remove(current)  # type: ignore[arg-type]
        try:
            answer = self.api.post(f"{self.path}/create", body) or {}
        except ShoalAPIError as exc:
            if not removed:
                self.actions.clear()  # nothing was done
            gone = f" (the old {self.kind} was removed)" if removed else ""
            self.fail(f"{self.kind} {new_name} was not created: {exc.message}{gone}", status=exc.status)
        if self.params["rolling_versions"]:
            for old in versions[: max(0, len(versions) + 1 - self.params["versions_to_keep"])]:
                self.remove(old, quiet=True)
        return self.result(self.api.get(f"{self.path}/{answer.get('ID')}"))

    def relabel(self, current: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
        self.diff = {
            "before": self.view(current),
            "after": {**self.view(current), "labels": label_map(self.params.get("labels"))},
        }
        self.actions.append(f"{self.kind} labels updated")
        self.changes.append("labels")
        if self.check_mode:
            return self.result(current)
        spec = {"Name": current["Spec"]["Name"], "Labels": labels}
        self.api.post(f"{self.path}/{current['ID']}/update", spec, version=current["Version"]["Index"])
        return self.result(self.api.get(f"{self.path}/{current['ID']}"))

    def remove(self, obj: dict[str, Any], quiet: bool = False) -> None:
        try:
            self.api.delete(f"{self.path}/{obj['ID']}")
        except ShoalAPIError as exc:
            if quiet and exc.status == 400:  # an old version still in use stays, as in community.docker
                self.warn(f"{self.kind} {obj['Spec']['Name']} was kept: {exc.message}")
                return
            self.actions.clear()  # nothing was done
            self.fail(f"{self.kind} {obj['Spec']['Name']} cannot be removed: {exc.message}", status=exc.status)

    def absent(self, versions: list[dict[str, Any]]) -> dict[str, Any]:
        if not versions:
            self.diff = {"before": {"state": "absent"}, "after": {"state": "absent"}}
            return self.result(None)
        self.record_state(f"{self.kind} removed", self.view(versions[-1]), {"state": "absent"})
        if not self.check_mode:
            for obj in versions:
                self.remove(obj)
        return self.result(None)
