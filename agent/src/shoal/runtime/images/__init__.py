"""The node-local image store (`store.py`): pulls through skopeo, unpacks with umoci, loads
docker/OCI archives; references, progress messages and the prune policy are pure modules."""

from __future__ import annotations

from shoal.runtime.images.reference import Reference, parse
from shoal.runtime.images.registry import Credentials, ImageFormatError, RegistryError, RegistryOptions
from shoal.runtime.images.store import DEFAULT_ROOT, HOST_BINDS_LABEL, Image, ImageConflict, ImageStore

HOST_IMAGE = "shoal/host"
HELLO_IMAGE = "shoal/hello"


def normalize(ref: str) -> str:
    return parse(ref).key


__all__ = [
    "DEFAULT_ROOT",
    "HELLO_IMAGE",
    "HOST_BINDS_LABEL",
    "HOST_IMAGE",
    "Credentials",
    "Image",
    "ImageConflict",
    "ImageFormatError",
    "ImageStore",
    "Reference",
    "RegistryError",
    "RegistryOptions",
    "normalize",
    "parse",
]
