"""Kept for imports from before `shoal.errors`: the model's errors are defined there."""

from __future__ import annotations

from shoal.errors import SpecError

__all__ = ["SpecError"]
