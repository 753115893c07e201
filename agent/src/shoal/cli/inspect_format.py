"""`--format` of every `inspect` command, with the Go-template evaluator (model/gotemplate.py) as
docker's: 'json' (each object as JSON), or a template executed with each object as dot, one result
per line (`{{.Spec.Name}}`, `{{json .Spec.Labels}}`, `{{index .Spec.Labels "k"}}`, `{{range}}`).

The objects are the API's JSON, which docker decodes into typed structs: a misspelt field is an error,
while label and option maps give "" for a missing key (Go maps), hence `_as_go`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shoal.cli.errors import CLIError
from shoal.cli.output import compact_json
from shoal.model.gotemplate import GoMap, TemplateError, render

_MAP_SUFFIXES = ("Labels", "Options", "Opts", "Containers")


def _as_go(value: Any, key: str = "") -> Any:
    if isinstance(value, Mapping):
        items = {k: _as_go(v, str(k)) for k, v in value.items()}
        return GoMap(items) if key.endswith(_MAP_SUFFIXES) else items
    if isinstance(value, list):
        return [_as_go(v) for v in value]
    return value


def inspect_format(fmt: str, objects: Sequence[Mapping[str, Any]]) -> str:
    if fmt.startswith("table"):
        raise CLIError("unsupported format 'table' for inspect: use 'json' or a template like '{{.ID}}'")
    if fmt == "json":
        return "".join(compact_json(o) + "\n" for o in objects)
    template = fmt.replace("\\t", "\t").replace("\\n", "\n")
    out = []
    for obj in objects:
        try:
            out.append(render(template, _as_go(obj)) + "\n")
        except TemplateError as e:
            raise CLIError(str(e)) from None
    return "".join(out)
