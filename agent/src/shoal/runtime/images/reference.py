"""Image references as Docker parses them (distribution/reference, pure).

`[DOMAIN[:PORT]/]PATH[:TAG][@DIGEST]`: the first component is a registry domain only when it has
a dot or a port or is `localhost`, otherwise the image lives on Docker Hub (`docker.io`, with
`library/` for one-component names). Docker shows Hub images by their familiar name (`busybox`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shoal.model.errors import SpecError

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?$"
)
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Reference:
    domain: str  # "docker.io", "10.213.0.1:5000", "localhost"
    path: str  # "library/busybox", "kalise/nodejs-web-app"
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """The familiar repository name: `busybox`, `kalise/app`, `10.213.0.1:5000/hello`."""
        if self.domain == DEFAULT_DOMAIN:
            return self.path.removeprefix(OFFICIAL_PREFIX)
        return f"{self.domain}/{self.path}"

    @property
    def full_name(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def tagged(self) -> str:
        """`repository:tag` (latest when neither tag nor digest was given)."""
        return f"{self.repository}:{self.tag or 'latest'}"

    @property
    def canonical(self) -> str:
        """`repository@digest` (needs a digest)."""
        return f"{self.repository}@{self.digest}"

    @property
    def key(self) -> str:
        """How the local store names this reference: by digest when pinned, else by tag."""
        return self.canonical if self.digest else self.tagged

    def transport(self) -> str:
        """skopeo's source for this reference: the digest wins over the tag, as in Docker."""
        suffix = f"@{self.digest}" if self.digest else f":{self.tag or 'latest'}"
        return f"docker://{self.full_name}{suffix}"

    def __str__(self) -> str:
        out = self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out if (self.tag or self.digest) else f"{out}:latest"


def parse(ref: str) -> Reference:
    """Parse a reference; raises SpecError("invalid reference format: ...")."""
    if not isinstance(ref, str) or not ref or ref != ref.strip():
        raise SpecError(f"invalid reference format: {ref!r}")
    rest, digest = ref, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.match(digest):
            raise SpecError(f"invalid reference format: {ref!r} (bad digest {digest!r})")
    tag = None
    slash, colon = rest.rfind("/"), rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.match(tag):
            raise SpecError(f"invalid reference format: {ref!r} (bad tag {tag!r})")
    first, _, remainder = rest.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, remainder
        if not _DOMAIN.match(domain):
            raise SpecError(f"invalid reference format: {ref!r} (bad registry {domain!r})")
        if domain == LEGACY_DOMAIN:
            domain = DEFAULT_DOMAIN
    else:
        domain, path = DEFAULT_DOMAIN, rest
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    if not _PATH.match(path):
        raise SpecError(f"invalid reference format: {ref!r} (repository name must be lowercase)")
    return Reference(domain, path, tag, digest)


def registry_host(ref: Reference) -> str:
    """The `HOST:PORT` of certs.d and auth entries (Docker Hub's auth key is its index URL)."""
    return ref.domain


def is_digest(value: str) -> bool:
    return bool(_DIGEST.match(value))
