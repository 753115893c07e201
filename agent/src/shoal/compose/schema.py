"""Validation against the Compose Specification's JSON schema with `jsonschema`.

The schema is not copied into shoal: it is read from a package that ships it — Debian's
`docker-compose` (python3 `compose/config/compose_spec.json`), or docker-compose installed by pip
where that is how Python finds `compose`. The schema's formats (duration, ports, subnet) are given
to jsonschema's FormatChecker as the small parsers they name.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft201909Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from shoal.compose import ports as portspec
from shoal.compose.errors import ComposeError
from shoal.compose.source import Locator
from shoal.compose.units import duration_ns

SCHEMA_ENV = "SHOAL_COMPOSE_SCHEMA"  # a path to another copy of compose_spec.json
_RELATIVE = Path("compose") / "config" / "compose_spec.json"
_SEARCH = ("/usr/lib/python3/dist-packages", "/usr/local/lib/python3/dist-packages")


def schema_path() -> Path:
    candidates = [os.environ[SCHEMA_ENV]] if os.environ.get(SCHEMA_ENV) else []
    candidates += [str(Path(p) / _RELATIVE) for p in (*_SEARCH, *sys.path) if p]
    for c in candidates:
        if Path(c).is_file():
            return Path(c)
    raise ComposeError(
        "the Compose Specification's schema was not found: install Debian's docker-compose package "
        f"(it ships {_RELATIVE}) or set {SCHEMA_ENV}"
    )


def _formats() -> FormatChecker:
    checker = FormatChecker()

    @checker.checks("duration", raises=ValueError)
    def _duration(value: object) -> bool:
        return not isinstance(value, str) or duration_ns(value) is not None

    @checker.checks("ports", raises=ValueError)
    def _ports(value: object) -> bool:
        return not isinstance(value, str | int) or bool(portspec.parse_short(str(value)))

    @checker.checks("expose", raises=ValueError)
    def _expose(value: object) -> bool:
        return True  # ignored in stack mode (a deprecation warning)

    @checker.checks("subnet_ip_address", raises=ValueError)
    def _subnet(value: object) -> bool:
        return not isinstance(value, str) or bool(ipaddress.ip_network(value, strict=False))

    return checker


@cache
def _validator() -> Draft201909Validator:
    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    return Draft201909Validator(schema, format_checker=_formats())


def _deepest(error: ValidationError) -> ValidationError:
    """For oneOf/anyOf, the branch that got furthest names the real problem."""
    while error.context:
        # deepest first; among equals, a failed format or value says more than a wrong type
        error = max(error.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
    return error


def _describe(error: ValidationError) -> tuple[tuple[str | int, ...], str]:
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        props = error.schema.get("properties", {})
        patterns = error.schema.get("patternProperties", {})
        extra = [k for k in error.instance if k not in props and not any(k.startswith("x-") for _ in patterns)]
        if extra:
            return (*path, extra[0]), f"unknown key {extra[0]!r} (not in the Compose Specification)"
    if error.validator == "format":
        cause = error.cause
        return path, str(cause) if cause else error.message
    return path, error.message


def validate(config: dict[str, Any], locator: Locator) -> None:
    """ComposeError naming file, line and key of the first problem (in file order)."""
    errors = [_deepest(e) for e in _validator().iter_errors(config)]
    if not errors:
        return
    described = [_describe(e) for e in errors]
    described.sort(key=lambda d: locator.where(d[0])[1])
    path, what = described[0]
    raise locator.error(path, what)
