"""shoal.runtime: the task driver (`oci`: OCI containers under conmon + runc) and the node-local
image store.

Names are loaded lazily: `python -m shoal.runtime` and the CLI must not pay for the image store
or the driver when they do not use them.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Driver": "base",
    "ExitStatus": "base",
    "NoSuchImage": "base",
    "NoSuchTask": "base",
    "RuntimeDriverError": "base",
    "TaskHandle": "base",
    "TaskRejected": "base",
    "Image": "images",
    "ImageStore": "images",
    "OCIDriver": "oci.driver",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"shoal.runtime.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'shoal.runtime' has no attribute {name!r}")
