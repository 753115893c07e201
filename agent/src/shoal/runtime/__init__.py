"""shoal.runtime: task drivers (`oci`: OCI containers under conmon + runc; `process`: namespaces +
cgroups under a Python supervisor) and the node-local image store.

Names are loaded lazily: the per-task shim imports `shoal.runtime.linux` at every task start
and must not pay for dataclasses, typing or the image store.
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
    "ProcessDriver": "process",
    "OCIDriver": "oci.driver",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"shoal.runtime.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'shoal.runtime' has no attribute {name!r}")
