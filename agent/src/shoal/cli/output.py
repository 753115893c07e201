"""Pure output helpers shared by the command groups: docker-style tables, `--format`, JSON, units.

Everything here takes plain values and returns strings, so that it is tested without an agent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from shoal.cli.errors import CLIError
from shoal.model.ids import parse_rfc3339

# docker's table writer: text/tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)
TABLE_MIN_WIDTH = 10
TABLE_PADDING = 3
# `docker node inspect --pretty` aligns values at column 24 (tabs after labels on a terminal)
PRETTY_WIDTH = 24


def table(rows: Sequence[Sequence[str]], *, min_width: int = TABLE_MIN_WIDTH, padding: int = TABLE_PADDING) -> str:
    """Align cells like Go's tabwriter: every cell but the last of a row is padded to its column's
    width (longest cell + padding, at least min_width); the last cell is never padded."""
    widths: list[int] = []
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            w = max(min_width, len(cell) + padding)
            if i == len(widths):
                widths.append(w)
            else:
                widths[i] = max(widths[i], w)
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("".join(cells) + (row[-1] if row else ""))
    return "".join(line + "\n" for line in lines)


def capitalize(value: Any) -> str:
    """docker's PrettyPrint: first letter upper-cased, the rest kept ("ready" → "Ready")."""
    text = "" if value is None else str(value)
    return text[:1].upper() + text[1:]


def natural_key(text: str) -> list[Any]:
    """Sort key comparing digit runs as numbers ("swarm2" < "swarm10"), like docker's sortorder.

    re.split with a group alternates text (even indexes) and digits (odd), so that two keys
    never compare a str with an int."""
    parts = re.split(r"(\d+)", text)
    return [int(p) if i % 2 else p for i, p in enumerate(parts)]


def inspect_json(objects: Sequence[Any]) -> str:
    """`docker ... inspect` output: a JSON array indented by 4, then a newline."""
    return json.dumps(list(objects), indent=4, ensure_ascii=False) + "\n"


def compact_json(obj: Any) -> str:
    """One JSON object per line, keys sorted: what `--format json` prints (Go's json.Marshal)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def human_duration(ns: int) -> str:
    """go-units HumanDuration: "5 seconds", "About a minute", "3 months" (from nanoseconds)."""
    seconds = int(ns / 1e9)
    if seconds < 1:
        return "Less than a second"
    if seconds == 1:
        return "1 second"
    if seconds < 60:
        return f"{seconds} seconds"
    minutes = int(ns / 60e9)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(ns / 3600e9 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(ns / 3600e9) // 24 // 365} years"


_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def bytes_size(size: float) -> str:
    """go-units BytesSize: "995.9MiB", "7.667GiB" (4 significant digits, binary units)."""
    i = 0
    while size >= 1024 and i < len(_BINARY_UNITS) - 1:
        size /= 1024
        i += 1
    return f"{size:.4g}{_BINARY_UNITS[i]}"


def go_time(rfc3339: str) -> str:
    """An API timestamp as Go's time.Time.String() in UTC: "2026-11-27 23:13:48.123 +0000 UTC".

    Unparseable values are shown as they are: output must never fail on a display detail."""
    try:
        ns = parse_rfc3339(rfc3339)
    except ValueError:
        return str(rfc3339)
    secs, frac = divmod(ns, 1_000_000_000)
    text = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%d %H:%M:%S")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + " +0000 UTC"


def field(label: str, value: Any, width: int = PRETTY_WIDTH) -> str:
    """One `--pretty` line: the label padded so that values line up."""
    return f"{label.ljust(width - 1)} {value}"


# --- --format ------------------------------------------------------------------------------------
# A small subset of docker's Go templates: `table`, `json`, `{{.Field}}`, `{{json .}}`,
# `{{json .Field}}`. Anything else is refused with a clear message rather than printed wrongly.

_ACTION = re.compile(r"\{\{(.*?)\}\}", re.S)
_FIELD = re.compile(r"^\s*(json\s+)?\.([A-Za-z_][A-Za-z0-9_]*)?\s*$")


def _public(row: Mapping[str, Any]) -> dict[str, Any]:
    # keys starting with "_" exist only for the default table (e.g. the " *" of the local node)
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # Go prints booleans in lower case
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return compact_json(value)
    return str(value)


def _render(template: str, row: Mapping[str, Any], headers: Mapping[str, str] | None) -> str:
    """Fill one template with a row, or with column headers when `headers` is given."""

    def action(m: re.Match[str]) -> str:
        f = _FIELD.match(m.group(1))
        if not f:
            raise CLIError(
                f"unsupported format {m.group(0)!r}: use 'table', 'json', {{{{.Field}}}}, {{{{json .}}}} "
                "or {{json .Field}}"
            )
        as_json, name = f.group(1), f.group(2)
        if name is None:  # "{{json .}}" / "{{.}}": the whole row
            return "" if headers is not None else compact_json(_public(row))
        if name not in row:
            fields = ", ".join(sorted(_public(row)))
            raise CLIError(f"template: can't evaluate field {name} (fields: {fields})")
        if headers is not None:
            return headers.get(name, name.upper())
        return compact_json(row[name]) if as_json else _text(row[name])

    return _ACTION.sub(action, template)


def render_format(
    fmt: str | None,
    rows: Sequence[Mapping[str, Any]],
    *,
    default_table: str,
    headers: Mapping[str, str],
    sample: Mapping[str, Any] | None = None,
) -> str:
    """Rows as docker prints them for `--format` (None or "table": the default table).

    `sample` is a row with every field, so that a template is checked (and a table header
    printed) even when there are no rows."""
    fmt = fmt or "table"
    if fmt == "json":
        return "".join(compact_json(_public(r)) + "\n" for r in rows)
    is_table = fmt.startswith("table")
    template = (fmt[len("table") :].strip() or default_table[len("table") :].strip()) if is_table else fmt
    template = template.replace("\\t", "\t").replace("\\n", "\n")  # docker unescapes these two
    probe = sample if sample is not None else (rows[0] if rows else None)
    if probe is not None:
        _render(template, probe, None)  # refuse a bad template before printing anything
    if not is_table:
        return "".join(_render(template, r, None) + "\n" for r in rows)
    header = _render(template, probe or {}, headers) if probe is not None else ""
    lines = [header] + [_render(template, r, None) for r in rows]
    return table([line.split("\t") for line in lines])
