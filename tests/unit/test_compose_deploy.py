"""`stack deploy`'s plan against the manager's own validation (`service_validate`): the whole stack
is checked before the first write, an unchanged stack makes no write, a changed service is the
only one updated, and a server refusal names the compose key that asked for it."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from shoal.compose import convert, loader
from shoal.compose.deploy import VALIDATE_PATH, Deployer
from shoal.compose.errors import ComposeError
from shoal.errors import ShoalError
from shoal.manager.control import secrets as secret_control
from shoal.manager.control import service_validate
from shoal.manager.control import services as control
from shoal.model.network import network_object, validate_create
from shoal.model.secret import KINDS
from shoal.store.changes import Change

NOW = "2026-01-01T00:00:00.000000000Z"


class FakeStore:
    """The reads control functions make, over plain lists; commits apply Changes in place."""

    def __init__(self) -> None:
        kinds = ("network", "service", "task", "node", "secret", "config")
        self.objs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
        self.index = itertools.count(10)

    def list(self, kind: str) -> list[dict[str, Any]]:
        return copy.deepcopy(self.objs.get(kind, []))

    list_shared = list

    def find_by_name(self, kind: str, name: str) -> dict[str, Any] | None:
        return next((o for o in self.list(kind) if o["Spec"]["Name"] == name), None)

    def commit(self, changes: list[Change]) -> None:
        for c in changes:
            if c.op == "create":
                assert c.obj is not None
                self.objs[c.kind].append({**c.obj, "Version": {"Index": next(self.index)}})
            elif c.op == "update":
                assert c.obj is not None
                self.objs[c.kind] = [o for o in self.objs[c.kind] if o["ID"] != c.obj_id]
                self.objs[c.kind].append({**c.obj, "Version": {"Index": next(self.index)}})
            elif c.op == "delete":
                self.objs[c.kind] = [o for o in self.objs[c.kind] if o["ID"] != c.obj_id]


class Failure(ShoalError):
    """An API answer as the CLI's client raises it (a ShoalError with the answer's status)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message, status)


class FakeAPI:
    """The Engine API calls a stack deploy makes, served by shoal's control functions."""

    def __init__(self, with_secrets: bool = True) -> None:
        self.store = FakeStore()
        self.writes: list[tuple[str, str]] = []
        self.vni = itertools.count(4097)
        self.with_secrets = with_secrets  # False: an agent from before the /secrets and /configs API

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        try:
            return self._serve(method, path, query or {}, body)
        except ShoalError as exc:
            raise Failure(exc.status, exc.message) from None

    def _serve(self, method: str, path: str, query: Mapping[str, Any], body: Any) -> Any:
        if (method, path) == ("POST", VALIDATE_PATH):
            return service_validate.validate(self.store, body)
        if method == "GET" and path == "/networks":
            return self.store.list("network")
        if method == "GET" and path == "/services":
            services = self.store.list("service")
            label = json.loads(query["filters"])["label"][0] if "filters" in query else None
            return [s for s in services if not label or "=".join(next(iter(s["Spec"]["Labels"].items()))) == label]
        kind = KINDS.get(path.split("/")[1][:-1]) if self.with_secrets else None
        if method == "GET" and kind is not None:
            filters = json.loads(query["filters"]) if "filters" in query else {}
            return secret_control.list_objects(self.store, kind, filters)
        if method == "GET":
            raise Failure(404, "page not found")  # e.g. /secrets: no such API on this agent
        self.writes.append((method, path))
        if kind is not None and path.endswith("/create"):
            obj, changes = secret_control.create(self.store, kind, body)
            self.store.commit(changes)
            return {"ID": obj["ID"]}
        if kind is not None and method == "DELETE":
            self.store.commit(secret_control.remove(self.store, kind, path.split("/")[2]))
            return None
        if path == "/networks/create":
            req = validate_create(body, self.store.list("network"))
            net = network_object(f"net{len(self.writes)}", req, next(self.vni), NOW)
            self.store.commit([Change(op="create", kind="network", obj=net)])
            return {"Id": net["ID"]}
        if path == "/services/create":
            service, changes = control.create(self.store, body)
            self.store.commit(changes)
            return {"ID": service["ID"]}
        if path.endswith("/update"):
            self.store.commit(control.update(self.store, path.split("/")[2], int(query["version"]), body))
            return {}
        if method == "DELETE":
            self.store.commit(control.remove(self.store, path.split("/")[2]))
            return None
        raise Failure(404, "page not found")


