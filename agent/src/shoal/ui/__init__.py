"""The visualizer page's static assets (index.html, app.js, style.css): shipped in the package,
no CDN and no build step, so the page works on a machine without internet."""

from __future__ import annotations

from importlib.resources import files

ASSETS = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}


def asset(name: str) -> bytes:
    """One asset's bytes; KeyError for anything not listed (no path is taken from a request)."""
    if name not in ASSETS:
        raise KeyError(name)
    return files(__package__).joinpath(name).read_bytes()
