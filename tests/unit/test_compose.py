"""Compose files for `stack deploy`: loading, interpolation, overrides, schema errors with their
file and line, and the conversion to Engine API specs (docker/cli's cli/compose/convert)."""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path

import pytest

from shoal.compose import convert, interpolate, loader
from shoal.compose.errors import ComposeError
from shoal.compose.units import duration_ns, ram_bytes

ENV: dict[str, str] = {}


def write(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(textwrap.dedent(text).lstrip())
    return str(path)


def load(tmp: Path, text: str, env: dict[str, str] | None = None, *more: str) -> loader.Project:
    files = [write(tmp, "compose.yml", text)]
    files += [write(tmp, f"override{i}.yml", t) for i, t in enumerate(more)]
    return loader.load(files, env=env if env is not None else ENV)


def error(tmp: Path, text: str, env: dict[str, str] | None = None) -> ComposeError:
    with pytest.raises(ComposeError) as exc:
        project = load(tmp, text, env)
        convert.convert(project, "app")
    return exc.value


# ---- interpolation


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${A}", "a"),
        ("$A-x", "a-x"),
        ("${UNSET:-dflt}", "dflt"),
        ("${EMPTY:-dflt}", "dflt"),
        ("${EMPTY-dflt}", ""),
        ("${UNSET-dflt}", "dflt"),
        ("${A:+alt}", "alt"),
        ("${UNSET:+alt}", ""),
        ("$$A", "$A"),
        ("cost: $$5", "cost: $5"),
        ("${UNSET}", ""),
    ],
)
def test_substitution_follows_the_compose_rules(template: str, expected: str) -> None:
    warnings: list[str] = []
    assert interpolate.substitute(template, {"A": "a", "EMPTY": ""}, warnings.append) == expected
    if template == "${UNSET}":
        assert warnings == ['The "UNSET" variable is not set. Defaulting to a blank string.']


def test_required_variable_and_bad_template_name_file_line_and_key(tmp_path: Path) -> None:
    e = error(tmp_path, "services:\n  web:\n    image: ${TAG:?set TAG first}\n")
    assert (e.line, e.key, e.what) == (3, "services.web.image", "set TAG first")
    e = error(tmp_path, "services:\n  web:\n    image: x\n    hostname: a$\n")
    assert e.line == 4 and e.key == "services.web.hostname" and "invalid interpolation format" in e.what
    assert str(e).startswith(f"{tmp_path}/compose.yml:4: services.web.hostname: ")


def test_env_file_beside_the_compose_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("# comment\nTAG=from-dotenv\nREPLICAS=3\nexport OTHER='quoted'\n")
    project = load(
        tmp_path,
        """
        services:
          web:
            image: "img:${TAG}"
            hostname: ${OTHER}
            deploy:
              replicas: ${REPLICAS}
        """,
        {"TAG": "from-env"},
    )
    web = project.services["web"]
    assert web["image"] == "img:from-env" and web["hostname"] == "quoted"
    assert web["deploy"]["replicas"] == 3  # a number once substituted, as the schema wants


# ---- schema errors name file, line and key


def test_unknown_key_is_an_error_naming_it_and_its_line(tmp_path: Path) -> None:
    e = error(tmp_path, "version: '3.8'\nservices:\n  web:\n    image: x\n    imagee: y\n")
    assert (e.line, e.key) == (5, "services.web.imagee")
    assert "unknown key 'imagee'" in e.what


def test_unknown_deploy_key_and_bad_types(tmp_path: Path) -> None:
    e = error(tmp_path, "services:\n  web:\n    image: x\n    deploy:\n      replica: 2\n")
    assert (e.line, e.key) == (5, "services.web.deploy.replica")
    e = error(tmp_path, "services:\n  web:\n    image: x\n    deploy:\n      replicas: two\n")
    assert (e.line, e.key) == (5, "services.web.deploy.replicas") and "integer" in e.what


def test_bad_duration_names_its_key(tmp_path: Path) -> None:
    e = error(tmp_path, "services:\n  web:\n    image: x\n    stop_grace_period: 10 seconds\n")
    assert (e.line, e.key) == (4, "services.web.stop_grace_period") and "invalid duration" in e.what


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    e = error(tmp_path, "services:\n  web:\n    image: x\n   bad: [\n")
    assert e.file.endswith("compose.yml") and e.line >= 4 and "invalid YAML" in e.what


def test_files_with_and_without_a_version_key_load(tmp_path: Path) -> None:
    assert load(tmp_path, "services:\n  web:\n    image: x\n").services["web"]["image"] == "x"
    assert load(tmp_path, "version: '3'\nservices:\n  web:\n    image: x\n").services["web"]["image"] == "x"


