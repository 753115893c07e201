"""`shoal stack deploy|ls|services|ps|rm` on the testbed: a stack of three services on two
overlay networks, its DNS names and network aliases, a redeploy that writes nothing, a changed
file that updates one service, bad files that deploy nothing, and `stack rm`."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.cluster_helpers import api, cli, form_cluster, wait_for, wipe_cluster
from testbed.bed import Testbed

MANAGER = "swarm00"
STACK = "app"
COMPOSE = """
version: "3.8"
services:
  web:
    image: shoal/hello
    ports: ["8081:8080"]
    networks: [front]
    deploy:
      replicas: 2
  api:
    image: shoal/hello
    networks:
      back:
        aliases: [backend-api]
    deploy:
      replicas: ${API_REPLICAS:-1}
  client:
    image: shoal/host
    command: sleep 3600
    init: true
    networks: [front, back]
networks:
  front:
  back:
    ipam:
      config:
        - subnet: 172.31.5.0/24
"""


@pytest.fixture(scope="module")
def cluster(bed: Testbed) -> Iterator[Testbed]:
    form_cluster(bed, managers=1)
    yield bed
    wipe_cluster(bed, "test_stack")


def write(tmp: Path, text: str, name: str = "compose.yml") -> str:
    path = tmp / name
    path.write_text(textwrap.dedent(text).lstrip())
    return str(path)


def stack(bed: Testbed, *args: str, env: str = "") -> tuple[int, str, str]:
    if env:  # the agent's CLI runs in the host; the variable comes through `env`
        res = bed.run(MANAGER, ["env", env, "shoal", "stack", *args], timeout=120)
        return res.returncode, res.stdout, res.stderr
    return cli(bed, MANAGER, "stack", *args, timeout=120)


def services(bed: Testbed) -> dict[str, dict]:
    found = api(bed, MANAGER).get("/services", filters={"label": [f"com.docker.stack.namespace={STACK}"]})
    return {s["Spec"]["Name"]: s for s in found}


def running(bed: Testbed, service: str) -> list[dict]:
    tasks = api(bed, MANAGER).get("/tasks", filters={"service": [service], "desired-state": ["running"]})
    return [t for t in tasks if t["Status"]["State"] == "running"]


def resolve_in_client(bed: Testbed, name: str) -> list[str]:
    task = running(bed, f"{STACK}_client")[0]
    host = {n["ID"]: n["Description"]["Hostname"] for n in api(bed, MANAGER).get("/nodes")}[task["NodeID"]]
    rc, out, _ = cli(bed, host, "exec", task["ID"][:12], "getent", "ahostsv4", name)
    return sorted({line.split()[0] for line in out.splitlines()}) if rc == 0 else []


def vip_on(bed: Testbed, service: str, network: str) -> str:
    net_id = api(bed, MANAGER).get(f"/networks/{network}")["Id"]
    svc = api(bed, MANAGER).get(f"/services/{service}")
    return next(v["Addr"].split("/")[0] for v in svc["Endpoint"]["VirtualIPs"] if v["NetworkID"] == net_id)


def test_deploy_a_two_network_stack_and_reach_it_by_names_and_aliases(cluster: Testbed, tmp_path: Path) -> None:
    rc, out, err = stack(cluster, "deploy", "-c", write(tmp_path, COMPOSE), STACK)
    assert rc == 0, err
    assert "Creating network app_front" in out and "Creating network app_back" in out
    assert {"Creating service app_web", "Creating service app_api", "Creating service app_client"} <= set(
        out.splitlines()
    )
    wait_for(
        "the stack running",
        lambda: (
            len(running(cluster, "app_web")) == 2 and running(cluster, "app_api") and running(cluster, "app_client")
        ),
        timeout=60,
    )
    svc = services(cluster)
    assert sorted(svc) == ["app_api", "app_client", "app_web"]
    assert svc["app_web"]["Spec"]["Labels"]["com.docker.stack.image"] == "shoal/hello"
    back = api(cluster, MANAGER).get("/networks/app_back")
    assert back["Labels"] == {"com.docker.stack.namespace": STACK}
    assert back["IPAM"]["Config"][0]["Subnet"] == "172.31.5.0/24"

    rc, out, _ = stack(cluster, "ls")
    assert rc == 0 and out.split("\n")[1].split() == [STACK, "3"]
    rc, out, _ = stack(cluster, "services", STACK)
    assert rc == 0 and {"app_web", "app_api", "app_client"} <= set(out.split())
    rc, out, _ = stack(cluster, "ps", STACK)
    assert rc == 0 and "app_web.1" in out and "app_client.1" in out

    # the short names (what `docker stack deploy` sends as aliases) and the file's alias, per network
    api_vip = vip_on(cluster, "app_api", "app_back")
    assert wait_for("api by its short name", lambda: resolve_in_client(cluster, "api") or None, timeout=20) == [api_vip]
    assert resolve_in_client(cluster, "backend-api") == [api_vip]
    assert resolve_in_client(cluster, "app_api") == [api_vip]
    assert resolve_in_client(cluster, "web") == [vip_on(cluster, "app_web", "app_front")]
    api_task_ips = sorted(
        t["NetworksAttachments"][-1]["Addresses"][0].split("/")[0] for t in running(cluster, "app_api")
    )
    assert resolve_in_client(cluster, "tasks.backend-api") == api_task_ips


def test_redeploying_the_same_file_writes_nothing(cluster: Testbed, tmp_path: Path) -> None:
    before = {name: s["Version"]["Index"] for name, s in services(cluster).items()}
    rc, out, err = stack(cluster, "deploy", "-c", write(tmp_path, COMPOSE), STACK)
    assert rc == 0, err
    assert "Updating" not in out and "Creating" not in out
    assert {name: s["Version"]["Index"] for name, s in services(cluster).items()} == before


def test_a_changed_file_updates_only_the_changed_service(cluster: Testbed, tmp_path: Path) -> None:
    before = {name: s["Version"]["Index"] for name, s in services(cluster).items()}
    rc, out, err = stack(cluster, "deploy", "-c", write(tmp_path, COMPOSE), STACK, env="API_REPLICAS=2")
    assert rc == 0, err
    assert [line.split(" (")[0] for line in out.splitlines()] == ["Updating service app_api"]
    after = {name: s["Version"]["Index"] for name, s in services(cluster).items()}
    assert after["app_api"] > before["app_api"]
    assert {n: v for n, v in after.items() if n != "app_api"} == {n: v for n, v in before.items() if n != "app_api"}
    assert services(cluster)["app_api"]["Spec"]["Mode"] == {"Replicated": {"Replicas": 2}}


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            "services:\n  x:\n    image: shoal/hello\n    imagee: typo\n",
            "compose.yml:4: services.x.imagee: unknown key",
        ),
        (
            "services:\n  x:\n    image: shoal/hello\n    stop_grace_period: 5 sec\n",
            "compose.yml:4: services.x.stop_grace_period",
        ),
        (
            "services:\n  x:\n    image: shoal/hello\n    secrets: [s]\nsecrets:\n  s:\n    file: ./nope\n",
            "compose.yml:7: secrets.s.file",
        ),
        ("services:\n  x:\n    image: shoal/hello\n    ports: ['8081:8080']\n", "compose.yml:4: services.x.ports"),
        (
            "services:\n  x:\n    image: shoal/hello\n    networks: [ext]\nnetworks:\n  ext:\n    external: true\n",
            "compose.yml:6: networks.ext",
        ),
        ("services:\n  x:\n    image: shoal/hello\n  y: [\n", "compose.yml:"),
    ],
)
def test_bad_files_name_file_line_and_key_and_deploy_nothing(
    cluster: Testbed, tmp_path: Path, text: str, where: str
) -> None:
    networks = {n["Name"] for n in api(cluster, MANAGER).get("/networks")}
    rc, out, err = stack(cluster, "deploy", "-c", write(tmp_path, text), "bad")
    assert rc != 0 and where in err, err
    assert out == ""
    assert api(cluster, MANAGER).get("/services", filters={"label": ["com.docker.stack.namespace=bad"]}) == []
    assert {n["Name"] for n in api(cluster, MANAGER).get("/networks")} == networks


def test_stack_rm_removes_services_and_networks(cluster: Testbed) -> None:
    rc, out, err = stack(cluster, "rm", STACK)
    assert rc == 0, err
    assert "Removing service app_web" in out and "Removing network app_back" in out
    assert services(cluster) == {}
    names = {n["Name"] for n in api(cluster, MANAGER).get("/networks")}
    assert not names & {"app_front", "app_back"}
    rc, out, _ = stack(cluster, "ls")
    assert rc == 0 and STACK not in out.split()
