"""`shoal stack` commands on a fake agent: ls groups services by namespace, deploy --dry-run --json
reports the plan and writes nothing, a bad file is a CLI error naming file, line and key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shoal.cli.errors import CLIError
from shoal.cli.main import build_parser


class FakeClient:
    def __init__(self, services: list[dict[str, Any]] | None = None) -> None:
        self.services = services or []
        self.calls: list[tuple[str, str]] = []

    def request(self, method: str, path: str, *, query: Any = None, body: Any = None, headers: Any = None) -> Any:
        self.calls.append((method, path))
        if method == "GET" and path in ("/services", "/networks"):
            return self.services if path == "/services" else []
        if path == "/shoal/services/validate":
            return {"Spec": body["Spec"]}
        raise AssertionError(f"unexpected {method} {path}")

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query)


def run(client: FakeClient, *argv: str) -> int:
    args = build_parser().parse_args(["stack", *argv])
    return int(args.func(client, args) or 0)


def svc(name: str, namespace: str | None) -> dict[str, Any]:
    labels = {"com.docker.stack.namespace": namespace} if namespace else {}
    return {"ID": name, "Spec": {"Name": name, "Labels": labels}}


def test_ls_counts_services_per_stack(capsys: pytest.CaptureFixture[str]) -> None:
    client = FakeClient([svc("a_web", "a"), svc("a_db", "a"), svc("b_x", "b"), svc("loose", None)])
    assert run(client, "ls") == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows == [["NAME", "SERVICES"], ["a", "2"], ["b", "1"]]


def test_deploy_dry_run_json_plans_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.yml").write_text("services:\n  web:\n    image: shoal/hello\n")
    client = FakeClient()
    assert run(client, "deploy", "--dry-run", "--json", "-c", str(tmp_path / "c.yml"), "app") == 0
    out = capsys.readouterr()
    summary = json.loads(out.out)
    assert summary["created"] == ["app_web"] and summary["networks_created"] == ["app_default"]
    assert "Would create service app_web" in out.err
    assert all(method == "GET" or path == "/shoal/services/validate" for method, path in client.calls)


def test_deploy_of_a_bad_file_is_an_error_naming_file_line_and_key(tmp_path: Path) -> None:
    (tmp_path / "c.yml").write_text("services:\n  web:\n    image: shoal/hello\n    deploy:\n      replicas: -x\n")
    with pytest.raises(CLIError) as exc:
        run(FakeClient(), "deploy", "-c", str(tmp_path / "c.yml"), "app")
    assert exc.value.message.startswith(f"{tmp_path}/c.yml:5: services.web.deploy.replicas: ")


def test_bad_stack_name() -> None:
    with pytest.raises(CLIError, match="invalid stack name"):
        run(FakeClient(), "deploy", "-c", "x.yml", "bad name")