def stack_of(tmp: Path, text: str, name: str = "app") -> tuple[convert.Stack, Any]:
    (tmp / "compose.yml").write_text(text)
    project = loader.load([str(tmp / "compose.yml")], env={})
    return convert.convert(project, name), project.locator


def deploy(api: FakeAPI, tmp: Path, text: str, prune: bool = False) -> Any:
    stack, locator = stack_of(tmp, text)
    deployer = Deployer(api, stack, locator)
    plan = deployer.plan(prune=prune)
    deployer.apply(plan)
    return plan


TWO_NETWORKS = """
services:
  web:
    image: shoal/hello
    ports: ["8080:8080"]
    networks: [front, back]
    deploy: {replicas: 2}
  api:
    image: shoal/host
    command: sleep 3600
    networks:
      back:
        aliases: [backend]
networks:
  front:
  back:
"""


def test_first_deploy_creates_then_an_unchanged_redeploy_writes_nothing(tmp_path: Path) -> None:
    api = FakeAPI()
    plan = deploy(api, tmp_path, TWO_NETWORKS)
    assert plan.names("create", "network") == ["app_back", "app_front"]
    assert sorted(plan.names("create")) == ["app_api", "app_web"]
    api_svc = api.store.find_by_name("service", "app_api")
    assert api_svc is not None
    back = api.store.find_by_name("network", "app_back")
    assert back is not None
    assert api_svc["Spec"]["TaskTemplate"]["Networks"] == [{"Target": back["ID"], "Aliases": ["backend", "api"]}]
    writes = len(api.writes)
    again = deploy(api, tmp_path, TWO_NETWORKS)
    assert again.actions == [] and sorted(again.unchanged) == ["app_api", "app_web"]
    assert len(api.writes) == writes


def test_a_changed_service_is_the_only_one_updated_and_prune_removes_the_dropped(tmp_path: Path) -> None:
    api = FakeAPI()
    deploy(api, tmp_path, TWO_NETWORKS)
    changed = TWO_NETWORKS.replace("deploy: {replicas: 2}", "deploy: {replicas: 3}")
    plan = deploy(api, tmp_path, changed)
    assert [(a.op, a.name) for a in plan.actions] == [("update", "app_web")]
    assert plan.unchanged == ["app_api"]
    web = api.store.find_by_name("service", "app_web")
    assert web is not None and web["Spec"]["Mode"] == {"Replicated": {"Replicas": 3}}
    without_api = changed[: changed.index("  api:")] + "networks:\n  front:\n  back:\n"
    kept = deploy(api, tmp_path, without_api)
    assert kept.actions == [] and api.store.find_by_name("service", "app_api") is not None
    pruned = deploy(api, tmp_path, without_api, prune=True)
    assert [(a.op, a.name) for a in pruned.actions] == [("remove", "app_api")]
    assert api.store.find_by_name("service", "app_api") is None


def test_server_refusal_names_the_compose_key_and_nothing_is_written(tmp_path: Path) -> None:
    api = FakeAPI()
    text = TWO_NETWORKS.replace(
        "    command: sleep 3600\n", "    command: sleep 3600\n    sysctls: {vm.swappiness: 10}\n"
    )
    stack, locator = stack_of(tmp_path, text)
    with pytest.raises(ComposeError) as exc:
        Deployer(api, stack, locator).plan()
    assert exc.value.key == "services.api.sysctls" and exc.value.line == 11
    assert "sysctl 'vm.swappiness=10' is not allowed" in exc.value.what
    assert api.writes == []


