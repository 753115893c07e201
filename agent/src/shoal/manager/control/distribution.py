"""`GET /distribution/{name}/json` on a manager: what a tag names in its registry right now
(the descriptor the docker CLI pins a service's image to, `image:tag@sha256:...`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shoal.runtime.images.reference import parse
from shoal.runtime.images.registry import Credentials, RegistryOptions, inspect_raw


def inspect_distribution(
    name: str, registry_auth: Mapping[str, Any] | None, options: RegistryOptions, policy: Path
) -> dict[str, Any]:
    """Docker's DistributionInspect: the manifest (or index) descriptor and its platforms.
    Raises SpecError for a bad reference, RegistryError with the registry's reason."""
    ref = parse(name)
    doc, media, size, digest = inspect_raw(ref, Credentials.from_auth(registry_auth), options, policy)
    platforms = [
        {k: v for k, v in (m.get("platform") or {}).items() if k in ("architecture", "os", "variant")}
        for m in doc.get("manifests") or []
    ]
    return {
        "Descriptor": {"mediaType": media, "digest": digest, "size": size},
        "Platforms": platforms or [{"architecture": "amd64", "os": "linux"}],
    }
