"""Compose files as plain data plus where each key came from (ruamel.yaml keeps the lines)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from shoal.compose.errors import ComposeError

KeyPath = tuple[str | int, ...]


def dotted(path: Iterable[str | int]) -> str:
    """`services.web.ports[0]`: how errors name a key."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


@dataclass
class Locator:
    """Where each key path was written: (file, 1-based line). Later files (overrides) win."""

    lines: dict[KeyPath, tuple[str, int]] = field(default_factory=dict)

    def add(self, other: Locator) -> None:
        self.lines.update(other.lines)

    def where(self, path: KeyPath) -> tuple[str, int]:
        """The nearest written ancestor of `path` (a default has no line of its own)."""
        for n in range(len(path), -1, -1):
            found = self.lines.get(tuple(path[:n]))
            if found:
                return found
        return ("", 0)

    def error(self, path: KeyPath, what: str) -> ComposeError:
        file, line = self.where(path)
        return ComposeError(what, file, line, dotted(path))


def _plain(node: Any, name: str, path: KeyPath, locator: Locator) -> Any:
    """ruamel's round-trip nodes → dicts, lists and scalars, recording each key's line."""
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if not isinstance(key, str):
                key = str(key)  # YAML allows `80: x`; compose keys are strings
            line = node.lc.key(key)[0] + 1 if key in node.lc.data else node.lc.line + 1
            locator.lines[(*path, key)] = (name, line)
            out[key] = _plain(value, name, (*path, key), locator)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for i, value in enumerate(node):
            if i in node.lc.data:
                locator.lines[(*path, i)] = (name, node.lc.item(i)[0] + 1)
            items.append(_plain(value, name, (*path, i), locator))
        return items
    if isinstance(node, str):
        return str(node)  # ruamel's ScalarString subclasses → plain str
    return node


def parse(text: str, name: str) -> tuple[dict[str, Any], Locator]:
    """One file's top-level mapping and its locator; a syntax error names the line."""
    locator = Locator()
    try:
        yaml = YAML(typ="rt", pure=True)
        # YAML 1.1, as the docker CLI's go-yaml v2 reads compose files: `mode: 0440` is octal
        yaml.version = (1, 1)
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise ComposeError(f"invalid YAML: {exc.problem or exc.context}", name, line) from None
    except YAMLError as exc:
        raise ComposeError(f"invalid YAML: {exc}", name) from None
    if data is None:
        raise ComposeError("empty compose file", name)
    if not isinstance(data, CommentedMap):
        raise ComposeError("top-level object must be a mapping", name, 1)
    locator.lines[()] = (name, 1)
    return _plain(data, name, (), locator), locator


def read(path: str | Path) -> tuple[dict[str, Any], Locator]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ComposeError(f"compose file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ComposeError(f"cannot read compose file {p}: {exc}") from None
    return parse(text, str(path))


def from_mapping(data: Mapping[str, Any], name: str) -> tuple[dict[str, Any], Locator]:
    """An inline definition (the Ansible module's `definition`): no lines, keys still named."""
    if not isinstance(data, Mapping):
        raise ComposeError("a compose definition must be a mapping", name)
    locator = Locator({(): (name, 0)})
    return dict(data), locator
