"""A small evaluator of Go's text/template syntax, for Docker's service templates and `--format`.

jinja2 is not Go-template syntax (`{{ .Service.Name }}` is a field path there, `{{- x -}}` trims
differently, `index m "k"` is a call), so this is a hand-written parser of the part of
text/template Docker users write: text; actions `{{pipeline}}` with `{{-`/`-}}` trimming and
`{{/* comments */}}`; field chains (`.`, `.A.B`, `$`), string/raw-string/number/bool literals,
function calls (`index`, `json`, `join`, `lower`, `upper`, `title`, `split`, `len`, `print`,
`println`, `printf` with %s/%d/%v/%q), `|` pipes, and `if`/`with`/`range` … `else` … `end`.
Variables other than `$`, `define`/`template`/`block` and comparison functions are refused with
a parse error rather than evaluated wrongly.

Values are Python dicts/lists/scalars. A `GoMap` is a Go map (a missing key is its zero value,
as `.Service.Labels.absent` in Docker); any other dict is a struct, where an unknown field is an
error ("can't evaluate field X"), which is how a misspelt placeholder is caught at create.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

NAME = "expand"  # the template's name in messages, as SwarmKit names its hostname/env templates


class TemplateError(ValueError):
    """A parse or execution error, worded as Go's: `template: expand:1: ...`."""


class GoMap(dict[str, Any]):
    """A Go map: indexing or a field path with a missing key gives the zero value ("")."""


