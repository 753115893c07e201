"""Talking to registries through skopeo: certificates, credentials, errors.

Why skopeo rather than a Python registry client: it is the registry client podman and CRI-O use
(containers/image), packaged by Debian, and it already does everything a pull needs and that we
would otherwise write and keep correct ourselves — token and basic auth, the Docker v2 / OCI
manifest and index formats with platform selection, schema conversion, digest verification of
every blob, blob reuse in an OCI layout, retries, certs.d CA directories, docker-archive and
oci-archive. The Python clients on PyPI cover parts of this and are thinly maintained.

Credentials go to skopeo in an authfile (0600, in a private temporary directory, removed at once),
never on its command line (visible in /proc) nor in a log; error texts are scrubbed of them.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.runtime.base import RuntimeDriverError
from shoal.runtime.images.reference import Reference

SKOPEO = "skopeo"
CERTS_DIR = Path("/etc/shoal/certs.d")
INSPECT_TIMEOUT = 60.0


class RegistryError(RuntimeDriverError):
    """A registry refused or could not be reached; `reason` is the registry's own word
    (`unauthorized`, `manifest unknown`, `connection refused`, ...), `status` the API's answer."""

    def __init__(self, message: str, reason: str, status: int) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


class ImageFormatError(RuntimeDriverError):
    """An archive or a manifest that is not a usable image: 400."""

    status = 400


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never print the password by accident
        return f"Credentials(username={self.username!r}, password=***)"

    @classmethod
    def from_auth(cls, auth: Mapping[str, Any] | None) -> Credentials | None:
        """From Docker's AuthConfig (`X-Registry-Auth`: username/password, or `auth` = b64 user:pass)."""
        if not auth:
            return None
        user, password = auth.get("username") or "", auth.get("password") or ""
        if not user and auth.get("auth"):
            try:
                user, _, password = base64.b64decode(str(auth["auth"])).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
        if auth.get("identitytoken") or auth.get("registrytoken"):
            raise RegistryError(
                "identity and registry tokens are not supported: use username and password", "unsupported", 400
            )
        return cls(str(user), str(password)) if user else None


@dataclass(frozen=True)
class RegistryOptions:
    certs_dir: Path = CERTS_DIR
    insecure: tuple[str, ...] = ()  # HOST[:PORT] entries of the agent config's insecure_registries

    def tls_args(self, ref: Reference, prefix: str) -> list[str]:
        """`--src-cert-dir` from certs.d (Docker's layout); TLS checks off only for a listed registry."""
        args: list[str] = []
        host = ref.domain
        if host in self.insecure or host.split(":")[0] in self.insecure:
            args.append(f"--{prefix}tls-verify=false")
        cert_dir = self.certs_dir / host
        if cert_dir.is_dir():
            args.append(f"--{prefix}cert-dir={cert_dir}")
        return args


@contextlib.contextmanager
def auth_args(ref: Reference, creds: Credentials | None, prefix: str) -> Iterator[list[str]]:
    """skopeo flags for credentials: an authfile for this registry only, or none at all (then
    skopeo must not fall back to ~/.docker/config.json or /run/containers: `--*no-creds`)."""
    if creds is None:
        yield [f"--{prefix}no-creds"]
        return
    tmp = tempfile.mkdtemp(prefix="shoal-auth-")  # 0700
    try:
        path = os.path.join(tmp, "auth.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        with os.fdopen(fd, "w") as f:
            json.dump({"auths": {ref.domain: {"auth": token}}}, f)
        yield [f"--{prefix}authfile={path}"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_FATAL = re.compile(r'level=fatal msg="(.*)"\s*$', re.S)


def scrub(text: str, creds: Credentials | None) -> str:
    if creds and creds.password:
        text = text.replace(creds.password, "***")
        text = text.replace(base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode(), "***")
    return text


def error_from(stderr: str, ref: Reference | str, creds: Credentials | None = None) -> RegistryError:
    """The registry's reason out of skopeo's `level=fatal msg="..."` line, with the API status."""
    raw = stderr.strip().splitlines()[-1] if stderr.strip() else "skopeo failed"
    m = _FATAL.search(raw)
    text = m.group(1).encode().decode("unicode_escape", "replace") if m else raw
    text = re.sub(r'^Error parsing image name "[^"]*": ', "", text)
    text = scrub(text, creds)
    low = text.lower()
    if "unauthorized" in low or "authentication required" in low or "401" in low:
        reason, status = "unauthorized", 401
    elif "manifest unknown" in low or "name unknown" in low or "not found" in low:
        reason, status = "manifest unknown", 404
    elif "connection refused" in low:
        reason, status = "connection refused", 502
    elif "certificate" in low or "x509" in low or "tls" in low:
        reason, status = "certificate", 502
    elif "no route to host" in low or "i/o timeout" in low or "no such host" in low or "network is unreachable" in low:
        reason, status = "unreachable", 502
    else:
        reason, status = "error", 500
    if reason == "manifest unknown":
        message = f"No such image: {ref} (manifest unknown)"
    else:
        message = (
            f"pull {ref}: {reason}: {text}"
            if reason not in text.lower() or reason == "error"
            else f"pull {ref}: {text}"
        )
    return RegistryError(message, reason, status)


def run(argv: list[str], *, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def inspect_raw(
    ref: Reference, creds: Credentials | None, options: RegistryOptions, policy: Path
) -> tuple[dict[str, Any], str, int, str]:
    """(manifest or index, its media type, its size, its digest) as the registry serves it."""
    with auth_args(ref, creds, "") as auth:
        tls = options.tls_args(ref, "")
        argv = [SKOPEO, f"--policy={policy}", "inspect", "--raw", *auth, *tls, ref.transport()]
        proc = run(argv, timeout=INSPECT_TIMEOUT)
    if proc.returncode != 0:
        raise error_from(proc.stderr, ref, creds)
    raw = proc.stdout.encode()
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise ImageFormatError(f"{ref}: the registry sent a manifest that is not JSON") from exc
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    media = str(doc.get("mediaType") or "application/vnd.oci.image.manifest.v1+json")
    return doc, media, len(raw), digest
