"""Errors the `shoal` command reports without a traceback (DESIGN §7)."""

from __future__ import annotations

from shoal.errors import ShoalError


class CLIError(Exception):
    """A user mistake or a failed lookup found by the CLI itself: printed as is, exit 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIError(CLIError, ShoalError):
    """The agent answered with an error status; `message` is its JSON `{"message": ...}`.

    It is also a `ShoalError`, so that code below the CLI (the stack deployer) can catch an API
    answer exactly, without importing the CLI."""

    def __init__(self, status: int, message: str) -> None:
        CLIError.__init__(self, message)
        self.status = status

    def __str__(self) -> str:
        # docker's wording, so that scripts and people recognise where the error comes from
        return f"Error response from daemon: {self.message}"


class AgentUnreachable(CLIError):
    """No agent behind the socket (missing file, refused, permission denied)."""
