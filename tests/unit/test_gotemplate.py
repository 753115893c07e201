"""The Go text/template evaluator and Docker's service template placeholders."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.errors import SpecError
from shoal.model.gotemplate import GoMap, TemplateError, render
from shoal.model.service import validate_service_spec
from shoal.model.task_templates import check_template, expand_task, template_context

TASK = {
    "ID": "t1d",
    "ServiceID": "s1d",
    "NodeID": "n1d",
    "Slot": 3,
    "ServiceAnnotations": {"Name": "web", "Labels": {"tier": "front", "a.b": "dotted"}},
    "Spec": {"ContainerSpec": {"Image": "x", "Hostname": "{{.Service.Name}}-{{.Task.Slot}}", "Env": []}},
}
NODE = {"ID": "n1d", "Hostname": "swarm01", "Platform": {"OS": "linux", "Architecture": "x86_64"}}


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("{{.Service.ID}}", "s1d"),
        ("{{.Service.Name}}", "web"),
        ("{{.Service.Labels}}", "map[a.b:dotted tier:front]"),
        ('{{index .Service.Labels "tier"}}', "front"),
        ('{{index .Service.Labels "a.b"}}', "dotted"),
        ('{{index .Service.Labels "absent"}}', ""),
        ("{{.Service.Labels.tier}}", "front"),
        ("{{.Node.ID}}", "n1d"),
        ("{{.Node.Hostname}}", "swarm01"),
        ("{{.Node.Platform.OS}}", "linux"),
        ("{{.Node.Platform.Architecture}}", "x86_64"),
        ("{{.Task.ID}}", "t1d"),
        ("{{.Task.Name}}", "web.3.t1d"),
        ("{{.Task.Slot}}", "3"),
        ("{{ .Service.Name }}-{{.Task.Slot}}", "web-3"),
        ("a  {{- .Task.Slot -}}  b", "a3b"),
        ("a {{/* a comment */}}b", "a b"),
        ("{{.Service.Name | upper}}", "WEB"),
        ('{{printf "%s-%d" .Service.Name .Task.Slot}}', "web-3"),
        ("{{if .Service.Labels.tier}}yes{{else}}no{{end}}", "yes"),
        ("{{if .Service.Labels.nope}}yes{{else}}no{{end}}", "no"),
        ("{{range .Service.Labels}}[{{.}}]{{end}}", "[dotted][front]"),
        ("{{with .Node.Platform}}{{.OS}}/{{.Architecture}}{{end}}", "linux/x86_64"),
        ("{{json .Node.Platform}}", '{"OS":"linux","Architecture":"x86_64"}'),
        ("{{$.Service.Name}}", "web"),
        ("plain", "plain"),
    ],
)
def test_placeholders_and_syntax(text: str, want: str) -> None:
    assert render(text, template_context(TASK, NODE)) == want


def test_global_task_slot_is_the_node() -> None:
    task = {**TASK, "Slot": None}
    assert render("{{.Task.Slot}} {{.Task.Name}}", template_context(task, NODE)) == "n1d web.n1d.t1d"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{.Service.Foo}}", "can't evaluate field Foo"),
        ("{{.Nodes.ID}}", "can't evaluate field Nodes"),
        ("{{.Node.Platform.Kernel}}", "can't evaluate field Kernel"),
        ("{{.Service.Name", "unclosed action"),
        ("{{}}", "missing value for command"),
        ("{{foo .Service.Name}}", 'function "foo" not defined'),
        ("{{if .Service.Name}}x", "has no {{end}}"),
        ("{{end}}", "unexpected {{end}}"),
        ("{{ .Service.Name ! }}", "unexpected '!'"),
        ("{{ (.Service.Name }}", "unclosed left paren"),
        ("{{$x}}", "undefined variable"),
        ("{{ .Service.Name .Task.ID }}", "can't give argument to non-function"),
    ],
)
def test_bad_templates(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as e:
        render(text, template_context(TASK, NODE))
    assert message in str(e.value)
    assert str(e.value).startswith("template: expand:")


def test_gomap_vs_struct() -> None:
    assert render("{{.m.x}}", {"m": GoMap()}) == ""
    with pytest.raises(TemplateError):
        render("{{.m.x}}", {"m": {}})


def test_expand_task_renders_hostname_and_env_values_only() -> None:
    task: dict[str, Any] = {
        **TASK,
        "Spec": {
            "ContainerSpec": {"Hostname": "{{.Service.Name}}-{{.Task.Slot}}", "Env": ["N={{.Node.Hostname}}", "K"]}
        },
    }
    out = expand_task(task, NODE)
    assert out["Spec"]["ContainerSpec"]["Hostname"] == "web-3"
    assert out["Spec"]["ContainerSpec"]["Env"] == ["N=swarm01", "K"]
    assert task["Spec"]["ContainerSpec"]["Hostname"].startswith("{{")  # the stored task is untouched


def _spec(**container: Any) -> dict[str, Any]:
    return {"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": "x", **container}}}


def test_validation_refuses_unknown_placeholders_with_400() -> None:
    validate_service_spec(_spec(Hostname="{{.Service.Name}}-{{.Task.Slot}}", Env=["A={{.Node.ID}}"]))
    with pytest.raises(SpecError) as e:
        validate_service_spec(_spec(Hostname="{{.Service.Nmae}}"))
    assert e.value.status == 400 and "Hostname" in e.value.message and "can't evaluate field Nmae" in e.value.message
    with pytest.raises(SpecError, match=r"Env\[A\].*unclosed action"):
        validate_service_spec(_spec(Env=["A={{.Node.ID"]))
    with pytest.raises(SpecError, match="Mounts"):
        check_template("Mounts[0].Source", "{{.Bad}}", _spec())