def test_ignored_options_give_dockers_warning(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        """
        services:
          web:
            image: x
            build: .
            restart: always
            container_name: web
        """,
    )
    assert project.warnings[0] == "Ignoring unsupported options: build, restart\n"
    assert (
        "Ignoring deprecated options:\n\ncontainer_name: Setting the container name is not supported."
        in (project.warnings[1])
    )


def test_forbidden_option_is_an_error(tmp_path: Path) -> None:
    e = error(tmp_path, "services:\n  web:\n    image: x\n    mem_limit: 1g\n")
    assert (e.line, e.key) == (4, "services.web.mem_limit") and "deploy.resources" in e.what


# ---- overrides


def test_override_files_merge_and_name_their_own_lines(tmp_path: Path) -> None:
    base = """
    services:
      web:
        image: x:1
        environment: [A=1, B=2]
        ports: ["80:8080"]
        deploy:
          replicas: 1
    """
    override = """
    services:
      web:
        image: x:2
        environment:
          B: three
        ports: ["81:8081"]
    """
    project = load(tmp_path, base, None, override)
    web = project.services["web"]
    assert web["image"] == "x:2" and web["environment"] == {"A": "1", "B": "three"}
    assert web["ports"] == ["80:8080", "81:8081"] and web["deploy"]["replicas"] == 1
    assert project.locator.where(("services", "web", "image")) == (str(tmp_path / "override0.yml"), 3)
    with pytest.raises(ComposeError) as exc:
        load(tmp_path, base, None, "services:\n  web:\n    nope: 1\n")
    assert exc.value.file.endswith("override0.yml") and exc.value.line == 3


# ---- conversion


STACK = """
services:
  web:
    image: nginx:1
    command: ["-g", "daemon off;"]
    entrypoint: /bin/sh -c
    environment:
      A: "1"
      FROM_ENV:
    env_file: web.env
    hostname: web-host
    user: "1000"
    working_dir: /srv
    init: true
    read_only: true
    cap_add: [NET_ADMIN]
    cap_drop: [ALL]
    stop_grace_period: 1m30s
    labels: [tier=front]
    ports:
      - "80:8080"
      - target: 53
        published: 5353
        protocol: udp
        mode: host
    networks:
      front:
        aliases: [www]
      back:
    deploy:
      replicas: 3
      labels: {team: a}
      endpoint_mode: vip
      placement:
        constraints: [node.role==worker]
        preferences: [{spread: node.labels.zone}]
        max_replicas_per_node: 2
      resources:
        limits: {cpus: "0.5", memory: 64M}
        reservations: {memory: 32M}
      restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3, window: 1m}
      update_config: {parallelism: 2, delay: 10s, failure_action: rollback, order: start-first}
      rollback_config: {parallelism: 1}
  db:
    image: postgres
    networks: [back]
    secrets: [dbpass]
    configs:
      - source: dbconf
        target: /etc/db.conf
        mode: 0440
    volumes:
      - data:/var/lib/db
      - /srv/logs:/logs:ro
    tmpfs: /run
    healthcheck:
      test: pg_isready
      interval: 5s
      retries: 3
    deploy:
      mode: global
  cron:
    image: busybox
    deploy:
      mode: replicated-job
      replicas: 2
networks:
  front:
    attachable: true
  back:
    ipam:
      config: [{subnet: 10.9.0.0/24}]
volumes:
  data:
secrets:
  dbpass:
    file: ./pass.txt
configs:
  dbconf:
    external: true
"""


def converted(tmp: Path) -> convert.Stack:
    (tmp / "web.env").write_text("FROM_FILE=yes\nA=overridden-by-environment\n")
    (tmp / "pass.txt").write_text("s3cret")
    return convert.convert(load(tmp, STACK, {"FROM_ENV": "env"}), "app")