# --- lexing ---------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<field>(?:\$[A-Za-z0-9_]*)?(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.|\$[A-Za-z0-9_]*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<pipe>\|)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<other>.)
    """,
    re.X | re.S,
)


@dataclass
class _Tok:
    kind: str
    text: str


def _tokens(src: str, line: int) -> list[_Tok]:
    out = []
    for m in _TOKEN.finditer(src):
        kind = m.lastgroup or "other"
        if kind == "space":
            continue
        if kind == "other":
            raise TemplateError(f"template: {NAME}:{line}: unexpected {m.group()!r} in command")
        out.append(_Tok(kind, m.group()))
    return out


# --- the tree -------------------------------------------------------------------------------------


@dataclass
class _Cmd:
    args: list[Any]  # each: ("field", path) | ("lit", value) | ("ident", name) | ("pipe", _Pipe)


@dataclass
class _Pipe:
    cmds: list[_Cmd]
    line: int
    src: str


@dataclass
class _Block:
    kind: str  # "if" | "with" | "range"
    pipe: _Pipe
    body: list[Any] = field(default_factory=list)
    alt: list[Any] = field(default_factory=list)


_KEYWORDS = ("if", "with", "range", "else", "end")
_UNSUPPORTED = (
    "define",
    "template",
    "block",
    "break",
    "continue",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "and",
    "or",
    "not",
)


def _parse_pipe(src: str, line: int) -> _Pipe:
    toks = _tokens(src, line)
    if not toks:
        raise TemplateError(f"template: {NAME}:{line}: missing value for command")
    pipe, _ = _parse_cmds(toks, 0, line, src, nested=False)
    return pipe


def _parse_cmds(toks: list[_Tok], i: int, line: int, src: str, nested: bool) -> tuple[_Pipe, int]:
    cmds: list[_Cmd] = []
    args: list[Any] = []
    while i < len(toks):
        t = toks[i]
        if t.kind == "rparen":
            if not nested:
                raise TemplateError(f"template: {NAME}:{line}: unexpected right paren")
            break
        i += 1
        if t.kind == "pipe":
            if not args:
                raise TemplateError(f"template: {NAME}:{line}: missing value for command")
            cmds.append(_Cmd(args))
            args = []
        elif t.kind == "lparen":
            inner, i = _parse_cmds(toks, i, line, src, nested=True)
            if i >= len(toks) or toks[i].kind != "rparen":
                raise TemplateError(f"template: {NAME}:{line}: unclosed left paren")
            i += 1
            args.append(("pipe", inner))
        elif t.kind == "field":
            if t.text.startswith("$") and not t.text.startswith("$.") and t.text != "$":
                raise TemplateError(f"template: {NAME}:{line}: undefined variable {t.text.split('.')[0]!r}")
            path = [p for p in t.text.split(".")[1:] if p]
            args.append(("field", (t.text.startswith("$"), path)))
        elif t.kind == "string":
            args.append(("lit", json.loads(t.text)))
        elif t.kind == "raw":
            args.append(("lit", t.text[1:-1]))
        elif t.kind == "number":
            args.append(("lit", float(t.text) if "." in t.text else int(t.text)))
        elif t.kind == "ident":
            if t.text in ("true", "false"):
                args.append(("lit", t.text == "true"))
            elif t.text == "nil":
                args.append(("lit", None))
            elif t.text in _FUNCS:
                args.append(("ident", t.text))
            elif t.text in _UNSUPPORTED:
                raise TemplateError(f"template: {NAME}:{line}: {t.text!r} is not supported by shoal's templates")
            else:
                raise TemplateError(f'template: {NAME}:{line}: function "{t.text}" not defined')
    if not args:
        raise TemplateError(f"template: {NAME}:{line}: missing value for command")
    cmds.append(_Cmd(args))
    return _Pipe(cmds, line, src.strip()), i


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)


def parse(text: str) -> list[Any]:
    """The template's tree, or TemplateError with Go's wording."""
    root: list[Any] = []
    stack: list[tuple[_Block, bool]] = []  # (block, in its else branch)
    pos = 0
    trim_next = False

    def current() -> list[Any]:
        if not stack:
            return root
        block, in_else = stack[-1]
        return block.alt if in_else else block.body

    for m in _ACTION.finditer(text):
        chunk = text[pos : m.start()]
        if trim_next:
            chunk = chunk.lstrip()
        if m.group(1):
            chunk = chunk.rstrip()
        if chunk:
            current().append(chunk)
        trim_next = bool(m.group(3))
        pos = m.end()
        line = text.count("\n", 0, m.start()) + 1
        body = m.group(2)
        stripped = body.strip()
        if stripped.startswith("/*"):
            if not stripped.endswith("*/"):
                raise TemplateError(f"template: {NAME}:{line}: unclosed comment")
            continue
        word = stripped.split(None, 1)[0] if stripped else ""
        rest = stripped[len(word) :]
        if word in ("if", "with", "range"):
            block = _Block(word, _parse_pipe(rest, line))
            current().append(block)
            stack.append((block, False))
        elif word == "else":
            if not stack or stack[-1][1]:
                raise TemplateError(f"template: {NAME}:{line}: unexpected {{{{else}}}}")
            if rest.strip():
                raise TemplateError(f"template: {NAME}:{line}: 'else if' and 'else with' are not supported by shoal")
            stack[-1] = (stack[-1][0], True)
        elif word == "end":
            if not stack:
                raise TemplateError(f"template: {NAME}:{line}: unexpected {{{{end}}}}")
            stack.pop()
        else:
            current().append(_parse_pipe(body, line))
    if "{{" in text[pos:]:
        line = text.count("\n", 0, pos) + 1
        raise TemplateError(f"template: {NAME}:{line}: unclosed action")
    chunk = text[pos:]
    if trim_next:
        chunk = chunk.lstrip()
    if chunk:
        current().append(chunk)
    if stack:
        raise TemplateError(f"template: {NAME}: unexpected EOF: {{{{{stack[-1][0].kind}}}}} has no {{{{end}}}}")
    return root


# --- execution ------------------------------------------------------------------------------------


def go_text(value: Any) -> str:
    """What Go's fmt prints for a value in a template (`{{.X}}`)."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{go_text(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_text(v) for v in value) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _truth(value: Any) -> bool:
    return value not in (None, False, 0, "") and not (isinstance(value, list | dict) and not value)


def _field(value: Any, path: list[str], pipe: _Pipe) -> Any:
    for name in path:
        if isinstance(value, GoMap):
            value = value.get(name, "")
        elif isinstance(value, Mapping) and name in value:
            value = value[name]
        else:
            raise TemplateError(
                f'template: {NAME}:{pipe.line}: executing "{NAME}" at <{pipe.src}>: can\'t evaluate field {name}'
            )
    return value


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, Mapping):
            value = value.get(key, "" if isinstance(value, GoMap) else None)
        elif isinstance(value, list | str) and isinstance(key, int):
            if not 0 <= key < len(value):
                raise TemplateError(f"error calling index: index out of range: {key}")
            value = value[key]
        else:
            raise TemplateError(f"error calling index: can't index item of type {type(value).__name__}")
    return value


