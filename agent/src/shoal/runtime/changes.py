"""`docker import --change` instructions applied to an image config (pure).

Supported as in `docker import`: CMD, ENTRYPOINT, ENV, EXPOSE, USER, WORKDIR, LABEL, VOLUME.
"""

from __future__ import annotations

import copy
import json
import posixpath
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from shoal.model.errors import SpecError

INSTRUCTIONS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "USER", "WORKDIR", "LABEL", "VOLUME")


def empty_config() -> dict[str, Any]:
    """An OCI-like image config (the `Config` object of `docker image inspect`)."""
    return {
        "Entrypoint": None,
        "Cmd": None,
        "Env": [],
        "WorkingDir": "",
        "ExposedPorts": {},
        "User": "",
        "Labels": {},
        "Volumes": {},
    }


def _exec_form(rest: str) -> list[str]:
    """JSON array form, else shell form run by /bin/sh -c (Dockerfile semantics)."""
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return ["/bin/sh", "-c", rest]


def _pairs(instr: str, rest: str) -> list[tuple[str, str]]:
    """`K=V K2="v 2"` pairs; the legacy `K value with spaces` form when the first word has no '='."""
    try:
        words = shlex.split(rest)
    except ValueError as exc:
        raise SpecError(f"{instr}: {exc}") from None
    if not words:
        raise SpecError(f"{instr} requires at least one argument")
    if "=" not in words[0]:
        key, _, value = rest.partition(" ")
        if not value.strip():
            raise SpecError(f"{instr} must have two arguments")
        return [(key, value.strip())]
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise SpecError(f"{instr}: syntax error - can't find = in {word!r}. Must be of the form: name=value")
        pairs.append((key, value))
    return pairs


def _ports(rest: str) -> list[str]:
    keys = []
    for word in rest.split():
        port, _, proto = word.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise SpecError(f"EXPOSE: invalid protocol {proto!r} in {word!r}")
        first, _, last = port.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise SpecError(f"EXPOSE: invalid port {word!r}")
        lo, hi = int(first), int(last or first)
        if not 0 < lo <= hi < 65536:
            raise SpecError(f"EXPOSE: invalid port range {word!r}")
        keys += [f"{p}/{proto}" for p in range(lo, hi + 1)]
    if not keys:
        raise SpecError("EXPOSE requires at least one argument")
    return keys


def set_env(env: list[str], key: str, value: str) -> list[str]:
    return [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]


def apply_change(config: dict[str, Any], change: str) -> None:
    instr, _, rest = change.strip().partition(" ")
    instr, rest = instr.upper(), rest.strip()
    if instr not in INSTRUCTIONS:
        raise SpecError(f"{instr or change!r} is not a valid change command")
    if instr in ("CMD", "ENTRYPOINT"):
        if not rest:
            raise SpecError(f"{instr} requires at least one argument")
        config["Cmd" if instr == "CMD" else "Entrypoint"] = _exec_form(rest)
        if instr == "ENTRYPOINT":
            config["Cmd"] = None  # as in a Dockerfile: a new ENTRYPOINT resets an inherited CMD
    elif instr == "ENV":
        for key, value in _pairs(instr, rest):
            config["Env"] = set_env(config["Env"], key, value)
    elif instr == "LABEL":
        config["Labels"].update(_pairs(instr, rest))
    elif instr == "EXPOSE":
        for key in _ports(rest):
            config["ExposedPorts"][key] = {}
    elif instr == "VOLUME":
        form = _exec_form(rest)
        paths = rest.split() if form[:2] == ["/bin/sh", "-c"] else form  # JSON array or words
        if not paths:
            raise SpecError("VOLUME requires at least one argument")
        for path in paths:
            config["Volumes"][path] = {}
    elif instr == "USER":
        if not rest:
            raise SpecError("USER requires exactly one argument")
        config["User"] = rest
    elif instr == "WORKDIR":
        if not rest:
            raise SpecError("WORKDIR requires exactly one argument")
        # relative to the previous WORKDIR, as in a Dockerfile
        config["WorkingDir"] = posixpath.normpath(posixpath.join(config["WorkingDir"] or "/", rest))


def apply_changes(config: Mapping[str, Any] | None, changes: Iterable[str]) -> dict[str, Any]:
    """A new config: `config` (or an empty one) with every change applied; raises SpecError."""
    out = empty_config()
    out.update(copy.deepcopy(dict(config or {})))
    for change in changes:
        apply_change(out, change)
    return out