def test_service_is_converted_to_dockers_spec(tmp_path: Path) -> None:
    web = converted(tmp_path).services["web"]
    assert web["Name"] == "app_web"
    assert web["Labels"] == {"team": "a", "com.docker.stack.namespace": "app", "com.docker.stack.image": "nginx:1"}
    c = web["TaskTemplate"]["ContainerSpec"]
    assert c["Image"] == "nginx:1" and c["Command"] == ["/bin/sh", "-c"] and c["Args"] == ["-g", "daemon off;"]
    assert c["Env"] == ["A=1", "FROM_ENV=env", "FROM_FILE=yes"]
    assert c["Labels"] == {"tier": "front", "com.docker.stack.namespace": "app"}
    assert (c["Hostname"], c["User"], c["Dir"], c["Init"], c["ReadOnly"]) == ("web-host", "1000", "/srv", True, True)
    assert c["CapabilityAdd"] == ["NET_ADMIN"] and c["CapabilityDrop"] == ["ALL"]
    assert c["StopGracePeriod"] == 90 * 10**9
    t = web["TaskTemplate"]
    assert t["Networks"] == [
        {"Target": "app_back", "Aliases": ["web"]},
        {"Target": "app_front", "Aliases": ["www", "web"]},
    ]
    assert t["Placement"] == {
        "Constraints": ["node.role==worker"],
        "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}],
        "MaxReplicas": 2,
    }
    assert t["Resources"] == {
        "Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 64 << 20},
        "Reservations": {"MemoryBytes": 32 << 20},
    }
    assert t["RestartPolicy"] == {"Condition": "on-failure", "Delay": 5 * 10**9, "Window": 60 * 10**9, "MaxAttempts": 3}
    assert web["Mode"] == {"Replicated": {"Replicas": 3}}
    assert web["UpdateConfig"] == {
        "Parallelism": 2,
        "Delay": 10 * 10**9,
        "FailureAction": "rollback",
        "Order": "start-first",
    }
    assert web["RollbackConfig"] == {"Parallelism": 1}
    assert web["EndpointSpec"] == {
        "Mode": "vip",
        "Ports": [
            {"Protocol": "tcp", "TargetPort": 8080, "PublishedPort": 80, "PublishMode": "ingress"},
            {"Protocol": "udp", "TargetPort": 53, "PublishedPort": 5353, "PublishMode": "host"},
        ],
    }


def test_volumes_secrets_configs_healthcheck_and_jobs_get_dockers_shapes(tmp_path: Path) -> None:
    stack = converted(tmp_path)
    db = stack.services["db"]
    c = db["TaskTemplate"]["ContainerSpec"]
    assert db["Mode"] == {"Global": {}}
    assert db["TaskTemplate"]["Networks"] == [{"Target": "app_back", "Aliases": ["db"]}]
    assert c["Mounts"] == [
        {
            "Type": "volume",
            "Target": "/var/lib/db",
            "ReadOnly": False,
            "Source": "app_data",
            "VolumeOptions": {"Labels": {"com.docker.stack.namespace": "app"}, "NoCopy": False},
        },
        {"Type": "bind", "Target": "/logs", "ReadOnly": True, "Source": "/srv/logs"},
        {"Type": "tmpfs", "Target": "/run"},
    ]
    assert c["HealthCheck"] == {"Test": ["CMD-SHELL", "pg_isready"], "Interval": 5 * 10**9, "Retries": 3}
    assert c["Secrets"] == [
        {"File": {"Name": "dbpass", "UID": "0", "GID": "0", "Mode": 0o444}, "SecretID": "", "SecretName": "app_dbpass"}
    ]
    assert c["Configs"] == [
        {
            "File": {"Name": "/etc/db.conf", "UID": "0", "GID": "0", "Mode": 0o440},
            "ConfigID": "",
            "ConfigName": "dbconf",
        }
    ]
    assert stack.services["cron"]["Mode"] == {"ReplicatedJob": {"MaxConcurrent": 2, "TotalCompletions": 2}}
    secret = stack.secrets["dbpass"]
    assert not secret.external and base64.b64decode(secret.body["Data"]) == b"s3cret"
    assert secret.body["Labels"] == {"com.docker.stack.namespace": "app"}
    assert stack.configs["dbconf"].external and stack.configs["dbconf"].name == "dbconf"


def test_networks_are_scoped_labelled_and_default_is_made_when_used(tmp_path: Path) -> None:
    stack = converted(tmp_path)
    assert sorted(stack.networks) == ["back", "default", "front"]  # cron names none: NAME_default
    assert stack.networks["default"].body["Name"] == "app_default"
    assert stack.networks["front"].body["Attachable"] is True
    assert stack.networks["back"].body["IPAM"] == {"Driver": "default", "Config": [{"Subnet": "10.9.0.0/24"}]}
    assert stack.services["cron"]["TaskTemplate"]["Networks"] == [{"Target": "app_default", "Aliases": ["cron"]}]


