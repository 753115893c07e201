"""The docker CLI's registry credentials: config.json (`docker login` writes it) read the way the
docker CLI reads it, sent as X-Registry-Auth (`shoal image pull`, `service create|update
--with-registry-auth`)."""

from __future__ import annotations

import base64
import json
import os

from shoal.cli.errors import CLIError

__all__ = ["docker_config_dir", "registry_auth_header", "registry_domain"]


def docker_config_dir() -> str:
    return os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")


def registry_auth_header(domain: str, config_dir: str | None = None) -> str | None:
    """X-Registry-Auth for `domain` from the docker CLI's config.json (`docker login` writes it),
    as the docker CLI sends it: base64url of {"username", "password", "serveraddress"}."""
    path = os.path.join(config_dir or docker_config_dir(), "config.json")
    try:
        with open(path) as f:
            auths = (json.load(f) or {}).get("auths") or {}
    except (OSError, ValueError):
        return None
    keys = [domain, f"https://{domain}", f"http://{domain}"]
    if domain == "docker.io":
        keys += ["https://index.docker.io/v1/", "index.docker.io"]
    entry = next((auths[k] for k in keys if k in auths), None)
    if not entry or not entry.get("auth"):
        return None
    try:
        user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise CLIError(f"{path}: bad auth entry for {domain}") from None
    doc = {"username": user, "password": password, "serveraddress": domain}
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


def registry_domain(ref: str) -> str:
    first, _, rest = ref.partition("/")
    return first if rest and ("." in first or ":" in first or first == "localhost") else "docker.io"
