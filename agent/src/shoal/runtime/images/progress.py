"""Pull progress as Docker streams it (pure): one JSON object per event, Docker's jsonmessage shape
`{"status": "Downloading", "id": "<12 hex>", "progressDetail": {"current": n, "total": m}, "progress": "[==>  ]"}`.
The CLI renders them (`cli/image_progress.py`)."""

from __future__ import annotations

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
