"""`shoal image pull` output from the agent's JSON progress messages, as `docker pull` prints it:
on a terminal one line per layer, rewritten in place (docker's jsonmessage cursor moves);
otherwise one plain line per change of a layer's status (no bars, no escape codes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Renderer:
    """Turns the JSON messages into text. `tty`: one line per layer, updated in place with the
    cursor moves of docker's jsonmessage; else a line whenever a layer's status changes."""

    tty: bool
    order: list[str] = field(default_factory=list)  # layer ids in first-seen order
    last: dict[str, str] = field(default_factory=dict)  # layer id -> last status printed

    def feed(self, msg: Mapping[str, Any]) -> str:
        if msg.get("error"):
            raise PullFailed(str(msg.get("error")))
        if "stream" in msg:
            return str(msg["stream"])
        status = str(msg.get("status", ""))
        layer = msg.get("id")
        if not layer:
            return status + "\n"
        line = f"{layer}: {status}"
        if self.tty and msg.get("progress"):
            line += f" {msg['progress']}"
        if not self.tty:
            if self.last.get(layer) == status:
                return ""  # plain output: no repeated "Downloading" lines
            self.last[layer] = status
            if layer not in self.order:
                self.order.append(layer)
            return line + "\n"
        if layer not in self.order:
            self.order.append(layer)
            self.last[layer] = line
            return line + "\n"
        self.last[layer] = line
        up = len(self.order) - self.order.index(layer)
        # up to the layer's line, clear it, write, come back down (docker's jsonmessage does the same)
        return f"\x1b[{up}A\r\x1b[2K{line}\r\x1b[{up}B"


class PullFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
