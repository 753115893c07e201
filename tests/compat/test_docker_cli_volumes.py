"""Debian's docker CLI (20.10, API 1.41) on a node's shoal socket: `docker volume create|ls|inspect|rm|prune`
and `docker service create --mount` with a volume that `docker volume rm` then refuses while in use."""

from __future__ import annotations

import json

from compat.clients import Transcript, docker_cli, ok
from integration.cluster_helpers import api, wait_for
from testbed.bed import Testbed

NODE = "swarm01"


def test_docker_volume_create_ls_inspect_rm_prune(bed: Testbed, clean: Transcript) -> None:
    assert ok(docker_cli(bed, NODE, "volume", "create", "--label", "team=a", "compatvol")) == "compatvol\n"
    rows = ok(docker_cli(bed, NODE, "volume", "ls")).splitlines()
    assert rows[0].split() == ["DRIVER", "VOLUME", "NAME"] and ["local", "compatvol"] in [r.split() for r in rows[1:]]
    (doc,) = json.loads(ok(docker_cli(bed, NODE, "volume", "inspect", "compatvol")))
    assert doc["Driver"] == "local" and doc["Labels"] == {"team": "a"} and doc["Scope"] == "local"
    assert doc["Mountpoint"] == "/var/lib/shoal/volumes/compatvol/_data"
    assert ok(docker_cli(bed, NODE, "volume", "ls", "-q", "--filter", "label=team=a")) == "compatvol\n"
    assert ok(docker_cli(bed, NODE, "volume", "rm", "compatvol")) == "compatvol\n"
    res = docker_cli(bed, NODE, "volume", "inspect", "compatvol")
    assert res.returncode == 1 and "no such volume" in res.stderr.lower(), res.stderr
    res = docker_cli(bed, NODE, "volume", "create", "--driver", "nfs", "x1")
    assert res.returncode == 1 and "is not supported by shoal" in res.stderr, res.stderr
    ok(docker_cli(bed, NODE, "volume", "create", "unused1"))
    assert "unused1" in ok(docker_cli(bed, NODE, "volume", "prune", "-f"))  # API 1.41: every unused volume


def test_docker_service_with_a_volume_and_rm_in_use(bed: Testbed, clean: Transcript) -> None:
    ok(
        docker_cli(
            bed, "swarm00", "service", "create", "--detach", "--name", "volsvc", "--constraint",
            f"node.hostname=={NODE}", "--mount", "type=volume,src=svcdata,dst=/data", "--init",
            "shoal/host", "sleep", "3600",
        )
    )  # fmt: skip
    spec = api(bed, "swarm00").get("/services/volsvc")["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert spec["Mounts"] == [{"Type": "volume", "Source": "svcdata", "Target": "/data"}]
    wait_for("svcdata in use on the node", lambda: "svcdata" in ok(docker_cli(bed, NODE, "volume", "ls", "-q")), 60)
    res = docker_cli(bed, NODE, "volume", "rm", "svcdata")
    assert res.returncode == 1 and "remove svcdata: volume is in use - [" in res.stderr, res.stderr
