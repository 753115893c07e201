"""Images on a node, against the testbed's registry (TLS from its test CA, htpasswd auth):
pulls through the Engine API (docker SDK) and the CLI, registry faults with the registry's
reason, archives, an agent killed mid-pull, and the password never showing."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.errors import APIError as DockerAPIError

from integration.cluster_helpers import api, cli, start_agent, wait_for
from testbed import procs, registry
from testbed.bed import Testbed

HOST = "swarm01"
NODE_APP = registry.ref(registry.NODEJS_APP)
HELLO = registry.ref(registry.HELLO)


@pytest.fixture(scope="module")
def node(bed: Testbed) -> Iterator[Testbed]:
    bed.stop_agent(HOST)
    bed.run(HOST, ["sh", "-c", "rm -rf /var/lib/shoal/*"])
    start_agent(bed, HOST)
    yield bed
    bed.stop_agent(HOST)
    bed.run(HOST, ["sh", "-c", "rm -rf /var/lib/shoal/*"])


def client(bed: Testbed) -> docker.DockerClient:
    return docker.DockerClient(base_url=f"unix://{bed.host(HOST).socket_path}", timeout=300)


def auth(password: str | None = None) -> dict[str, str]:
    return {"username": registry.USER, "password": password if password is not None else registry.password()}


def store_dir(bed: Testbed) -> Path:
    return bed.host(HOST).state_dir / "var" / "images"


def assert_store_consistent(bed: Testbed) -> None:
    """Nothing half-written: no staging left, every blob named by its digest and referenced by a
    stored image, every image dir has its record and rootfs."""
    root = store_dir(bed)
    assert os.listdir(root / "tmp") == []
    referenced: set[str] = set()
    for entry in (root / "images").iterdir():
        rec = json.loads((entry / "image.json").read_text())
        assert (entry / "rootfs").is_dir()
        manifest_digest = rec["Manifest"]["digest"]
        manifest = json.loads((root / "oci" / "blobs" / "sha256" / manifest_digest[7:]).read_bytes())
        referenced |= {manifest_digest, manifest["config"]["digest"], *(la["digest"] for la in manifest["layers"])}
    blobs = {"sha256:" + b for b in os.listdir(root / "oci" / "blobs" / "sha256")}
    assert blobs == referenced


def test_pull_with_auth_and_the_registry_ca(node: Testbed) -> None:
    c = client(node)
    lines = list(c.api.pull(NODE_APP.rsplit(":", 1)[0], "latest", stream=True, decode=True, auth_config=auth()))
    statuses = [m.get("status", "") for m in lines]
    assert "Pull complete" in statuses and statuses[-1].startswith("Status: Downloaded newer image")
    image = c.images.get(NODE_APP)
    assert image.attrs["Config"]["Entrypoint"] == ["/usr/bin/node", "/app/server.js"]
    digest = image.attrs["RepoDigests"][0].split("@")[1]
    # the registry's own digest for the tag (asked from the controller namespace, with the CA)
    out = subprocess.run(
        ["ip", "netns", "exec", "shoal-ctl", "curl", "-s", "--cacert", str(registry.ca_cert()), "-u",
         f"{registry.USER}:{registry.password()}", "-H", "Accept: application/vnd.oci.image.manifest.v1+json",
         "-o", "/dev/null", "-w", "%header{docker-content-digest}", f"https://{registry.HOST}/v2/kalise/nodejs-web-app/manifests/latest"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert out.strip() == digest
    rootfs = store_dir(node) / "images" / image.id[7:] / "rootfs"
    assert (rootfs / "usr" / "bin" / "node").is_file() and (rootfs / "app" / "server.js").is_file()
    # a second pull asks the registry and downloads nothing
    again = [m.get("status", "") for m in c.api.pull(NODE_APP, stream=True, decode=True, auth_config=auth())]
    assert again[-1].startswith("Status: Image is up to date") and "Pull complete" not in again
    assert_store_consistent(node)


def test_cli_pull_reads_docker_config_and_prints_plain_lines(node: Testbed, tmp_path: Path) -> None:
    cfg = registry.write_docker_config(tmp_path / "docker")
    res = node.run(HOST, ["env", f"DOCKER_CONFIG={cfg}", "shoal", "image", "pull", HELLO])
    assert res.returncode == 0, res.stderr
    assert "\x1b[" not in res.stdout  # not a terminal: no cursor moves
    assert re.search(r"^[0-9a-f]{12}: Pull complete$", res.stdout, re.M), res.stdout
    rc, out, _ = cli(node, HOST, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}")
    assert rc == 0 and f"{HELLO}" in out.split()
    # without credentials the registry says so
    rc, _, err = cli(node, HOST, "image", "pull", HELLO.replace(":1", ":2"))
    assert rc == 1 and "unauthorized" in err


def test_registry_refusals_carry_the_registry_reason_and_change_nothing(node: Testbed) -> None:
    c = client(node)
    before = sorted(i.id for i in c.images.list())
    with pytest.raises(DockerAPIError) as err:
        c.api.pull(HELLO, auth_config=auth("wrong-password"))
    assert err.value.status_code == 401 and "unauthorized" in err.value.explanation
    assert "wrong-password" not in err.value.explanation
    with pytest.raises(DockerAPIError) as err:
        c.api.pull(HELLO.replace(":1", ":nosuchtag"), auth_config=auth())
    assert err.value.status_code == 404 and "manifest unknown" in err.value.explanation
    with pytest.raises(DockerAPIError) as err:
        c.images.get("10.213.0.1:5000/testbed/never:1")
    assert err.value.status_code == 404 and "No such image: 10.213.0.1:5000/testbed/never:1" in err.value.explanation
    assert sorted(i.id for i in c.images.list()) == before
    assert_store_consistent(node)


def test_registry_down_is_connection_refused(node: Testbed) -> None:
    registry.stop(node.state_dir)
    try:
        with pytest.raises(DockerAPIError) as err:
            client(node).api.pull(HELLO.replace(":1", ":3"), auth_config=auth())
        assert err.value.status_code == 502 and "connection refused" in err.value.explanation
    finally:
        registry.start(node.state_dir, node.hosts())
    assert_store_consistent(node)


def _archive_of_hello(bed: Testbed) -> bytes:
    """`docker save`-style archive of the hello image, made by the node's own skopeo."""
    res = bed.run(
        HOST,
        ["skopeo", "--policy=/var/lib/shoal/images/policy.json", "copy", "--quiet",
         "oci:/var/lib/shoal/images/oci:shoal/hello:latest", "docker-archive:/var/lib/shoal/hello.tar:saved/hello:7"],
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    path = bed.host(HOST).state_dir / "var" / "hello.tar"
    data = path.read_bytes()
    path.unlink()
    return data


def test_load_archives_and_refuse_junk(node: Testbed) -> None:
    c = client(node)
    c.images.get("shoal/hello")  # made on first use
    data = _archive_of_hello(node)
    loaded = c.images.load(data)
    assert [i.tags for i in loaded] == [["saved/hello:7"]]
    not_image = io.BytesIO()
    with tarfile.open(fileobj=not_image, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    before = sorted(i.id for i in c.images.list())
    with pytest.raises(DockerAPIError) as err:
        c.images.load(not_image.getvalue())
    assert err.value.status_code == 400 and "no manifest.json or oci-layout" in err.value.explanation
    with pytest.raises(DockerAPIError) as err:
        c.images.load(data[: len(data) // 2])  # cut mid-layer
    assert err.value.status_code == 400 and "invalid image archive" in err.value.explanation
    assert sorted(i.id for i in c.images.list()) == before
    assert_store_consistent(node)
    # and the CLI
    archive = node.host(HOST).state_dir / "var" / "saved.tar"
    archive.write_bytes(data)
    rc, out, err_text = cli(node, HOST, "image", "load", "-i", "/var/lib/shoal/saved.tar")
    archive.unlink()
    assert rc == 0 and out.strip() == "Loaded image: saved/hello:7", err_text


def test_remove_and_prune(node: Testbed) -> None:
    c = client(node)
    c.api.pull(HELLO, auth_config=auth())
    image = c.images.get(HELLO)
    out = c.api.remove_image(HELLO)
    assert {"Deleted": image.id} in out and {"Untagged": HELLO} in out
    with pytest.raises(docker.errors.ImageNotFound):
        c.images.get(HELLO)
    with pytest.raises(DockerAPIError) as err:
        c.api.remove_image("shoal/host")
    assert err.value.status_code == 400 and "built-in" in err.value.explanation
    assert_store_consistent(node)


def test_agent_killed_mid_pull_leaves_the_store_consistent(node: Testbed) -> None:
    c = client(node)
    with_app = [i for i in c.images.list() if NODE_APP in i.tags]
    for image in with_app:
        c.api.remove_image(image.id, force=True)
    before = sorted(i.id for i in c.images.list())
    token = base64.urlsafe_b64encode(json.dumps(auth()).encode()).decode()
    sock = node.host(HOST).socket_path
    puller = subprocess.Popen(
        ["curl", "-s", "--unix-socket", str(sock), "-X", "POST", "-H", f"X-Registry-Auth: {token}",
         f"http://localhost/images/create?fromImage={NODE_APP.rsplit(':', 1)[0]}&tag=latest"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    tmp = store_dir(node) / "tmp"
    wait_for("the pull to be under way", lambda: any(p.name.startswith("pull-") for p in tmp.iterdir()), timeout=30)
    time.sleep(0.5)
    node.stop_agent(HOST, kill=True)
    puller.wait(timeout=30)
    netns = Path("/run/netns") / node.host(HOST).netns

    def no_skopeo_left() -> bool:
        comms = [Path(f"/proc/{pid}/comm").read_text().strip() for pid in procs.pids_in_netns(netns)]
        return "skopeo" not in comms

    wait_for("skopeo to die with the agent", no_skopeo_left, timeout=15)
    start_agent(node, HOST)
    assert sorted(i.id for i in client(node).images.list()) == before
    assert_store_consistent(node)
    # and the next pull completes
    client(node).api.pull(NODE_APP, auth_config=auth())
    assert client(node).images.get(NODE_APP).attrs["RepoDigests"]
    assert_store_consistent(node)


def test_password_never_in_logs_inspect_or_store(node: Testbed) -> None:
    c = client(node)
    c.api.pull(NODE_APP, auth_config=auth())
    with pytest.raises(DockerAPIError):
        c.api.pull(HELLO, auth_config=auth("not-the-password-" + registry.password()))
    secret = registry.password().encode()
    inspect = json.dumps([c.api.inspect_image(i.id) for i in c.images.list()]).encode()
    assert secret not in inspect
    assert secret not in node.host(HOST).agent_log.read_bytes()
    for root, _, files in os.walk(store_dir(node)):
        for name in files:
            path = Path(root) / name
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 1 << 20:
                assert secret not in path.read_bytes(), path
    assert api(node, HOST).get("/_ping") == "OK"


def test_managers_resolve_a_tag_to_its_digest(node: Testbed) -> None:
    """GET /distribution/{name}/json: what the docker CLI pins a service's image with."""
    manager = "swarm00"
    node.stop_agent(manager)
    node.run(manager, ["sh", "-c", "rm -rf /var/lib/shoal/*"])
    start_agent(node, manager)
    try:
        c = docker.DockerClient(base_url=f"unix://{node.host(manager).socket_path}", timeout=120)
        with pytest.raises(DockerAPIError) as err:
            c.api.inspect_distribution(NODE_APP, auth_config=auth())
        assert err.value.status_code == 503  # not a manager (not in a swarm yet)
        api(node, manager).post("/swarm/init", {"AdvertiseAddr": "eth0"})
        out = c.api.inspect_distribution(NODE_APP, auth_config=auth())
        client(node).api.pull(NODE_APP, auth_config=auth())
        pulled = client(node).images.get(NODE_APP).attrs["RepoDigests"][0].split("@")[1]
        assert out["Descriptor"]["digest"] == pulled and out["Descriptor"]["size"] > 0
        assert out["Platforms"] == [{"architecture": "amd64", "os": "linux"}]
        with pytest.raises(DockerAPIError) as err:
            c.api.inspect_distribution(NODE_APP, auth_config=auth("wrong"))
        assert err.value.status_code == 401 and "unauthorized" in err.value.explanation
    finally:
        api(node, manager).post("/swarm/leave", force=True)
        node.stop_agent(manager)
        node.run(manager, ["sh", "-c", "rm -rf /var/lib/shoal/*"])


def test_concurrent_pulls_of_one_image_download_once(node: Testbed) -> None:
    c = client(node)
    for image in [i for i in c.images.list() if HELLO in i.tags]:
        c.api.remove_image(image.id, force=True)
    results: dict[int, list[str]] = {}

    def pull(i: int) -> None:
        results[i] = [
            m.get("status", "") for m in client(node).api.pull(HELLO, stream=True, decode=True, auth_config=auth())
        ]

    threads = [threading.Thread(target=pull, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    finals = sorted(r[-1].split(" for ")[0] for r in results.values())
    assert finals == ["Status: Downloaded newer image"] + ["Status: Image is up to date"] * 2, results
    assert_store_consistent(node)
