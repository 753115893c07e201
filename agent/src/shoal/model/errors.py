"""Errors raised by the pure model helpers."""

from __future__ import annotations


class SpecError(ValueError):
    """A user-supplied spec or value is invalid: the API answers 400 with `message`."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
