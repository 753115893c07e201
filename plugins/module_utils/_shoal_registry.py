# Copyright: shoal developers
# Apache License 2.0 (see galaxy.yml)
"""Registry credentials and image digests for the shoal.swarm modules, as the docker CLI does them.

- ``X-Registry-Auth``: base64url of a JSON AuthConfig (``username``, ``password``,
  ``serveraddress``), from the module's options or from the docker CLI's ``config.json`` on the
  managed host (``$DOCKER_CONFIG`` or ``~/.docker``, as ``docker login`` writes it);
- digest pinning: ``GET /distribution/{name}/json`` on the manager names what a tag is now, and
  the service gets ``image:tag@sha256:...``.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any
from urllib.parse import quote

from ansible_collections.shoal.swarm.plugins.module_utils._shoal_api import ShoalAPIError, ShoalClient

EMPTY_AUTH = base64.urlsafe_b64encode(b"{}").decode()  # what the docker CLI sends without credentials


def registry_domain(image: str) -> str:
    """The registry of an image reference (Docker Hub's is ``docker.io``)."""
    first, _sep, rest = image.split("@", 1)[0].partition("/")
    return first if rest and ("." in first or ":" in first or first == "localhost") else "docker.io"


def encode_auth(username: str, password: str, serveraddress: str) -> str:
    doc = {"username": username, "password": password, "serveraddress": serveraddress}
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


def docker_config_auth(domain: str, config_dir: str | None = None) -> str | None:
    """X-Registry-Auth for ``domain`` from the docker CLI's config.json (None when it has none)."""
    base = config_dir or os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    try:
        with open(os.path.join(base, "config.json")) as f:
            auths = (json.load(f) or {}).get("auths") or {}
    except (OSError, ValueError):
        return None
    keys = [domain, f"https://{domain}", f"http://{domain}"]
    if domain == "docker.io":
        keys += ["https://index.docker.io/v1/", "index.docker.io"]
    entry = next((auths[k] for k in keys if k in auths), None)
    if not isinstance(entry, dict) or not entry.get("auth"):
        return None
    try:
        user, _sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return encode_auth(user, password, domain)


def auth_for(image: str, username: str | None, password: str | None) -> str:
    """The X-Registry-Auth to send for ``image``: the given credentials, else config.json's, else an
    empty AuthConfig (which also clears credentials a service had)."""
    domain = registry_domain(image)
    if username:
        return encode_auth(username, password or "", domain)
    return docker_config_auth(domain) or EMPTY_AUTH


def repository(image: str) -> str:
    name = image.split("@", 1)[0]
    return name[: name.rfind(":")] if name.rfind(":") > name.rfind("/") else name


def without_digest(image: str) -> str:
    return image.split("@", 1)[0]


def tagged(image: str) -> str:
    """``repository:tag`` without the digest (latest when no tag is given)."""
    return pinned(image, "").removesuffix("@")


def pinned(image: str, digest: str) -> str:
    """``image:tag@digest``, the tag defaulting to latest (as ``docker service create`` shows it)."""
    repo = repository(image)
    name = without_digest(image)
    tag = name[len(repo) + 1 :] if len(name) > len(repo) else "latest"
    return f"{repo}:{tag}@{digest}"


def resolve_digest(api: ShoalClient, image: str, auth: str | None) -> str:
    """``image`` pinned to the digest its registry names now (ShoalAPIError with the registry's reason)."""
    headers = {"X-Registry-Auth": auth} if auth else None
    found: Any = api.call("GET", f"/distribution/{quote(image, safe='/:@')}/json", extra_headers=headers) or {}
    digest = str((found.get("Descriptor") or {}).get("digest") or "")
    if not digest.startswith("sha256:"):
        raise ShoalAPIError(502, f"the manager named no digest for {image}", "GET", "/distribution")
    return pinned(image, digest)