def test_external_network_keeps_its_name(tmp_path: Path) -> None:
    project = load(
        tmp_path, "services:\n  a:\n    image: x\n    networks: [shared]\nnetworks:\n  shared:\n    external: true\n"
    )
    stack = convert.convert(project, "app")
    assert stack.networks["shared"].external and stack.networks["shared"].name == "shared"
    assert stack.services["a"]["TaskTemplate"]["Networks"] == [{"Target": "shared", "Aliases": ["a"]}]


def test_missing_secret_file_names_its_key(tmp_path: Path) -> None:
    e = error(tmp_path, "services:\n  a:\n    image: x\n    secrets: [s]\nsecrets:\n  s:\n    file: ./nope\n")
    assert (e.line, e.key) == (7, "secrets.s.file") and "cannot read" in e.what


def test_undeclared_network_names_the_service_that_uses_it(tmp_path: Path) -> None:
    e = error(tmp_path, "services:\n  a:\n    image: x\n    networks:\n      - front\n")
    assert (e.line, e.key) == (5, "services.a.networks[0]") and "not declared" in e.what


def test_port_clash_inside_the_stack_names_the_second_service(tmp_path: Path) -> None:
    e = error(
        tmp_path, "services:\n  a:\n    image: x\n    ports: ['80:80']\n  b:\n    image: why\n    ports: ['80:8080']\n"
    )
    assert (e.line, e.key) == (7, "services.b.ports") and "already published by service 'a'" in e.what


def test_bad_port_names_its_item(tmp_path: Path) -> None:
    e = error(tmp_path, "services:\n  a:\n    image: x\n    ports:\n      - '80:8080'\n      - 'eighty'\n")
    assert (e.line, e.key) == (6, "services.a.ports[1]")


def test_image_is_required(tmp_path: Path) -> None:
    e = error(tmp_path, "services:\n  a:\n    build: .\n")
    assert (e.line, e.key) == (2, "services.a") and "image is required" in e.what


def test_inline_definitions_load_like_files(tmp_path: Path) -> None:
    project = loader.load([{"services": {"a": {"image": "x", "deploy": {"replicas": 2}}}}], env={}, workdir=tmp_path)
    assert convert.convert(project, "s").services["a"]["Mode"] == {"Replicated": {"Replicas": 2}}
    with pytest.raises(ComposeError) as exc:
        loader.load([{"services": {"a": {"image": "x", "nope": 1}}}], env={}, workdir=tmp_path)
    assert str(exc.value).startswith("definition[0]: services.a.nope: unknown key")


def test_units() -> None:
    assert duration_ns("1h2m3.5s") == (3600 + 120 + 3.5) * 10**9
    assert duration_ns("300ms") == 300 * 10**6 and duration_ns("0") == 0
    for bad in ("10", "1 m", "s", "1y"):
        with pytest.raises(ValueError):
            duration_ns(bad)
    assert ram_bytes("512M") == 512 << 20 and ram_bytes("1.5g") == 3 << 29 and ram_bytes("2kb") == 2048


def test_fields_shoal_refuses_are_still_converted_to_dockers_shapes(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        """
        services:
          a:
            image: x
            stop_signal: SIGINT
            extra_hosts: ["db:10.0.0.2"]
            dns: 10.0.0.53
            dns_search: [example.org]
            tty: true
            ulimits:
              nofile: {soft: 1024, hard: 2048}
              nproc: 64
            logging:
              driver: json-file
              options: {max-size: 1m}
        """,
    )
    spec = convert.convert(project, "s").services["a"]
    c = spec["TaskTemplate"]["ContainerSpec"]
    assert c["StopSignal"] == "SIGINT" and c["Hosts"] == ["10.0.0.2 db"] and c["TTY"] is True
    assert c["DNSConfig"] == {"Nameservers": ["10.0.0.53"], "Search": ["example.org"], "Options": []}
    assert c["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}, {"Name": "nproc", "Soft": 64, "Hard": 64}]
    assert spec["TaskTemplate"]["LogDriver"] == {"Name": "json-file", "Options": {"max-size": "1m"}}


def test_compose_spec_keys_outside_stack_deploys_format_are_errors(tmp_path: Path) -> None:
    e = error(tmp_path, "services:\n  a:\n    image: x\n    cpu_count: 2\n")
    assert (e.line, e.key) == (4, "services.a.cpu_count") and "not supported by stack deploy" in e.what
    e = error(
        tmp_path,
        "services:\n  a:\n    image: x\n    deploy:\n      resources:\n        reservations:\n"
        "          generic_resources: [{discrete_resource_spec: {kind: gpu, value: 1}}]\n",
    )
    assert (e.line, e.key) == (7, "services.a.deploy.resources.reservations.generic_resources")