def test_published_port_in_use_by_another_service_is_refused_before_any_write(tmp_path: Path) -> None:
    api = FakeAPI()
    deploy(api, tmp_path, "services:\n  other:\n    image: shoal/hello\n    ports: ['8080:8080']\n")
    writes = len(api.writes)
    stack, locator = stack_of(tmp_path, TWO_NETWORKS, name="second")
    with pytest.raises(ComposeError) as exc:
        Deployer(api, stack, locator).plan()
    assert exc.value.key == "services.web.ports" and "8080" in exc.value.what
    assert len(api.writes) == writes


def test_external_network_must_exist(tmp_path: Path) -> None:
    api = FakeAPI()
    stack, locator = stack_of(
        tmp_path,
        "services:\n  a:\n    image: shoal/hello\n    networks: [shared]\nnetworks:\n  shared:\n    external: true\n",
    )
    with pytest.raises(ComposeError) as exc:
        Deployer(api, stack, locator).plan()
    assert (exc.value.line, exc.value.key) == (6, "networks.shared")
    assert "declared as external, but could not be found" in exc.value.what


def test_secrets_on_an_agent_without_the_secrets_api_are_refused_up_front(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("x")
    api = FakeAPI(with_secrets=False)
    stack, locator = stack_of(
        tmp_path, "services:\n  a:\n    image: shoal/hello\n    secrets: [pw]\nsecrets:\n  pw:\n    file: ./pw\n"
    )
    with pytest.raises(ComposeError) as exc:
        Deployer(api, stack, locator).plan()
    assert exc.value.key == "secrets.pw" and "not supported by this shoal agent" in exc.value.what
    assert api.writes == []


def test_refusals_of_fields_shoal_lacks_point_at_their_compose_keys(tmp_path: Path) -> None:
    api = FakeAPI()
    for key, text in (
        ("logging", "    logging: {driver: syslog}\n"),
        ("tty", "    tty: true\n"),
    ):
        stack, locator = stack_of(tmp_path, "services:\n  a:\n    image: shoal/hello\n" + text)
        with pytest.raises(ComposeError) as exc:
            Deployer(api, stack, locator).plan()
        assert (exc.value.key, exc.value.line) == (f"services.a.{key}", 4), exc.value
    assert api.writes == []


def test_validate_endpoint_checks_its_request_and_writes_nothing() -> None:
    store = FakeStore()
    for body, message in (
        ([], "request body must be an object"),
        ({"Spec": {"TaskTemplate": {}}}, "Spec must be a service spec with a Name"),
        ({"Spec": {"Name": "a"}, "NewNetworks": "n"}, "NewNetworks must be a list"),
        ({"Spec": {"Name": "a"}, "NewSecrets": [""]}, "NewSecrets must be a list of names"),
    ):
        with pytest.raises(ShoalError, match=message):
            service_validate.validate(store, body)
    spec = {"Name": "a", "TaskTemplate": {"ContainerSpec": {"Image": "x"}, "Networks": [{"Target": "later"}]}}
    answer = service_validate.validate(store, {"Spec": spec, "NewNetworks": ["later"]})
    assert answer["Spec"]["TaskTemplate"]["Networks"] == [{"Target": "later", "Aliases": []}]
    with pytest.raises(ShoalError, match="later"):  # not created, not announced: no such network
        service_validate.validate(store, {"Spec": spec})
    assert store.objs["service"] == [] and store.objs["network"] == []


WITH_SECRETS = """
services:
  a:
    image: shoal/hello
    secrets: [pw, {source: shared, target: api_key, mode: 0400}]
    configs: [{source: conf, target: /etc/app.conf}]
secrets:
  pw:
    file: ./pw
  shared:
    external: true
configs:
  conf:
    file: ./app.conf
"""


def test_stack_secrets_and_configs_are_created_referenced_and_kept_on_redeploy(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret")
    (tmp_path / "app.conf").write_text("port=1\n")
    api = FakeAPI()
    stack, locator = stack_of(tmp_path, WITH_SECRETS)
    with pytest.raises(ComposeError) as exc:  # the external one does not exist yet
        Deployer(api, stack, locator).plan()
    assert (exc.value.key, exc.value.line) == ("secrets.shared", 10)
    assert "secret 'shared' is declared as external, but could not be found" in exc.value.what
    assert api.writes == []
    shared, changes = secret_control.create(api.store, KINDS["secret"], {"Name": "shared", "Data": "eA=="})
    api.store.commit(changes)

    plan = deploy(api, tmp_path, WITH_SECRETS)
    assert plan.names("create", "secret") == ["app_pw"] and plan.names("create", "config") == ["app_conf"]
    by_name = {o["Spec"]["Name"]: o for o in api.store.objs["secret"] + api.store.objs["config"]}
    assert by_name["app_pw"]["Spec"]["Labels"] == {"com.docker.stack.namespace": "app"}
    svc = api.store.find_by_name("service", "app_a")
    assert svc is not None
    container = svc["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert {r["SecretName"]: r["SecretID"] for r in container["Secrets"]} == {
        "shared": shared["ID"],
        "app_pw": by_name["app_pw"]["ID"],
    }
    assert container["Configs"][0]["ConfigID"] == by_name["app_conf"]["ID"]

    writes = len(api.writes)
    again = deploy(api, tmp_path, WITH_SECRETS)
    assert again.actions == [] and again.warnings == [] and len(api.writes) == writes

    (tmp_path / "app.conf").write_text("port=2\n")  # a config cannot change: kept, and said so
    changed = deploy(api, tmp_path, WITH_SECRETS)
    assert changed.actions == [] and len(api.writes) == writes
    assert len(changed.warnings) == 1 and "config app_conf exists with other data" in changed.warnings[0]


def test_a_reference_to_an_undeclared_secret_is_refused_by_the_server_unless_announced() -> None:
    store = FakeStore()
    spec = {
        "Name": "a",
        "TaskTemplate": {"ContainerSpec": {"Image": "x", "Secrets": [{"SecretName": "later", "SecretID": ""}]}},
    }
    with pytest.raises(ShoalError, match="secret not found: later"):
        service_validate.validate(store, {"Spec": spec})
    answer = service_validate.validate(store, {"Spec": spec, "NewSecrets": ["later"]})
    assert answer["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"][0]["SecretName"] == "later"
    with pytest.raises(ShoalError, match="secret not found: later"):  # a config of that name is no secret
        service_validate.validate(store, {"Spec": spec, "NewConfigs": ["later"]})
    assert store.objs["service"] == [] and store.objs["secret"] == []


EVERYTHING_ISSUE_14_ADDED = """
services:
  db:
    image: shoal/host
    volumes:
      - data:/var/lib/db
      - /anon
      - type: volume
        source: shared
        target: /shared
        read_only: true
        volume: {nocopy: true}
      - ./conf:/etc/conf:ro
      - type: bind
        source: /srv
        target: /srv
        read_only: true
      - type: tmpfs
        target: /scratch
        tmpfs: {size: 1048576}
    tmpfs: [/run/x]
    healthcheck:
      test: ["CMD", "true"]
      interval: 2s
      timeout: 1s
      retries: 3
      start_period: 5s
    sysctls: {net.ipv4.ip_forward: 1}
    extra_hosts: ["db.local:10.0.0.1"]
    dns: 10.0.0.2
    dns_search: [example.org]
    ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 64}
    init: true
    read_only: true
  quiet:
    image: shoal/host
    healthcheck: {disable: true}
  shell:
    image: shoal/host
    healthcheck: {test: "test -e /ready"}
  job:
    image: shoal/host
    deploy: {mode: replicated-job, replicas: 3}
  everywhere:
    image: shoal/host
    deploy: {mode: global-job}
volumes:
  data:
    name: kept_name
    labels: {tier: db}
  shared:
    external: true
    name: team_shared
"""


def test_mounts_health_jobs_and_container_options_convert_to_what_the_server_accepts(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    api = FakeAPI()
    stack, locator = stack_of(tmp_path, EVERYTHING_ISSUE_14_ADDED)
    plan = Deployer(api, stack, locator).plan()  # the real validate: every field accepted
    after = {a.name: a.after for a in plan.actions if a.kind == "service" and a.after is not None}
    db = after["app_db"]["TaskTemplate"]["ContainerSpec"]
    assert db["Mounts"] == [
        {
            "Type": "volume",
            "Source": "kept_name",  # top-level `name:` wins over NAME_x
            "Target": "/var/lib/db",
            "VolumeOptions": {"Labels": {"tier": "db", "com.docker.stack.namespace": "app"}},
        },
        {"Type": "volume", "Source": "", "Target": "/anon"},
        {  # external: its own name, no stack label (docker/cli handleVolumeToMount)
            "Type": "volume",
            "Source": "team_shared",
            "Target": "/shared",
            "ReadOnly": True,
            "VolumeOptions": {"NoCopy": True},
        },
        {"Type": "bind", "Source": str(tmp_path / "conf"), "Target": "/etc/conf", "ReadOnly": True},
        {"Type": "bind", "Source": "/srv", "Target": "/srv", "ReadOnly": True},
        {"Type": "tmpfs", "Source": "", "Target": "/scratch", "TmpfsOptions": {"SizeBytes": 1048576}},
        {"Type": "tmpfs", "Source": "", "Target": "/run/x"},
    ]
    assert db["HealthCheck"] == {
        "Test": ["CMD", "true"],
        "Interval": 2_000_000_000,
        "Timeout": 1_000_000_000,
        "StartPeriod": 5_000_000_000,
        "Retries": 3,
    }
    assert db["Sysctls"] == {"net.ipv4.ip_forward": "1"}
    assert db["Hosts"] == ["10.0.0.1 db.local"]
    assert db["DNSConfig"] == {"Nameservers": ["10.0.0.2"], "Search": ["example.org"]}
    assert db["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}, {"Name": "nproc", "Soft": 64, "Hard": 64}]
    assert db["Init"] is True and db["ReadOnly"] is True
    assert after["app_quiet"]["TaskTemplate"]["ContainerSpec"]["HealthCheck"] == {"Test": ["NONE"]}
    assert after["app_shell"]["TaskTemplate"]["ContainerSpec"]["HealthCheck"] == {
        "Test": ["CMD-SHELL", "test -e /ready"]
    }
    assert after["app_job"]["Mode"] == {"ReplicatedJob": {"MaxConcurrent": 3, "TotalCompletions": 3}}
    assert after["app_everywhere"]["Mode"] == {"GlobalJob": {}}
    assert api.writes == []
    deploy(api, tmp_path, EVERYTHING_ISSUE_14_ADDED)
    again = deploy(api, tmp_path, EVERYTHING_ISSUE_14_ADDED)  # the server's defaults read back as unchanged
    assert again.actions == [] and len(again.unchanged) == 5


def test_bad_mounts_and_health_checks_are_refused_at_their_compose_keys(tmp_path: Path) -> None:
    api = FakeAPI()
    for key, line, text, message in (
        ("volumes", 4, "    volumes: ['/x:/proc/sys']\n", "/proc"),
        ("volumes[0]", 4, "    volumes: ['nowhere:/data']\n", "named volume 'nowhere' is not declared"),
        ("healthcheck.interval", 5, "    healthcheck:\n      interval: soon\n", "soon"),
        (
            "healthcheck.disable",
            6,
            "    healthcheck:\n      test: [CMD, 'true']\n      disable: true\n",
            "test and disable can't be set at the same time",
        ),
    ):
        stack_text = "services:\n  a:\n    image: shoal/hello\n" + text
        with pytest.raises(ComposeError) as exc:
            stack, locator = stack_of(tmp_path, stack_text)
            Deployer(api, stack, locator).plan()
        assert (exc.value.key, exc.value.line) == (f"services.a.{key}", line), exc.value
        assert message in exc.value.what, exc.value
    assert api.writes == []
