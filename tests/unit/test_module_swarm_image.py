"""swarm_image against a fake agent: pull when missing, idempotent, check mode, absent, load, errors."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from unit.test_module_support import APIFailure, FakeAgent, module_runner, serve_fake_agent

from ansible_collections.shoal.swarm.plugins.modules import swarm_image  # isort: skip

REF = "10.213.0.1:5000/kalise/nodejs-web-app:latest"


class Images:
    """The image part of the agent: a dict of name -> inspect, pulls from a fake registry."""

    def __init__(self, agent: FakeAgent) -> None:
        self.stored: dict[str, dict[str, Any]] = {}
        self.registry = {REF: "sha256:" + "1" * 64}
        self.pulls: list[tuple[str, str]] = []
        self.password = "s3cret"
        inner = agent.handle

        def handle(method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
            if path.startswith("/images/"):
                return self.handle(method, path, query)
            return inner(method, path, query, body)

        agent.handle = handle  # type: ignore[method-assign]

    def handle(self, method: str, path: str, query: dict[str, str]) -> tuple[int, Any]:
        if method == "POST" and path == "/images/create":
            ref = f"{query['fromImage']}:{query['tag']}"
            self.pulls.append((method, ref))
            if ref not in self.registry:
                raise APIFailure(404, f"No such image: {ref} (manifest unknown)")
            self.stored[ref] = {"Id": self.registry[ref], "RepoTags": [ref]}
            return 200, {"status": f"Status: Downloaded newer image for {ref}"}
        if method == "POST" and path == "/images/load":
            self.stored["web:1.2"] = {"Id": "sha256:" + "3" * 64, "RepoTags": ["web:1.2"]}
            return 200, {"stream": "Loaded image: web:1.2"}
        if method == "GET" and path.endswith("/json"):
            name = path.removeprefix("/images/").removesuffix("/json")
            if name not in self.stored:
                raise APIFailure(404, f"No such image: {name}")
            return 200, self.stored[name]
        if method == "DELETE":
            name = path.removeprefix("/images/")
            self.stored.pop(name)
            return 200, [{"Untagged": name}]
        raise APIFailure(404, "page not found")


@pytest.fixture
def agent() -> Iterator[FakeAgent]:
    with serve_fake_agent() as fake:
        yield fake


def test_pull_when_missing_then_idempotent(agent: FakeAgent) -> None:
    images = Images(agent)
    run = module_runner(swarm_image, agent)
    failed, result = run(check=True, diff=True, name=REF)
    assert not failed and result["changed"] and result["actions"] == [f"Would pull image {REF}"]
    assert images.pulls == []  # check mode asks nobody
    failed, result = run(name=REF, registry_username="shoal", registry_password="s3cret")
    assert not failed and result["changed"] and result["image"]["Id"] == "sha256:" + "1" * 64
    assert images.pulls == [("POST", REF)]
    failed, result = run(name=REF)
    assert not failed and not result["changed"] and images.pulls == [("POST", REF)]
    assert "s3cret" not in json.dumps(result)
    # force_source asks the registry again; same bits: no change
    failed, result = run(name=REF, force_source=True)
    assert not failed and not result["changed"] and len(images.pulls) == 2


def test_absent_and_errors(agent: FakeAgent, tmp_path: Path) -> None:
    images = Images(agent)
    run = module_runner(swarm_image, agent)
    images.stored[REF] = {"Id": "sha256:" + "2" * 64}
    failed, result = run(check=True, name=REF, state="absent")
    assert not failed and result["changed"] and REF in images.stored
    failed, result = run(name=REF, state="absent")
    assert not failed and result["changed"] and REF not in images.stored
    failed, result = run(name=REF, state="absent")
    assert not failed and not result["changed"]
    failed, result = run(name="10.213.0.1:5000/nope:1")
    assert failed and "manifest unknown" in result["msg"]
    failed, result = run(name="x:1", source="load")  # the argument spec's required_if says it
    assert failed and result["msg"] == "source is load but all of the following are missing: load_path"


def test_registry_auth_header_is_dockers() -> None:
    params = {"name": "r:5000/a/b:2", "registry_username": "u", "registry_password": "p"}
    header = swarm_image.auth_header(params)
    decoded = json.loads(base64.urlsafe_b64decode(header["X-Registry-Auth"]))
    assert decoded == {"username": "u", "password": "p", "serveraddress": "r:5000"}
    assert swarm_image.auth_header({"registry_username": None}) == {}
    assert swarm_image.split_reference("r:5000/a/b") == ("r:5000/a/b", "latest")
    assert swarm_image.split_reference("r:5000/a/b:2") == ("r:5000/a/b", "2")
    assert swarm_image.split_reference("r:5000/a/b:2@sha256:ab") == ("r:5000/a/b:2", "sha256:ab")


def test_check_and_diff_modes(agent: FakeAgent) -> None:
    images = Images(agent)
    run = module_runner(swarm_image, agent)
    failed, result = run(check=True, diff=True, name=REF)
    assert not failed and result["changed"] and result["actions"] == [f"Would pull image {REF}"]
    assert result["diff"] == {"before": {}, "after": {"name": REF, "id": "(pulled)"}}
    failed, result = run(diff=True, name=REF)
    assert result["diff"] == {"before": {}, "after": {"name": REF, "id": "sha256:" + "1" * 64}}
    assert result["image"]["Id"] == "sha256:" + "1" * 64
    # a forced pull in check mode cannot know whether the tag moved: it says what it would do, no change
    failed, result = run(check=True, diff=True, name=REF, force_source=True)
    assert not failed and not result["changed"]
    assert result["actions"] == [f"Would ask the registry about {REF}"] and len(images.pulls) == 1
    images.registry[REF] = "sha256:" + "4" * 64  # the tag now names other bits
    failed, result = run(diff=True, name=REF, force_source=True)
    assert not failed and result["changed"] and result["actions"] == [f"Pulled image {REF}"]
    assert result["diff"]["before"]["id"] == "sha256:" + "1" * 64
    assert result["diff"]["after"]["id"] == "sha256:" + "4" * 64
    failed, result = run(check=True, diff=True, name=REF, state="absent")
    assert result["changed"] and result["diff"]["before"] == {"name": REF, "id": "sha256:" + "4" * 64}
    assert result["image"] == {} and REF in images.stored


def test_what_changed_is_named(agent: FakeAgent) -> None:
    images = Images(agent)
    run = module_runner(swarm_image, agent)
    assert run(check=True, name=REF)[1]["changes"] == ["state"]
    assert run(name=REF)[1]["changes"] == ["state"]
    assert run(check=True, name=REF, force_source=True)[1]["changes"] == []  # unknown until asked
    images.registry[REF] = "sha256:" + "4" * 64
    assert run(name=REF, force_source=True)[1]["changes"] == ["id"]
    assert run(name=REF, state="absent")[1]["changes"] == ["state"]


def test_load_from_an_archive(agent: FakeAgent, tmp_path: Path) -> None:
    images = Images(agent)
    run = module_runner(swarm_image, agent)
    archive = tmp_path / "web.tar"
    archive.write_text('"a docker-archive"')  # the fake agent reads bodies as JSON
    failed, result = run(check=True, name="web:1.2", source="load", load_path=str(archive))
    assert not failed and result["changed"] and "web:1.2" not in images.stored
    failed, result = run(name="web:1.2", source="load", load_path=str(archive))
    assert not failed and result["actions"] == [f"Loaded image web:1.2 from {archive}"]
    assert result["image"]["Id"] == "sha256:" + "3" * 64
    failed, result = run(name="web:1.2", source="load", load_path=str(archive))
    assert not failed and not result["changed"]
    failed, result = run(name="other:1", source="load", load_path=str(archive))
    assert failed and result["msg"] == f"{archive} does not contain other:1"
    failed, result = run(name="other:2", source="load", load_path=str(tmp_path / "missing.tar"))
    assert failed and result["msg"].startswith(f"cannot read {tmp_path / 'missing.tar'}")
