"""Pure parts of the image store: references, progress rendering, prune policy, registry errors."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from shoal.cli.image import registry_auth_header, registry_domain
from shoal.cli.image_progress import PullFailed, Renderer
from shoal.model.errors import SpecError
from shoal.runtime.images import progress
from shoal.runtime.images.prune import Candidate, Policy, choose
from shoal.runtime.images.reference import parse
from shoal.runtime.images.registry import Credentials, RegistryOptions, error_from

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("ref", "domain", "path", "tag", "digest", "key"),
    [
        ("busybox", "docker.io", "library/busybox", None, None, "busybox:latest"),
        ("kalise/nodejs-web-app", "docker.io", "kalise/nodejs-web-app", None, None, "kalise/nodejs-web-app:latest"),
        ("docker.io/library/nginx:1.25", "docker.io", "library/nginx", "1.25", None, "nginx:1.25"),
        ("index.docker.io/x/y", "docker.io", "x/y", None, None, "x/y:latest"),
        (
            "10.213.0.1:5000/testbed/hello:1",
            "10.213.0.1:5000",
            "testbed/hello",
            "1",
            None,
            "10.213.0.1:5000/testbed/hello:1",
        ),
        ("localhost/app", "localhost", "app", None, None, "localhost/app:latest"),
        ("localhost:5000/app", "localhost:5000", "app", None, None, "localhost:5000/app:latest"),
        (f"web:2@{DIGEST}", "docker.io", "library/web", "2", DIGEST, f"web@{DIGEST}"),
        (f"reg.example:443/a/b@{DIGEST}", "reg.example:443", "a/b", None, DIGEST, f"reg.example:443/a/b@{DIGEST}"),
    ],
)
def test_references(ref: str, domain: str, path: str, tag: str | None, digest: str | None, key: str) -> None:
    parsed = parse(ref)
    assert (parsed.domain, parsed.path, parsed.tag, parsed.digest) == (domain, path, tag, digest)
    assert parsed.key == key
    # a digest wins over the tag for what is fetched, as in Docker
    assert parsed.transport().endswith(f"@{digest}" if digest else f":{tag or 'latest'}")


@pytest.mark.parametrize("bad", ["", "Web", "a:b:c", "x@sha256:00", "x@md5:" + "0" * 32, "-x", "a//b", "x:", " x"])
def test_bad_references(bad: str) -> None:
    with pytest.raises(SpecError, match="invalid reference format"):
        parse(bad)


def test_progress_messages_are_dockers_shape() -> None:
    msg = progress.message("Downloading", DIGEST, 500, 1000)
    assert msg["id"] == "ab" * 6 and msg["progressDetail"] == {"current": 500, "total": 1000}
    assert msg["progress"].startswith("[" + "=" * 24 + ">") and msg["progress"].endswith("500B/1kB")
    assert progress.message("Pull complete", DIGEST) == {
        "status": "Pull complete",
        "id": "ab" * 6,
        "progressDetail": {},
    }
    assert progress.error("boom") == {"errorDetail": {"message": "boom"}, "error": "boom"}


def test_plain_rendering_prints_each_change_once() -> None:
    r = Renderer(tty=False)
    out = "".join(
        r.feed(m)
        for m in [
            progress.message("Pulling from x", "1"),
            progress.message("Pulling fs layer", "sha256:" + "1" * 64, 0, 10),
            progress.message("Downloading", "sha256:" + "1" * 64, 2, 10),
            progress.message("Downloading", "sha256:" + "1" * 64, 5, 10),
            progress.message("Pull complete", "sha256:" + "1" * 64),
            progress.message("Status: Downloaded newer image for x:1"),
        ]
    )
    assert out == (
        "1: Pulling from x\n111111111111: Pulling fs layer\n111111111111: Downloading\n"
        "111111111111: Pull complete\nStatus: Downloaded newer image for x:1\n"
    )
    assert "\x1b" not in out
    with pytest.raises(PullFailed, match="unauthorized"):
        r.feed(progress.error("unauthorized: authentication required"))


def test_terminal_rendering_rewrites_the_layers_line() -> None:
    r = Renderer(tty=True)
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    assert r.feed(progress.message("Pulling fs layer", a)) == "aaaaaaaaaaaa: Pulling fs layer\n"
    assert r.feed(progress.message("Pulling fs layer", b)) == "bbbbbbbbbbbb: Pulling fs layer\n"
    out = r.feed(progress.message("Downloading", a, 5, 10))
    # two lines up (a is the first of two), clear, write with its bar, two lines down
    assert out.startswith("\x1b[2A\r\x1b[2Kaaaaaaaaaaaa: Downloading [") and out.endswith("\r\x1b[2B")


def test_prune_policy() -> None:
    now = 10_000.0
    images = [
        Candidate("old", 100, now - 5000),
        Candidate("mid", 100, now - 500),
        Candidate("new", 100, now - 10),
        Candidate("used", 1000, now - 9000, in_use=True),
        Candidate("hello", 5, now - 9000, builtin=True),
    ]
    assert choose(images, Policy(), now) == []
    assert choose(images, Policy(max_age=1000), now) == ["old"]
    # 1305 bytes in all: least recently used unused images go until at most 1150 remain
    assert choose(images, Policy(max_bytes=1150), now) == ["old", "mid"]
    # never what a task uses nor a built-in, even when that leaves the store above the limit
    assert choose(images, Policy(max_bytes=0), now) == ["old", "mid", "new"]
    assert choose(images, Policy(), now, all_unused=True) == ["old", "mid", "new"]
    assert choose(images, Policy(max_age=1000, max_bytes=1150), now) == ["old", "mid"]


@pytest.mark.parametrize(
    ("stderr", "reason", "status"),
    [
        (
            'time="x" level=fatal msg="Error parsing image name \\"docker://r:5000/a:1\\": reading manifest 1 in '
            'r:5000/a: unauthorized: authentication required"',
            "unauthorized",
            401,
        ),
        ('level=fatal msg="reading manifest nope in r/a: manifest unknown: manifest unknown"', "manifest unknown", 404),
        (
            'level=fatal msg="pinging container registry r:5000: Get \\"https://r:5000/v2/\\": dial tcp r:5000: '
            'connect: connection refused"',
            "connection refused",
            502,
        ),
        ('level=fatal msg="x509: certificate signed by unknown authority"', "certificate", 502),
    ],
)
def test_registry_errors_keep_the_registry_reason(stderr: str, reason: str, status: int) -> None:
    err = error_from(stderr, "r:5000/a:1")
    assert err.reason == reason and err.status == status and reason in err.message
    assert "Error parsing image name" not in err.message


def test_credentials_never_show() -> None:
    creds = Credentials.from_auth({"auth": base64.b64encode(b"bob:s3cret").decode()})
    assert creds == Credentials("bob", "s3cret") and "s3cret" not in repr(creds)
    err = error_from('level=fatal msg="unauthorized for bob:s3cret"', "a", creds)
    assert "s3cret" not in err.message
    assert Credentials.from_auth({}) is None and Credentials.from_auth(None) is None


def test_tls_args_follow_certs_d_and_the_insecure_list(tmp_path: Path) -> None:
    (tmp_path / "reg:5000").mkdir()
    options = RegistryOptions(certs_dir=tmp_path, insecure=("plain.example",))
    assert options.tls_args(parse("reg:5000/a"), "src-") == [f"--src-cert-dir={tmp_path / 'reg:5000'}"]
    assert options.tls_args(parse("plain.example:80/a"), "") == ["--tls-verify=false"]
    assert options.tls_args(parse("other.example/a"), "src-") == []


def test_cli_sends_the_docker_config_credentials(tmp_path: Path) -> None:
    token = base64.b64encode(b"u:p").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"10.213.0.1:5000": {"auth": token}}}))
    header = registry_auth_header("10.213.0.1:5000", str(tmp_path))
    assert header and json.loads(base64.urlsafe_b64decode(header)) == {
        "username": "u",
        "password": "p",
        "serveraddress": "10.213.0.1:5000",
    }
    assert registry_auth_header("other:5000", str(tmp_path)) is None
    assert registry_domain("10.213.0.1:5000/a/b") == "10.213.0.1:5000" and registry_domain("kalise/app") == "docker.io"