def _go_json(value: Any) -> Any:
    """Go's json.Marshal order: a struct's fields as declared (the dict's order), a map's keys sorted."""
    if isinstance(value, Mapping):
        keys = sorted(value) if isinstance(value, GoMap) else list(value)
        return {k: _go_json(value[k]) for k in keys}
    if isinstance(value, list | tuple):
        return [_go_json(v) for v in value]
    return value


def _printf(fmt: str, *args: Any) -> str:
    it = iter(args)

    def one(m: re.Match[str]) -> str:
        verb = m.group(1)
        if verb == "%":
            return "%"
        v = next(it, None)
        return json.dumps(v) if verb == "q" else go_text(v)

    return re.sub(r"%([sdvq%])", one, fmt)


_FUNCS: dict[str, Callable[..., Any]] = {
    "index": _index,
    "json": lambda v: json.dumps(_go_json(v), separators=(",", ":"), ensure_ascii=False),
    "join": lambda items, sep: sep.join(go_text(i) for i in items or ()),
    "split": lambda s, sep: str(s).split(sep),
    "lower": lambda s: go_text(s).lower(),
    "upper": lambda s: go_text(s).upper(),
    "title": lambda s: go_text(s).title(),
    "len": lambda v: len(v or ()),
    "print": lambda *a: "".join(go_text(v) for v in a),
    "println": lambda *a: " ".join(go_text(v) for v in a) + "\n",
    "printf": _printf,
}


def _arg(arg: Any, dot: Any, root: Any, pipe: _Pipe) -> Any:
    kind, value = arg
    if kind == "lit":
        return value
    if kind == "pipe":
        return _run_pipe(value, dot, root)
    if kind == "ident":
        return _call(value, [], pipe)
    from_root, path = value
    return _field(root if from_root else dot, path, pipe)


def _call(name: str, args: list[Any], pipe: _Pipe) -> Any:
    try:
        return _FUNCS[name](*args)
    except TemplateError as e:
        raise TemplateError(f'template: {NAME}:{pipe.line}: executing "{NAME}" at <{name}>: {e}') from None
    except (TypeError, AttributeError) as e:
        raise TemplateError(f'template: {NAME}:{pipe.line}: executing "{NAME}" at <{name}>: {e}') from None


def _run_pipe(pipe: _Pipe, dot: Any, root: Any) -> Any:
    result: Any = None
    for n, cmd in enumerate(pipe.cmds):
        head = cmd.args[0]
        if head[0] == "ident":
            args = [_arg(a, dot, root, pipe) for a in cmd.args[1:]]
            if n:
                args.append(result)
            result = _call(head[1], args, pipe)
        else:
            if len(cmd.args) > 1 or n:
                raise TemplateError(f"template: {NAME}:{pipe.line}: can't give argument to non-function {pipe.src}")
            result = _arg(head, dot, root, pipe)
    return result


def _execute(nodes: list[Any], dot: Any, root: Any, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, _Pipe):
            out.append(go_text(_run_pipe(node, dot, root)))
        else:
            value = _run_pipe(node.pipe, dot, root)
            if node.kind == "range":
                items = list(value.values()) if isinstance(value, Mapping) else list(value or ())
                if isinstance(value, Mapping):
                    items = [value[k] for k in sorted(value)]  # Go ranges over a map in key order
                for item in items:
                    _execute(node.body, item, root, out)
                if not items:
                    _execute(node.alt, dot, root, out)
            elif _truth(value):
                _execute(node.body, value if node.kind == "with" else dot, root, out)
            else:
                _execute(node.alt, dot, root, out)


def render(text: str, data: Any) -> str:
    """`text` executed with `data` as dot, or TemplateError."""
    out: list[str] = []
    _execute(parse(text), data, data, out)
    return "".join(out)
