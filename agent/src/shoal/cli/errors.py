"""Errors the `shoal` command reports without a traceback (DESIGN §7)."""

from __future__ import annotations


class CLIError(Exception):
    """A user mistake or a failed lookup found by the CLI itself: printed as is, exit 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIError(CLIError):
    """The agent answered with an error status; `message` is its JSON `{"message": ...}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    def __str__(self) -> str:
        # docker's wording, so that scripts and people recognise where the error comes from
        return f"Error response from daemon: {self.message}"


class AgentUnreachable(CLIError):
    """No agent behind the socket (missing file, refused, permission denied)."""
