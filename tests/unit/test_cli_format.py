"""`--format` of the inspect commands (Go templates) and `node ps`, without an agent."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shoal.cli.errors import CLIError
from shoal.cli.inspect_format import inspect_format
from shoal.cli.main import build_parser

SERVICE = {
    "ID": "abc",
    "Spec": {"Name": "web", "Labels": {"b": "2", "a": "1"}, "Mode": {"Replicated": {"Replicas": 3}}},
}


@pytest.mark.parametrize(
    ("fmt", "want"),
    [
        ("{{.Spec.Name}}", "web\n"),
        ("{{.ID}}\\t{{.Spec.Mode.Replicated.Replicas}}", "abc\t3\n"),
        ('{{index .Spec.Labels "a"}}', "1\n"),
        ("{{.Spec.Labels.missing}}", "\n"),  # a Go map: the zero value
        ("{{json .Spec.Labels}}", '{"a":"1","b":"2"}\n'),  # a map's keys sorted, as Go's json
        ("{{range $k := .Spec.Labels}}x{{end}}", None),
        ("{{range .Spec.Labels}}{{.}},{{end}}", "1,2,\n"),
        ("{{if .Spec.Mode.Replicated}}replicated{{end}}", "replicated\n"),
    ],
)
def test_inspect_templates(fmt: str, want: str | None) -> None:
    if want is None:
        with pytest.raises(CLIError):
            inspect_format(fmt, [SERVICE])
        return
    assert inspect_format(fmt, [SERVICE]) == want


def test_inspect_json_and_errors() -> None:
    assert json.loads(inspect_format("json", [SERVICE])) == SERVICE
    assert json.loads(inspect_format("{{json .}}", [SERVICE]))["Spec"]["Name"] == "web"
    with pytest.raises(CLIError, match="can't evaluate field Nmae"):
        inspect_format("{{.Spec.Nmae}}", [SERVICE])
    with pytest.raises(CLIError, match="table"):
        inspect_format("table {{.ID}}", [SERVICE])


class FakeAPI:
    def __init__(self) -> None:
        self.queries: list[dict[str, Any]] = []

    def get(self, path: str, **kw: Any) -> Any:
        if path == "/nodes":
            return [{"ID": "n1" * 12 + "x", "Description": {"Hostname": "swarm00"}}]
        if path == "/info":
            return {"Swarm": {"NodeID": "n1" * 12 + "x"}}
        if path == "/services":
            return [{"ID": "s1", "Spec": {"Name": "web"}}]
        self.queries.append(kw.get("filters") or {})
        return [
            {
                "ID": "t" * 25,
                "ServiceID": "s1",
                "Slot": 1,
                "NodeID": "n1" * 12 + "x",
                "DesiredState": "running",
                "Status": {"State": "running", "Timestamp": "2026-01-01T00:00:00Z"},
                "Spec": {"ContainerSpec": {"Image": "shoal/host"}},
                "CreatedAt": "2026-01-01T00:00:00Z",
            }
        ]


def test_node_ps_defaults_to_self_and_passes_filters(capsys: pytest.CaptureFixture[str]) -> None:
    api = FakeAPI()
    args = build_parser().parse_args(["node", "ps", "-f", "desired-state=running"])
    assert args.func(api, args) == 0
    assert api.queries == [{"desired-state": ["running"], "node": ["n1" * 12 + "x"]}]
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("ID") and "web.1" in out and "swarm00" in out
    args = build_parser().parse_args(["node", "ps", "-f", "service=web"])
    with pytest.raises(CLIError, match="invalid filter 'service'"):
        args.func(api, args)
