"""`shoal service create|update --with-registry-auth / --resolve-image / --no-resolve-image`
against the in-process fake agent: the header the docker CLI sends, the digest pinning through
`GET /distribution/{name}/json`, and the warning when the registry cannot tell."""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.cli import service_progress
from unit.test_cli_agent import run
from unit.test_cli_service_agent import FakeSwarm

REGISTRY = "10.213.0.1:5000"
IMAGE = f"{REGISTRY}/testbed/hello:1"
DIGEST = "sha256:" + "d" * 64
PASSWORD = "pw-for-the-test"


class DistributionSwarm(FakeSwarm):
    """FakeSwarm that also answers `/distribution/{name}/json` for the images in `digests`."""

    def __init__(self, sock: str) -> None:
        super().__init__(sock)
        self.digests = {IMAGE: DIGEST, f"{REGISTRY}/testbed/hello:2": "sha256:" + "e" * 64}

    def route(self, method: str, path: str, q: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        if method == "GET" and path.startswith("/distribution/") and path.endswith("/json"):
            name = path[len("/distribution/") : -len("/json")]
            if name not in self.digests:
                return 401, {"message": f"pull {name}: unauthorized: authentication required"}
            return 200, {"Descriptor": {"mediaType": "x", "digest": self.digests[name], "size": 1}, "Platforms": []}
        return super().route(method, path, q, body)

    def header_of(self, call: str, n: int = 0) -> str | None:
        seen = [h for (m, p, _, _), h in zip(self.requests, self.headers, strict=True) if f"{m} {p}" == call]
        return seen[n].get("X-Registry-Auth")


@pytest.fixture
def swarm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[DistributionSwarm]:
    monkeypatch.setattr(service_progress, "POLL_INTERVAL", 0.01)
    token = base64.b64encode(f"shoal:{PASSWORD}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {REGISTRY: {"auth": token}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    with tempfile.TemporaryDirectory(prefix="shoalimg") as d:
        agent = DistributionSwarm(os.path.join(d, "shoal.sock"))
        yield agent
        agent.close()


def decoded(header: str | None) -> dict[str, Any]:
    assert header is not None
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))


def image_of(swarm: DistributionSwarm) -> str:
    (svc,) = swarm.services.values()
    return svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]


def test_create_with_registry_auth_sends_config_credentials_and_pins_the_digest(
    swarm: DistributionSwarm, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = run(swarm, capsys, "service", "create", "-d", "--name", "web", "--with-registry-auth", IMAGE)
    assert rc == 0, err
    assert swarm.calls() == [f"GET /distribution/{IMAGE}/json", "POST /services/create"]
    auth = {"username": "shoal", "password": PASSWORD, "serveraddress": REGISTRY}
    assert decoded(swarm.header_of(f"GET /distribution/{IMAGE}/json")) == auth
    assert decoded(swarm.header_of("POST /services/create")) == auth
    assert image_of(swarm) == f"{IMAGE}@{DIGEST}"


def test_create_resolves_by_default_without_sending_credentials(
    swarm: DistributionSwarm, capsys: pytest.CaptureFixture[str]
) -> None:
    swarm.digests["busybox"] = DIGEST
    rc, _, err = run(swarm, capsys, "service", "create", "-d", "--name", "web", "busybox")
    assert rc == 0, err
    assert swarm.header_of("GET /distribution/busybox/json") is None
    assert swarm.header_of("POST /services/create") is None
    assert image_of(swarm) == f"busybox:latest@{DIGEST}"  # the default tag, as docker shows it


@pytest.mark.parametrize("flags", [("--no-resolve-image",), ("--resolve-image", "never")])
def test_create_never_resolving_asks_no_registry(
    swarm: DistributionSwarm, capsys: pytest.CaptureFixture[str], flags: tuple[str, ...]
) -> None:
    rc, _, _ = run(swarm, capsys, "service", "create", "-d", "--name", "web", *flags, IMAGE)
    assert rc == 0
    assert swarm.calls() == ["POST /services/create"] and image_of(swarm) == IMAGE


def test_an_image_the_registry_cannot_tell_goes_unpinned_with_dockers_warning(
    swarm: DistributionSwarm, capsys: pytest.CaptureFixture[str]
) -> None:
    other = f"{REGISTRY}/testbed/private:1"
    rc, _, err = run(swarm, capsys, "service", "create", "-d", "--name", "web", other)
    assert rc == 0
    assert f"image {other} could not be accessed on a registry to record its digest" in err
    assert "unauthorized" in err and "Each node will access" in err
    assert image_of(swarm) == other


def test_with_registry_auth_and_no_credentials_sends_an_empty_authconfig(
    swarm: DistributionSwarm, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "nothing-here"))
    rc, _, _ = run(swarm, capsys, "service", "create", "-d", "--with-registry-auth", "--no-resolve-image", IMAGE)
    assert rc == 0
    assert decoded(swarm.header_of("POST /services/create")) == {}


def test_update_resolves_a_changed_image_and_sends_credentials_only_when_asked(
    swarm: DistributionSwarm, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(swarm, capsys, "service", "create", "-d", "--name", "web", "--no-resolve-image", IMAGE)[0] == 0
    # the default for update is "changed": no new image, no registry query
    rc, _, err = run(swarm, capsys, "service", "update", "-d", "--env-add", "A=1", "web")
    assert rc == 0, err
    assert f"GET /distribution/{IMAGE}/json" not in swarm.calls() and image_of(swarm) == IMAGE
    # "always" pins the image the service has
    rc, _, err = run(swarm, capsys, "service", "update", "-d", "--resolve-image", "always", "web")
    assert rc == 0, err
    assert image_of(swarm) == f"{IMAGE}@{DIGEST}"
    assert swarm.header_of("POST /services/" + next(iter(swarm.services)) + "/update") is None
    new = f"{REGISTRY}/testbed/hello:2"
    rc, _, err = run(swarm, capsys, "service", "update", "-d", "--image", new, "--with-registry-auth", "web")
    assert rc == 0, err
    assert image_of(swarm) == f"{new}@sha256:{'e' * 64}"
    assert decoded(swarm.header_of(f"GET /distribution/{new}/json"))["password"] == PASSWORD
    assert (
        decoded(swarm.header_of("POST /services/" + next(iter(swarm.services)) + "/update", 2))["username"] == "shoal"
    )
    rc, _, err = run(swarm, capsys, "service", "update", "-d", "--rollback", "--with-registry-auth", "web")
    assert rc != 0 and "may not be combined with --rollback" in err
    assert PASSWORD not in err


def test_bad_resolve_mode_is_refused_before_any_call(swarm: DistributionSwarm, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exc:
        run(swarm, capsys, "service", "create", "--resolve-image", "sometimes", IMAGE)
    assert exc.value.code == 2
    assert "invalid choice: 'sometimes'" in capsys.readouterr().err
    assert swarm.calls() == []
