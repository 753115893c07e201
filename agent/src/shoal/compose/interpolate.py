"""`${VAR}` substitution as the docker CLI's compose/template does: `$VAR`, `${VAR}`,
`${VAR:-default}` (unset or empty), `${VAR-default}` (unset), `${VAR:?err}` / `${VAR?err}`
(an error), `${VAR:+other}` / `${VAR+other}`, and `$$` for a literal `$`.
Values come from the environment, then from `.env` beside the first file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from shoal.compose.errors import ComposeError
from shoal.compose.source import KeyPath, Locator

_PATTERN = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<named>[_a-zA-Z][_a-zA-Z0-9]*)"
    r"|\{(?P<braced>[_a-zA-Z][_a-zA-Z0-9]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}|(?P<invalid>))"
)
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
# the sections docker's loader interpolates (keys are never substituted)
SECTIONS = ("services", "networks", "volumes", "secrets", "configs")


class _Unset(Exception):
    pass


def substitute(text: str, env: Mapping[str, str], warn: Callable[[str], None]) -> str:
    """One string; `ValueError` names a bad template or a required variable."""

    def one(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        if m.group("invalid") is not None and not m.group("named") and not m.group("braced"):
            raise ValueError(f"invalid interpolation format {text!r}: a '$' must be followed by a name, {{ or $")
        name = m.group("named") or m.group("braced")
        op, arg = m.group("op") or "", m.group("arg") or ""
        if m.group("braced") and arg and not op:
            raise ValueError(f"invalid interpolation format {text!r}")
        value = env.get(name)
        empty_counts = op.startswith(":")
        missing = value is None or (empty_counts and value == "")
        if op.endswith("-"):
            return arg if missing else str(value)
        if op.endswith("?"):
            if missing:
                raise ValueError(arg or f"required variable {name} is missing a value")
            return str(value)
        if op.endswith("+"):
            return "" if missing else arg
        if value is None:
            warn(f'The "{name}" variable is not set. Defaulting to a blank string.')
            return ""
        return value

    return _PATTERN.sub(one, text)


def _walk(value: Any, path: KeyPath, env: Mapping[str, str], locator: Locator, warn: Callable[[str], None]) -> Any:
    if isinstance(value, dict):
        return {k: _walk(v, (*path, k), env, locator, warn) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, (*path, i), env, locator, warn) for i, v in enumerate(value)]
    if isinstance(value, str) and "$" in value:
        try:
            out = substitute(value, env, warn)
        except ValueError as exc:
            raise locator.error(path, str(exc)) from None
        # `replicas: ${N}` is a number once substituted (compose casts by the schema's type)
        if _NUMBER.match(out) and out != value:
            return float(out) if "." in out else int(out)
        return out
    return value


def interpolate(
    config: dict[str, Any], env: Mapping[str, str], locator: Locator, warn: Callable[[str], None]
) -> dict[str, Any]:
    return {k: _walk(v, (k,), env, locator, warn) if k in SECTIONS else v for k, v in config.items()}


def read_env_file(path: Path) -> dict[str, str]:
    """`.env` / `env_file`: KEY=VALUE lines, `#` comments, optional quotes, `export` allowed."""
    out: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return out
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not re.match(r"^[_a-zA-Z][_a-zA-Z0-9.-]*$", key):
            raise ComposeError(f"invalid variable name {key!r}", str(path), number)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key] = value if sep else out.get(key, "")
    return out
