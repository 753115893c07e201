"""Pull progress as Docker streams it (JSON messages) and as `docker pull` prints it (pure).

The agent emits one JSON object per event, Docker's jsonmessage shape:
`{"status": "Downloading", "id": "<12 hex>", "progressDetail": {"current": n, "total": m}, "progress": "[==>  ]"}`.
A terminal shows one line per layer, rewritten in place; anything else gets one plain line per
change of a layer's status (no bars, no escape codes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

BAR_WIDTH = 50


def short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.3g}{unit}"
        n /= 1000
    return f"{n}"


def bar(current: int, total: int) -> str:
    """Docker's progress string: `[=====>      ]  1.2MB/3.4MB`."""
    if total <= 0:
        return ""
    filled = min(BAR_WIDTH, BAR_WIDTH * current // total)
    arrow = ">" if filled < BAR_WIDTH else ""
    body = "=" * max(0, filled - (1 if arrow else 0)) + arrow
    return f"[{body.ljust(BAR_WIDTH)}] {_human(current):>8}/{_human(total)}"


def message(
    status: str, layer: str | None = None, current: int | None = None, total: int | None = None
) -> dict[str, Any]:
    msg: dict[str, Any] = {"status": status}
    if layer:
        msg["id"] = short(layer)
    if total:
        cur = current or 0
        msg["progressDetail"] = {"current": cur, "total": total}
        msg["progress"] = bar(cur, total)
    elif layer:
        msg["progressDetail"] = {}
    return msg


def error(text: str) -> dict[str, Any]:
    return {"errorDetail": {"message": text}, "error": text}


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
