"""`service create --secret/--config` and `service update --secret-add/-rm, --config-add/-rm`.

docker's syntax: `--secret NAME` (the short form: target NAME) or
`--secret source=NAME,target=PATH,uid=0,gid=0,mode=0444`. References go to the agent by name;
it resolves them to IDs ("secret not found: x" when there is none).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from typing import Any

KEYS = ("source", "src", "target", "uid", "gid", "mode")
DEFAULT_MODE = 0o444


def _reference(what: str, name_field: str) -> Callable[[str], dict[str, Any]]:
    def parse(text: str) -> dict[str, Any]:
        fields: dict[str, str] = {}
        if "=" not in text:
            fields["source"] = text.strip()
        else:
            for part in text.split(","):
                key, sep, value = part.partition("=")
                key = key.strip().lower()
                if not sep or key not in KEYS:
                    raise argparse.ArgumentTypeError(
                        f"invalid field {part!r} in {what} request (use source=, target=, uid=, gid=, mode=)"
                    )
                fields["source" if key == "src" else key] = value.strip()
        source = fields.get("source", "")
        if not source:
            raise argparse.ArgumentTypeError(f"source is required in {what} request {text!r}")
        try:
            mode = int(fields["mode"], 8) if fields.get("mode") else DEFAULT_MODE
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"invalid mode {fields['mode']!r}: an octal permission like 0440"
            ) from None
        for key in ("uid", "gid"):
            if fields.get(key) and not fields[key].isdigit():
                raise argparse.ArgumentTypeError(f"invalid {key} {fields[key]!r}: a numeric ID is needed")
        file = {
            "Name": fields.get("target") or source,
            "UID": fields.get("uid") or "0",
            "GID": fields.get("gid") or "0",
        }
        return {name_field: source, "File": {**file, "Mode": mode}}

    parse.__name__ = what  # argparse names the type in its messages
    return parse


secret_ref = _reference("secret", "SecretName")
config_ref = _reference("config", "ConfigName")


def add_create_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--secret", type=secret_ref, action="append", metavar="SECRET", help="give the tasks a secret")
    p.add_argument("--config", type=config_ref, action="append", metavar="CONFIG", help="give the tasks a config")


def add_update_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--secret-add", type=secret_ref, action="append", metavar="SECRET", help="add or update a secret")
    p.add_argument("--secret-rm", action="append", metavar="SECRET", help="remove a secret (by name)")
    p.add_argument("--config-add", type=config_ref, action="append", metavar="CONFIG", help="add or update a config")
    p.add_argument("--config-rm", action="append", metavar="CONFIG", help="remove a config (by name)")


def apply_create(container: dict[str, Any], args: argparse.Namespace) -> None:
    if args.secret:
        container["Secrets"] = list(args.secret)
    if args.config:
        container["Configs"] = list(args.config)


def _merge(
    current: Iterable[Mapping[str, Any]],
    add: Iterable[dict[str, Any]],
    rm: Iterable[str],
    name_field: str,
    id_field: str,
) -> list[dict[str, Any]]:
    """docker's getUpdatedSecrets: drop the removed names, then add (a reference to the same
    target as an added one is replaced by it)."""
    gone = set(rm)
    added = list(add)
    targets = {a["File"]["Name"] for a in added}
    kept = [
        dict(r)
        for r in current
        if r.get(name_field) not in gone
        and r.get(id_field) not in gone
        and (r.get("File") or {}).get("Name") not in targets
    ]
    return kept + added


def apply_update(container: dict[str, Any], args: argparse.Namespace) -> None:
    if args.secret_add or args.secret_rm:
        container["Secrets"] = _merge(
            container.get("Secrets") or [], args.secret_add or (), args.secret_rm or (), "SecretName", "SecretID"
        )
    if args.config_add or args.config_rm:
        container["Configs"] = _merge(
            container.get("Configs") or [], args.config_add or (), args.config_rm or (), "ConfigName", "ConfigID"
        )
