"""What `service create|update` does about the image before it calls the API, as the docker CLI:

- `--with-registry-auth`: the credentials `docker login` (or `shoal login`) stored for the image's
  registry in config.json go in the X-Registry-Auth header, so that the workers pull with them;
- `--resolve-image always|changed|never` (`--no-resolve-image` = never): the image is pinned to
  `image:tag@sha256:...` as the registry names it now (`GET /distribution/{name}/json` on the
  manager), so that every node runs the same bits. When the registry cannot tell, the service
  goes ahead unpinned with the docker CLI's warning.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from shoal.cli.client import Client
from shoal.cli.errors import CLIError
from shoal.cli.registry_auth import registry_auth_header, registry_domain

RESOLVE_ALWAYS, RESOLVE_CHANGED, RESOLVE_NEVER = "always", "changed", "never"
RESOLVE_MODES = (RESOLVE_ALWAYS, RESOLVE_CHANGED, RESOLVE_NEVER)
# Made on each node by the agent itself (runtime/images/builtin.py), in no registry: nothing to pin.
BUILTIN_REPOSITORIES = ("shoal/hello", "shoal/host")


def add_flags(p: argparse.ArgumentParser, default_resolve: str) -> None:
    p.add_argument(
        "--with-registry-auth",
        action="store_true",
        help="send registry authentication details (config.json) to swarm agents",
    )
    p.add_argument(
        "--resolve-image",
        choices=RESOLVE_MODES,
        default=default_resolve,
        help=f"query the registry to pin the image digest: always, changed or never ({default_resolve})",
    )
    p.add_argument(
        "--no-resolve-image",
        action="store_const",
        dest="resolve_image",
        const=RESOLVE_NEVER,
        help="do not query the registry to resolve the image digest",
    )


def registry_auth(image: str) -> str:
    """X-Registry-Auth for `image`'s registry from config.json; an empty AuthConfig (`{}`, as the
    docker CLI sends) when there is none, so that an update clears stale credentials."""
    return registry_auth_header(registry_domain(image.split("@", 1)[0])) or "e30="


def auth_headers(args: argparse.Namespace, image: str) -> dict[str, str]:
    return {"X-Registry-Auth": registry_auth(image)} if args.with_registry_auth else {}


def _repository(image: str) -> str:
    name = image.split("@", 1)[0]
    return name[: name.rfind(":")] if name.rfind(":") > name.rfind("/") else name


def pinned(image: str, digest: str) -> str:
    """`image:tag@digest` (the tag defaults to latest, as `docker service create` shows it)."""
    repository = _repository(image)
    tag = image[len(repository) + 1 :] if len(image) > len(repository) else "latest"
    return f"{repository}:{tag}@{digest}"


def needs_resolving(image: str, mode: str, image_changed: bool) -> bool:
    if mode == RESOLVE_NEVER or (mode == RESOLVE_CHANGED and not image_changed):
        return False
    name = _repository(image)
    return "@" not in image and name.removeprefix("docker.io/") not in BUILTIN_REPOSITORIES


def resolve(api: Client, image: str, headers: Mapping[str, str]) -> str:
    """`image` pinned to its registry digest, or `image` itself with a warning on stderr."""
    try:
        found: Any = api.request("GET", f"/distribution/{image}/json", headers=headers)
        digest = str(((found or {}).get("Descriptor") or {}).get("digest") or "")
    except CLIError as exc:
        digest = ""
        print(f"image {image} could not be accessed on a registry to record its digest: {exc.message}", file=sys.stderr)
    if not digest.startswith("sha256:"):
        print(
            f"Each node will access {image} independently, possibly leading to different nodes running "
            "different versions of the image.",
            file=sys.stderr,
        )
        return image
    return pinned(image, digest)


def prepare_image(api: Client, args: argparse.Namespace, spec: dict[str, Any], image_changed: bool) -> dict[str, str]:
    """Pins `spec`'s image in place where asked; returns the headers of the create/update call."""
    container = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
    image = str(container.get("Image") or "")
    headers = auth_headers(args, image)
    if image and needs_resolving(image, args.resolve_image, image_changed):
        container["Image"] = resolve(api, image, headers)
    return headers
